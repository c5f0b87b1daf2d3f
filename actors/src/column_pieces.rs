//! A dense product with too few rows to split across the cores (a decoder
//! step's handful of tokens), split by output columns instead: its time is
//! reading the weights, which one core alone does at half the speed of two.

use rayon::prelude::*;

use crate::nhwc::{start_rows, Activation};
use crate::product::{product_add, SharedOut, Strided};

/// A dense product's operands: `x` (`rows x inputs`) times `weights_t`
/// (`inputs x outputs`), plus `bias` and, where given, `residual`.
pub(crate) struct Operands<'a> {
    pub x: &'a [f32],
    pub rows: usize,
    pub weights_t: &'a [f32],
    pub bias: &'a [f32],
    pub residual: Option<&'a [f32]>,
}

/// Output columns per parallel piece when a product has too few rows to
/// split (a decoder step's handful of tokens): its time is reading the
/// weights, which one core alone does at half the speed of two. `None` when
/// one core should do it all (one thread, or too few columns to share).
pub(crate) fn columns_per_piece(outputs: usize) -> Option<usize> {
    let threads = rayon::current_num_threads();
    // At least 64 columns a piece, a multiple of gemm's 16-column tiles.
    let width = outputs.div_ceil(threads * 2).next_multiple_of(16).max(64);
    (threads > 1 && width < outputs).then_some(width)
}

/// [`pointwise`](crate::nhwc::pointwise) split by output columns: each piece computes `width`
/// columns of every row (bias, residual, product and an elementwise
/// activation), reading only its columns of the weights.
pub(crate) fn pointwise_columns(
    operands: Operands<'_>,
    activation: Activation<'_>,
    out: &mut [f32],
    width: usize,
) {
    let Operands {
        x,
        rows,
        weights_t,
        bias,
        residual,
    } = operands;
    let outputs = bias.len();
    let inputs = weights_t.len() / outputs.max(1);
    assert!(
        x.len() == rows * inputs
            && out.len() == rows * outputs
            && weights_t.len() == inputs * outputs
            && residual.is_none_or(|r| r.len() == out.len()),
        "pointwise: {rows} rows, {} inputs, {} weights, {} outputs",
        x.len(),
        weights_t.len(),
        out.len()
    );
    start_rows(out, bias, residual);
    let dst = SharedOut(out.as_mut_ptr());
    (0..outputs).into_par_iter().step_by(width).for_each(|c0| {
        let n = width.min(outputs - c0);
        // SAFETY: the assert bounds x (rows x inputs), the weights (inputs x
        // outputs, columns c0..c0+n read with their row step) and out (rows x
        // outputs), of which this piece alone reads and writes columns
        // c0..c0+n of every row.
        unsafe {
            let lhs = Strided {
                ptr: x.as_ptr(),
                row: inputs,
                col: 1,
            };
            let rhs = Strided {
                ptr: weights_t.as_ptr().add(c0),
                row: outputs,
                col: 1,
            };
            product_add((rows, n, inputs), dst.ptr().add(c0), outputs, lhs, rhs);
            for r in 0..rows {
                let cells = std::slice::from_raw_parts_mut(dst.ptr().add(r * outputs + c0), n);
                activation.apply_elementwise(cells);
            }
        }
    });
}
