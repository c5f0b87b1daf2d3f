//! `docs/config.md` documents every key of the config types, and is current.

// Test scaffolding: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use regatta_cluster_config::reference::{keys_with_defaults, reference_markdown, KEYS};
use regatta_cluster_config::ClusterConfig;

#[test]
fn every_key_of_the_config_types_is_documented() {
    let documented: Vec<&str> = KEYS.iter().map(|k| k.key).collect();
    let keys = keys_with_defaults();
    assert!(keys.len() > 5, "{keys:?}");
    for k in &keys {
        assert!(documented.contains(&k.as_str()), "{k} has no entry in KEYS");
    }
}

#[test]
fn every_documented_key_is_accepted_with_its_example() {
    for k in KEYS {
        let (section, name) = k.key.split_once('.').unwrap();
        let mut text = format!("[{section}]\n{name} = {}\n", k.example);
        // The TLS keys go together.
        if name.starts_with("tls_") {
            for other in KEYS.iter().filter(|o| o.key.starts_with("cluster.tls_")) {
                if other.key != k.key {
                    let other_name = other.key.split_once('.').unwrap().1;
                    text.push_str(&format!("{other_name} = {}\n", other.example));
                }
            }
        }
        if let Err(e) = ClusterConfig::parse(&text, "example.toml") {
            panic!("{}: {e}", k.key);
        }
    }
}

#[test]
fn docs_config_md_is_current() {
    let path = regatta_common::manifest_dir!().join("../docs/config.md");
    let want = reference_markdown();
    if std::env::var_os("REGATTA_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date: run `REGATTA_BLESS=1 cargo test -p regatta-cluster-config`",
        path.display()
    );
}
