//! The shuffle between stages: map tasks write partitioned Arrow IPC files under
//! a spill directory, namespaced by job, stage and partition; reducers read them
//! locally or over Arrow Flight (LZ4 on the wire) from the worker holding them; a
//! finished or cancelled job's files are removed together.
//!
//! Also here: the plan nodes that bound a stage ([`ShuffleWriteExec`] at its root,
//! [`ShuffleReadExec`] at its leaves) and [`RegattaCodec`], which ships plans with
//! these and regatta's other nodes through datafusion-proto.

mod codec;
mod error;
mod fetch;
mod flight_server;
mod layout;
mod logical_codec;
mod read_exec;
mod reader;
mod sink;
mod video_msg;
mod write_exec;
mod writer;

pub use codec::RegattaCodec;
pub use error::{Result, ShuffleError};
pub use fetch::{MapLocation, ShuffleFetcher};
pub use flight_server::ShuffleFlightService;
pub use layout::ShuffleLayout;
pub use logical_codec::RegattaLogicalCodec;
pub use read_exec::{ShuffleInput, ShuffleReadExec};
pub use reader::{open_map_output, read_map_output, stream_map_output};
pub use sink::{OutputSink, SinkMode, StagedOutput};
pub use write_exec::{ShufflePartitioning, ShuffleWriteExec, TaskOutput};
pub use writer::{PartitionOutput, ShuffleWriter};

/// Re-exported for the crates that ship plans.
pub use datafusion_proto;
