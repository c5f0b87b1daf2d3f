//! [`regatta_common::OperatorSummary`] on the wire, both ways: a task report
//! carries its plan's operators, the driver's views hand them back.

use regatta_common::OperatorSummary;

impl crate::OperatorStats {
    /// Operator `o` of stage `stage_id`, as the protocol reports it.
    pub fn of(o: &OperatorSummary, stage_id: u32) -> Self {
        Self {
            stage_id,
            index: o.index,
            depth: o.depth,
            name: o.name.clone(),
            rows_in: o.rows_in,
            rows_out: o.rows_out,
            bytes_out: o.bytes_out,
            compute_nanos: o.compute_nanos,
            in_flight_peak: o.in_flight_peak,
            backpressure_nanos: o.backpressure_nanos,
        }
    }
}

impl From<&crate::OperatorStats> for OperatorSummary {
    fn from(o: &crate::OperatorStats) -> Self {
        OperatorSummary {
            index: o.index,
            depth: o.depth,
            name: o.name.clone(),
            rows_in: o.rows_in,
            rows_out: o.rows_out,
            bytes_out: o.bytes_out,
            compute_nanos: o.compute_nanos,
            in_flight_peak: o.in_flight_peak,
            backpressure_nanos: o.backpressure_nanos,
        }
    }
}
