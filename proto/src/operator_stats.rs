//! [`regatta_common::OperatorSummary`] on the wire, both ways: a task report
//! carries its plan's operators, the driver's views hand them back.

use regatta_common::OperatorSummary;

/// `Target { extra.., <every OperatorSummary field copied from src> }`: the
/// field list written once for both directions.
macro_rules! with_operator_fields {
    ($src:expr, $target:ident { $($extra:ident: $value:expr),* }) => {{
        let o = $src;
        $target {
            $($extra: $value,)*
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
    }};
}

impl crate::OperatorStats {
    /// Operator `o` of stage `stage_id`, as the protocol reports it.
    pub fn of(o: &OperatorSummary, stage_id: u32) -> Self {
        with_operator_fields!(o, Self { stage_id: stage_id })
    }
}

impl From<&crate::OperatorStats> for OperatorSummary {
    fn from(o: &crate::OperatorStats) -> Self {
        with_operator_fields!(o, OperatorSummary {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_crosses_the_wire_and_back_unchanged() {
        let summary = OperatorSummary {
            index: 3,
            depth: 1,
            name: "ProjectionExec".into(),
            rows_in: 10,
            rows_out: 7,
            bytes_out: 700,
            compute_nanos: 12_345,
            in_flight_peak: 4,
            backpressure_nanos: 99,
        };
        let wire = crate::OperatorStats::of(&summary, 5);
        assert_eq!(wire.stage_id, 5);
        assert_eq!(OperatorSummary::from(&wire), summary);
    }
}
