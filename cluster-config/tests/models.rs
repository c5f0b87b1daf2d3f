//! `[models.<name>]`: each key parses, and a value that cannot apply is refused
//! by its key.

use regatta_cluster_config::ClusterConfig;
use regatta_common::{ModelKind, Precision};

#[test]
fn a_model_entry_parses_with_its_precision() {
    let c = ClusterConfig::parse(
        "[models.bge]\ndir = \"/m/bge\"\nkind = \"embedding\"\nbatch_size = 32\nprecision = \"int8\"\n\
         [models.whisper]\ndir = \"/m/whisper\"\n",
        "c.toml",
    )
    .unwrap();
    let bge = &c.models["bge"];
    assert_eq!(
        (bge.kind, bge.batch_size, bge.precision),
        (Some(ModelKind::Embedding), Some(32), Some(Precision::Int8))
    );
    assert_eq!(c.models["whisper"].precision, None);
}

#[test]
fn a_precision_that_cannot_apply_is_refused_by_its_key() {
    let e = ClusterConfig::parse(
        "[models.bge]\ndir = \"/m/bge\"\nprecision = \"fp8\"\n",
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("fp8") && e.contains("c.toml"), "{e}");
    let e = ClusterConfig::parse(
        "[models.photos]\ndir = \"/m/e\"\nkind = \"efficientnet\"\nprecision = \"int8\"\n",
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("models.photos.precision") && e.contains("int8"),
        "{e}"
    );
}
