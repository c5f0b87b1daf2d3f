//! The layer rule of CONTRIBUTING.md, read from `cargo metadata` (what cargo
//! resolves, not lines of Cargo.toml): each crate depends only on lower layers,
//! every workspace crate has a layer, and each framework stays in the crates
//! the rule names.

use std::collections::BTreeMap;

/// The workspace crates by layer. A new crate fails the test until it is
/// given a layer here and in CONTRIBUTING.md.
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

/// Where each framework may be a dependency (of any kind), as CONTRIBUTING.md
/// states it.
const FRAMEWORKS: &[(&str, &[&str])] = &[
    ("openraft", &["regatta-scheduler"]),
    ("actix", &["regatta-actors"]),
    ("candle-core", &["regatta-actors"]),
    // The protocol's generated clients and servers live in proto; shuffle
    // serves its own files over Flight; the driver, the worker and the SDK
    // are gRPC programs; the CLI's tests and the benches call them.
    (
        "tonic",
        &[
            "regatta-proto",
            "regatta-shuffle",
            "regatta-scheduler",
            "regatta-worker",
            "regatta",
            "regatta-cli",
            "regatta-bench",
        ],
    ),
    (
        "arrow-flight",
        &["regatta-shuffle", "regatta-scheduler", "regatta-worker"],
    ),
    (
        "prost",
        &["regatta-proto", "regatta-shuffle", "regatta-scheduler"],
    ),
    // One HTTP listener (TLS off the accept loop, the token, the Host check)
    // in proto; the dashboard and the worker's metrics mount routes on it.
    ("axum", &["regatta-proto"]),
    ("hyper", &["regatta-proto"]),
    ("lance", &["regatta-engine"]),
];

/// Each workspace package's name and its dependencies (name, kind).
fn workspace() -> BTreeMap<String, Vec<(String, String)>> {
    let root = regatta_tests::repo_root();
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                    (d["name"].as_str().unwrap().to_string(), kind)
                })
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_on_lower_layers() {
    let packages = workspace();
    assert!(packages.len() >= 13, "{:?}", packages.keys());
    for (name, deps) in &packages {
        let mine = layer(name).unwrap_or_else(|| panic!("{name} has no layer"));
        for (dep, kind) in deps {
            // Tests may use the shared fixtures (an S3 server, HTTP servers,
            // images) of regatta-tests' library.
            if (kind == "dev" && dep == "regatta-tests") || dep == name {
                continue;
            }
            if let Some(theirs) = layer(dep) {
                assert!(
                    theirs < mine,
                    "{name} (layer {mine}) depends on {dep} (layer {theirs}, {kind})"
                );
            }
        }
    }
}

#[test]
fn frameworks_stay_where_the_rule_puts_them() {
    let packages = workspace();
    for (name, deps) in &packages {
        for (dep, kind) in deps {
            if let Some((_, allowed)) = FRAMEWORKS.iter().find(|(f, _)| f == dep) {
                assert!(
                    allowed.contains(&name.as_str()),
                    "{name} depends on {dep} ({kind}); CONTRIBUTING.md allows it only in {allowed:?}"
                );
            }
        }
    }
    // The engine in particular knows nothing of gRPC, Raft or actix.
    let engine = &packages["regatta-engine"];
    for banned in ["tonic", "openraft", "actix", "prost", "arrow-flight"] {
        assert!(
            !engine.iter().any(|(d, _)| d == banned),
            "engine depends on {banned}"
        );
    }
}
