//! The regatta Rust SDK: a [`Session`], lazy [`DataFrame`]s with relational and
//! multimodal operations, and SQL.
//!
//! ```
//! use regatta::prelude::*;
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> regatta::Result<()> {
//! let session = Session::local();
//! let df = session.sql("SELECT 1 + 1 AS two").await?;
//! let batches = df.collect().await?;
//! assert_eq!(batches[0].num_rows(), 1);
//! # Ok(())
//! # }
//! ```

mod cluster;
mod dataframe;
mod error;
mod execution;
mod expr;
mod result_stream;
mod session;

pub use cluster::ClusterClient;
pub use dataframe::DataFrame;
pub use error::{Error, Result};
pub use execution::{Execution, OperatorMetrics};
pub use expr::MultimodalExt;
pub use result_stream::ResultStream;
pub use session::{BatchFunction, ModelFunction, Session};

pub use regatta_common::access::{AccessPolicy, UrlScheme};
pub use regatta_engine::arrow;
pub use regatta_engine::datafusion;
/// Decoders now running past their `timeout_ms` in this process (see docs/recovery.md).
pub use regatta_engine::decoder_guard::stuck_decoders;
pub use regatta_engine::functions::{BatchUdf, OnError};
pub use regatta_engine::image::ImageMode;
pub use regatta_engine::io::{FileFormat, WriteMode};
/// Object stores (`s3://`, `gs://`, `az://`): the process-wide settings.
pub use regatta_engine::storage;
pub use regatta_engine::video::{FrameSelection, VideoOptions};
pub use regatta_engine::{types, EngineOptions, FailureBudget, RowErrorPolicy};
pub use regatta_proto as proto;

/// Everything a pipeline usually needs, in one import.
pub mod prelude {
    pub use crate::arrow::record_batch::RecordBatch;
    pub use crate::datafusion::functions_aggregate::expr_fn::{avg, count, max, min, sum};
    pub use crate::datafusion::logical_expr::{JoinType, SortExpr};
    pub use crate::datafusion::prelude::{col, lit, Expr};
    pub use crate::{
        BatchUdf, DataFrame, EngineOptions, FileFormat, FrameSelection, ImageMode, ModelFunction,
        MultimodalExt, OnError, Session, VideoOptions, WriteMode,
    };
}

/// Direct access to Lance datasets (open, random-access take, vector search).
pub mod lance_io {
    pub use regatta_engine::io::lance::{nearest, open, take, write_stream};
}

/// Models served by actor pools: implement [`ModelFactory`](models::ModelFactory)
/// and [`Model`](models::Model), then `Session::register_model`.
pub mod models {
    pub use regatta_actors::efficientnet;
    pub use regatta_actors::minilm;
    pub use regatta_actors::mtcnn;
    pub use regatta_actors::whisper;
    pub use regatta_actors::{model_pull, model_store};
    pub use regatta_actors::{
        ActorContext, ActorError, ActorId, ActorRuntime, Model, ModelEntry, ModelError,
        ModelFactory, ModelKind, ModelStore, NodeResources, PoolConfig, ResolvedModel,
        ResourceOverrides,
    };
    pub use regatta_common::Resources;
    pub use regatta_engine::functions::ModelPoolStats;
}
