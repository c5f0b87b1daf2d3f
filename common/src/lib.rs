//! Types every regatta layer shares: newtype identifiers, byte sizes and resource
//! requests.

mod abort_on_drop;
pub mod access;
mod clock;
mod error;
mod file_format;
mod ids;
mod listen;
mod manifest_dir;
mod model_kind;
mod operator_summary;
mod precision;
pub mod prometheus;
mod resources;
mod secret_env;
mod size;

pub use abort_on_drop::AbortOnDrop;
pub use access::{AccessPolicy, UrlScheme};
pub use clock::unix_ms_now;
pub use error::{CommonError, Result};
pub use file_format::{FileFormat, WriteMode};
pub use ids::{JobId, MapPartition, RequestId, StageId, WorkerId};
pub use listen::{check_listener, is_loopback};
pub use model_kind::ModelKind;
pub use operator_summary::OperatorSummary;
pub use precision::Precision;
pub use resources::Resources;
pub use secret_env::{secret_var, SECRETS_MODULE_VAR};
pub use size::ByteSize;

/// Whether `a` and `b` are equal, in time that does not depend on where they
/// differ (only on their lengths): for comparing secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// 128 random bits in hex, for request ids and ownership tokens: std's hasher
/// keys are seeded from the OS per process, and every `RandomState` differs
/// from the last.
pub fn random_hex_128() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}
