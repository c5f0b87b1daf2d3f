//! regatta's single-node engine: DataFusion for the relational core, plus multimodal
//! types and functions, byte-sized morsels and bounded, concurrent operators.
//!
//! The engine knows nothing of gRPC, Raft or actix: the SDK and the cluster crates
//! drive it through [`Engine`].

pub mod access;
pub mod audio;
pub mod decoder_guard;
pub mod document;
pub mod engine;
pub mod error;
pub mod functions;
pub mod image;
pub mod io;
pub mod morsel;
pub mod operator_summary;
pub mod options;
pub mod plan_methods;
pub mod row_errors;
pub mod storage;
pub mod types;
pub mod video;

pub use engine::Engine;
pub use error::{EngineError, Result};
pub use options::EngineOptions;
pub use row_errors::{FailureBudget, RowErrorPolicy, RowErrorSink, RowFailureCounts};

/// Re-exported so higher layers use the exact DataFusion and Arrow this engine was built with.
pub use datafusion;
pub use datafusion::arrow;
