//! Byte-sized morsels and the bounded, concurrent operator that runs expensive
//! expressions over them.
//!
//! A physical optimizer rule ([`MorselRule`]) replaces every projection that calls
//! an expensive function (downloads, image work, user batch functions) with a
//! [`MorselExec`]. That operator cuts its input into morsels whose row count adapts to
//! the bytes each output row takes, works on several at once, and holds at most a
//! fixed number per partition: a slow consumer therefore stops it, and it in turn
//! stops pulling from its producer.

mod exec;
mod failed_rows;
mod filter;
mod in_flight;
mod row_bytes;
mod rule;
mod sizer;
mod splitter;

pub use exec::{MorselConfig, MorselExec, BACKPRESSURE_METRIC, IN_FLIGHT_PEAK_METRIC};
pub use filter::StreamingFilterExec;
pub use in_flight::InFlight;
pub use rule::MorselRule;
pub use sizer::MorselSizer;
