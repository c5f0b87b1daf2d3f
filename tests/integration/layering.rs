//! The layer rule of CONTRIBUTING.md: each crate depends only on lower layers, and
//! the engine knows nothing of gRPC, Raft or actix.

use std::path::PathBuf;

fn manifest(dir: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(dir).join("Cargo.toml")).unwrap()
}

fn layer(crate_name: &str) -> Option<u32> {
    Some(match crate_name {
        "regatta-common" => 0,
        "regatta-proto" | "regatta-cluster-config" | "regatta-engine" => 1,
        "regatta-shuffle" | "regatta-actors" => 2,
        "regatta-scheduler" | "regatta-worker" => 3,
        "regatta" | "regatta-ray" => 4,
        "regatta-cli" | "regatta-bench" | "regatta-tests" => 5,
        _ => return None,
    })
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let crates = [
        ("common", "regatta-common"),
        ("proto", "regatta-proto"),
        ("worker", "regatta-worker"),
        ("cluster-config", "regatta-cluster-config"),
        ("engine", "regatta-engine"),
        ("shuffle", "regatta-shuffle"),
        ("actors", "regatta-actors"),
        ("scheduler", "regatta-scheduler"),
        ("sdk", "regatta"),
        ("ray", "regatta-ray"),
        ("cli", "regatta-cli"),
        ("benches", "regatta-bench"),
        ("tests", "regatta-tests"),
    ];
    for (dir, name) in crates {
        let text = manifest(dir);
        let mine = layer(name).unwrap();
        let mut dev = false;
        for line in text.lines() {
            if line.starts_with('[') {
                dev = line.contains("dev-dependencies");
            }
            let dep = line.split(['.', ' ', '=']).next().unwrap_or("");
            // Tests may use the shared test fixtures (an S3 server, HTTP
            // servers, images) of regatta-tests' library.
            if dev && dep == "regatta-tests" {
                continue;
            }
            if let Some(theirs) = layer(dep) {
                if dep != name {
                    assert!(
                        theirs < mine,
                        "{name} (layer {mine}) depends on {dep} (layer {theirs})"
                    );
                }
            }
        }
    }
}

#[test]
fn engine_knows_nothing_of_grpc_raft_or_actix() {
    let text = manifest("engine");
    for banned in ["tonic", "openraft", "actix", "prost"] {
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with(banned)),
            "engine depends on {banned}"
        );
    }
}
