//! What regatta's own execution plans have in common, written once: for leaves
//! (the Lance fragment scan, video frames, the shuffle read) the properties of a
//! bounded source emitting as it reads and the methods of a node without
//! children; for one-input nodes that keep their input's order (the morsel
//! operator, the streaming filter, the worker's yield) the name, the child and
//! the order. Each plan keeps only its own parts: what it shows, how it
//! executes a partition, how it is rebuilt over a new child.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{Partitioning, PlanProperties};

/// A bounded leaf's properties: `partitions` partitions (at least one, so a
/// source with nothing to read still runs and yields no rows), rows emitted as
/// they are read, nothing known of their order.
pub fn leaf_properties(schema: &SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema.clone()),
        Partitioning::UnknownPartitioning(partitions.max(1)),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// The `ExecutionPlan` methods of a leaf whose struct keeps its
/// `properties: Arc<PlanProperties>` (made by [`leaf_properties`]): its name,
/// those properties, no children, and itself for any new children. Used inside
/// the `impl ExecutionPlan` block, beside `execute` (and `metrics` where kept).
#[macro_export]
macro_rules! leaf_exec_methods {
    ($name:literal) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(
            &self,
        ) -> &::std::sync::Arc<$crate::datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn children(
            &self,
        ) -> ::std::vec::Vec<&::std::sync::Arc<dyn $crate::datafusion::physical_plan::ExecutionPlan>>
        {
            ::std::vec::Vec::new()
        }

        fn with_new_children(
            self: ::std::sync::Arc<Self>,
            _children: ::std::vec::Vec<
                ::std::sync::Arc<dyn $crate::datafusion::physical_plan::ExecutionPlan>,
            >,
        ) -> $crate::datafusion::error::Result<
            ::std::sync::Arc<dyn $crate::datafusion::physical_plan::ExecutionPlan>,
        > {
            Ok(self)
        }
    };
}

/// The `ExecutionPlan` methods of a node over one input (a field `input:
/// Arc<dyn ExecutionPlan>`) that emits its rows in the input's order: its
/// name, that child, and that it keeps the order. Used inside the `impl
/// ExecutionPlan` block; `properties`, `with_new_children` and `execute` stay
/// the node's own.
#[macro_export]
macro_rules! unary_exec_methods {
    ($name:expr) => {
        fn name(&self) -> &str {
            $name
        }

        fn children(
            &self,
        ) -> ::std::vec::Vec<&::std::sync::Arc<dyn $crate::datafusion::physical_plan::ExecutionPlan>>
        {
            ::std::vec![&self.input]
        }

        fn maintains_input_order(&self) -> ::std::vec::Vec<bool> {
            ::std::vec![true]
        }
    };
}
