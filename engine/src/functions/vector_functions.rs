//! Distances between embeddings: `cosine_distance`, `dot_product`, `l2_distance`.
//! Either side may be a column or a constant vector (a query).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float32Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::check_arity;

/// Which distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorOp {
    Cosine,
    Dot,
    L2,
}

impl VectorOp {
    /// Every distance.
    pub const ALL: [VectorOp; 3] = [Self::Cosine, Self::Dot, Self::L2];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cosine => "cosine_distance",
            Self::Dot => "dot_product",
            Self::L2 => "l2_distance",
        }
    }

    /// The distance between two equal-length vectors.
    pub fn apply(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Self::Dot => a
                .iter()
                .zip(b)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum(),
            Self::L2 => a
                .iter()
                .zip(b)
                .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                .sum::<f64>()
                .sqrt(),
            Self::Cosine => {
                let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
                for (x, y) in a.iter().zip(b) {
                    let (x, y) = (f64::from(*x), f64::from(*y));
                    dot += x * y;
                    na += x * x;
                    nb += y * y;
                }
                if na == 0.0 || nb == 0.0 {
                    f64::NAN
                } else {
                    1.0 - dot / (na.sqrt() * nb.sqrt())
                }
            }
        }
    }
}

/// One distance function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VectorFunction {
    op: VectorOp,
    signature: Signature,
}

impl VectorFunction {
    /// The function for `op`.
    pub fn new(op: VectorOp) -> Self {
        Self {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

fn is_vector(t: &DataType) -> bool {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            f.data_type().is_numeric()
        }
        _ => false,
    }
}

/// The rows of a vector column as f32 lists.
fn as_f32_list(a: &ArrayRef) -> Result<ArrayRef> {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    Ok(cast(a, &DataType::List(item))?)
}

impl ScalarUDFImpl for VectorFunction {
    fn name(&self) -> &str {
        self.op.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arity(self.op.name(), arg_types.len(), 2, 2, "distance(a, b)")?;
        for t in arg_types {
            if !is_vector(t) && t != &DataType::Null {
                return Err(DataFusionError::Plan(format!(
                    "{} expects two numeric vectors (lists), got {t}",
                    self.op.name()
                )));
            }
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let a = as_f32_list(&args.args[0].to_array(rows)?)?;
        let b = as_f32_list(&args.args[1].to_array(rows)?)?;
        let (a, b) = (a.as_list::<i32>(), b.as_list::<i32>());
        let mut out = Float64Builder::with_capacity(rows);
        for i in 0..rows {
            if a.is_null(i) || b.is_null(i) {
                out.append_null();
                continue;
            }
            let (va, vb) = (a.value(i), b.value(i));
            let (va, vb) = (
                va.as_primitive::<Float32Type>(),
                vb.as_primitive::<Float32Type>(),
            );
            if va.len() != vb.len() {
                return Err(DataFusionError::Execution(format!(
                    "{}: row {i} compares vectors of {} and {} dimensions",
                    self.op.name(),
                    va.len(),
                    vb.len()
                )));
            }
            out.append_value(self.op.apply(va.values(), vb.values()));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::VectorOp;

    #[test]
    fn distances_match_hand_computation() {
        let a = [1.0f32, 0.0, 0.0];
        let b = [0.0f32, 1.0, 0.0];
        assert_eq!(VectorOp::Dot.apply(&a, &b), 0.0);
        assert!((VectorOp::Cosine.apply(&a, &b) - 1.0).abs() < 1e-12);
        assert!((VectorOp::L2.apply(&a, &b) - 2f64.sqrt()).abs() < 1e-12);
        assert!(VectorOp::Cosine.apply(&a, &a).abs() < 1e-12);
    }
}
