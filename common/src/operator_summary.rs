//! [`OperatorSummary`]: one operator's numbers from a finished physical plan,
//! in the one form the engine makes, a worker reports, the Raft log keeps and a
//! dashboard shows.

use serde::{Deserialize, Serialize};

/// One operator of a plan, its metrics summed over its partitions (or, added
/// up, over the tasks of a stage).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSummary {
    /// Its place in the plan, pre-order (the root is 0): the same operator of
    /// the same plan has the same index in every task.
    pub index: u32,
    /// Its nesting; the root is 0.
    pub depth: u32,
    /// Its kind, and for a morsel operator what it computes.
    pub name: String,
    /// Rows its children gave it (or, for a leaf, rows it read).
    pub rows_in: u64,
    pub rows_out: u64,
    /// Bytes of its output, where the operator measures them.
    pub bytes_out: u64,
    pub compute_nanos: u64,
    pub in_flight_peak: u64,
    pub backpressure_nanos: u64,
}

impl OperatorSummary {
    /// Adds another task's numbers for the same operator.
    pub fn add(&mut self, other: &OperatorSummary) {
        self.rows_in += other.rows_in;
        self.rows_out += other.rows_out;
        self.bytes_out += other.bytes_out;
        self.compute_nanos += other.compute_nanos;
        self.in_flight_peak = self.in_flight_peak.max(other.in_flight_peak);
        self.backpressure_nanos += other.backpressure_nanos;
    }
}
