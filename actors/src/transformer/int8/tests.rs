//! Tests of [`super`]: int8 products against f32, and each kernel against the
//! portable one.

use super::*;
use crate::nhwc::Activation;

fn plain<'a>(bias: &'a [f32], residual: Option<&'a [f32]>) -> Epilogue<'a> {
    Epilogue {
        bias,
        residual,
        activation: Activation::Linear,
    }
}

/// A deterministic pseudo-random matrix in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn reference(x: &[f32], w: &[f32], bias: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
    let rows = x.len() / inputs;
    let mut out = vec![0f32; rows * outputs];
    for r in 0..rows {
        for n in 0..outputs {
            let dot: f32 = (0..inputs)
                .map(|k| x[r * inputs + k] * w[k * outputs + n])
                .sum();
            out[r * outputs + n] = dot + bias[n];
        }
    }
    out
}

#[test]
fn int8_products_are_within_quantisation_error_of_f32_on_odd_shapes() {
    // Shapes off every multiple the kernel works in: rows off 4, inputs off
    // 4, outputs off 64, and one row alone (a decoder step).
    for &(rows, inputs, outputs) in &[(1, 384, 384), (7, 33, 70), (13, 384, 1152), (5, 3, 1)] {
        let x = values(rows * inputs, 1);
        let w = values(inputs * outputs, 2);
        let bias = values(outputs, 3);
        let residual = values(rows * outputs, 4);
        let q = Int8Weights::quantize(inputs, outputs, |k, n| w[k * outputs + n]);
        let want = reference(&x, &w, &bias, inputs, outputs);
        // This CPU's kernel and the portable one (8-bit inputs) alike.
        for kernel in [Kernel::detect(), Kernel::Portable] {
            let mut got = vec![f32::NAN; rows * outputs];
            q.product_with(kernel, &x, plain(&bias, None), &mut got);
            // Each product's error is at most half a step of each operand:
            // bounded by sqrt(inputs) steps for random signs, 4 for margin.
            let tol = 4.0 * (inputs as f32).sqrt() / 127.0;
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= tol,
                    "{kernel:?} {rows}x{inputs}x{outputs} [{i}]: {g} vs {w}"
                );
            }
        }
        let mut got = vec![f32::NAN; rows * outputs];
        q.product(&x, plain(&bias, None), &mut got);
        let mut with_residual = vec![0f32; rows * outputs];
        q.product(&x, plain(&bias, Some(&residual)), &mut with_residual);
        for ((a, b), r) in with_residual.iter().zip(&got).zip(&residual) {
            assert!((a - (b + r)).abs() < 1e-5, "{a} vs {b} + {r}");
        }
    }
}

#[test]
fn the_vnni_kernel_and_the_portable_one_agree_exactly() {
    if Kernel::detect() != Kernel::Vnni {
        eprintln!("skipped: this CPU has no AVX-512 VNNI, only the portable kernel runs");
        return;
    }
    let (rows, inputs, outputs) = (11, 200, 130);
    let x = values(rows * inputs, 5);
    let w = values(inputs * outputs, 6);
    let bias = values(outputs, 7);
    let q = Int8Weights::quantize(inputs, outputs, |k, n| w[k * outputs + n]);
    let mut a = vec![0f32; rows * outputs];
    let mut b = vec![0f32; rows * outputs];
    q.product_with(Kernel::Vnni, &x, plain(&bias, None), &mut a);
    q.product_with(Kernel::Portable, &x, plain(&bias, None), &mut b);
    assert_eq!(a, b);
}

/// The AVX2 tile against the portable one on the same rows (bytes up to
/// 255), every row count a tile takes, inputs off a multiple of the group;
/// and whole products bit for bit.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_avx2_tile_and_the_portable_one_agree_exactly() {
    if !std::arch::is_x86_feature_detected!("avx2") {
        eprintln!("skipped: this CPU has no AVX2");
        return;
    }
    let (rows, inputs, outputs) = (4, 201, 64);
    let x = values(rows * inputs, 8);
    let w = values(inputs * outputs, 9);
    let weights = Int8Weights::quantize(inputs, outputs, |k, n| w[k * outputs + n]);
    let mut q = QuantizedRows::default();
    q.fill(Kernel::Avx2, &x, rows, inputs, weights.groups);
    for n in 1..=ROWS {
        let mut fast = [[7i32; PANEL]; ROWS];
        let mut slow = [[7i32; PANEL]; ROWS];
        Kernel::Avx2.tile(&q, 0, n, weights.panel(0), weights.groups, &mut fast);
        portable_tile(
            &q.bytes,
            q.stride,
            n,
            weights.panel(0),
            weights.groups,
            &mut slow,
        );
        assert_eq!(fast[..n], slow[..n], "{n} rows");
    }
    assert!(q.bytes.iter().any(|b| *b > 127), "8-bit inputs");
    let (rows, outputs) = (9, 130);
    let x = values(rows * inputs, 11);
    let w = values(inputs * outputs, 12);
    let bias = values(outputs, 13);
    let weights = Int8Weights::quantize(inputs, outputs, |k, n| w[k * outputs + n]);
    let mut a = vec![0f32; rows * outputs];
    let mut b = vec![0f32; rows * outputs];
    weights.product_with(Kernel::Avx2, &x, plain(&bias, None), &mut a);
    weights.product_with(Kernel::Portable, &x, plain(&bias, None), &mut b);
    for (i, (a, b)) in a.iter().zip(&b).enumerate() {
        // The epilogue's float arithmetic may differ in its last bit
        // (FMA contraction under the AVX2 target); the sums do not.
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "[{i}] {a} vs {b}");
    }
}

/// The AVX2 quantiser against the portable one: the same scales and zero
/// points, bytes within the fused multiply-add's one rounding.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_avx2_quantiser_matches_the_portable_one() {
    if Kernel::detect() != Kernel::Avx2 {
        eprintln!("skipped: this CPU's kernel is not the AVX2 one");
        return;
    }
    for &(rows, inputs) in &[(3, 384), (5, 13), (2, 1), (1, 1536)] {
        let x = values(rows * inputs, 10);
        let stride = inputs.div_ceil(GROUP) * GROUP;
        let mut fast = (vec![0u8; rows * stride], vec![0f32; rows], vec![0i32; rows]);
        let mut slow = (vec![9u8; rows * stride], vec![0f32; rows], vec![0i32; rows]);
        quantize(
            Kernel::Avx2,
            &x,
            inputs,
            &mut fast.0,
            &mut fast.1,
            &mut fast.2,
        );
        quantize(
            Kernel::Portable,
            &x,
            inputs,
            &mut slow.0,
            &mut slow.1,
            &mut slow.2,
        );
        assert_eq!((&fast.1, &fast.2), (&slow.1, &slow.2), "{rows}x{inputs}");
        for (a, b) in fast.0.iter().zip(&slow.0) {
            assert!(a.abs_diff(*b) <= 1, "{rows}x{inputs}: {a} vs {b}");
        }
    }
}

#[test]
fn zero_rows_and_zero_weights_give_the_bias() {
    let q = Int8Weights::quantize(8, 3, |_, _| 0.0);
    let x = vec![0f32; 2 * 8];
    let mut out = vec![f32::NAN; 2 * 3];
    q.product(&x, plain(&[1.0, 2.0, 3.0], None), &mut out);
    assert_eq!(out, vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
}
