//! Shuffle files: a map task hash-partitions its output into compressed Arrow IPC
//! files under a spill directory, namespaced by job, stage and partition; reducers
//! read one partition; a finished or cancelled job's files are removed together.
//!
//! The Arrow Flight service that serves these files to other nodes comes with the
//! cluster issue; this crate is the on-disk half it will stand on.

mod error;
mod layout;
mod reader;
mod writer;

pub use error::{Result, ShuffleError};
pub use layout::ShuffleLayout;
pub use reader::read_partition;
pub use writer::{PartitionOutput, ShuffleWriter};
