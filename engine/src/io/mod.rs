//! Reading and writing: path resolution, file formats and Lance datasets.

mod dir_append;
pub mod error_table;
pub mod key_ranges;
pub mod lance;
pub mod lance_scan;
pub mod lance_staged;
pub mod paths;
pub mod reported;
pub mod resume;
pub mod sinks;
pub mod sources;
pub mod staged;
pub mod staged_remote;
pub mod url_tables;
pub mod video_frames;
pub mod video_frames_exec;

pub use paths::{expand_input, local_path};
pub use sinks::{write, FileFormat, WriteMode};
pub use sources::read;
