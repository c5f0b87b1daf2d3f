//! Fused scaled dot-product self-attention over packed sequences: the tokens
//! of every sequence in a batch lie one after another (no padding), and each
//! attends only within its own. One piece of work is (sequence, head, block of
//! query rows): its scores `Q·Kᵀ` go into a block-sized buffer, softmax runs in
//! place, and `P·V` is written straight into the head's columns of the output.
//! Queries, keys and values are read where the fused QKV projection left them
//! (strided matrix products), so nothing is transposed or copied per head.

use std::ops::Range;

use rayon::prelude::*;

use super::elementwise::softmax_rows;
use crate::product::{product, SharedOut, Strided};

/// Query rows per piece: a 64 x 1,500 score block (Whisper's window) is 384 KB,
/// in L2 for both products.
const BLOCK: usize = 64;

thread_local! {
    /// Each thread's score block, kept between calls: a fresh 384 KB buffer per
    /// piece would be mapped, faulted in and unmapped every time.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Self-attention: `qkv` is `rows x 3d` (each row `[q | k | v]`, each
/// `heads x head_dim` wide), `sequences` the row ranges that attend among
/// themselves, `out` `rows x d`.
pub(crate) fn self_attention(
    qkv: &[f32],
    sequences: &[Range<usize>],
    heads: usize,
    d: usize,
    out: &mut [f32],
) {
    let rows = out.len() / d.max(1);
    assert!(
        heads > 0
            && d > 0
            && d.is_multiple_of(heads)
            && qkv.len() == rows * 3 * d
            && out.len() == rows * d
            && sequences.iter().all(|s| s.start <= s.end && s.end <= rows),
        "self_attention: {} qkv values, {} out values, {heads} heads, sequences {sequences:?}",
        qkv.len(),
        out.len()
    );
    let head_dim = d / heads;
    let scale = (head_dim as f32).powf(-0.5);
    let pieces: Vec<(Range<usize>, usize, usize)> = sequences
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| {
            (0..heads).flat_map(move |h| {
                (s.start..s.end)
                    .step_by(BLOCK)
                    .map(move |q| (s.clone(), h, q))
            })
        })
        .collect();
    let dst = SharedOut(out.as_mut_ptr());
    let stride = 3 * d;
    pieces.into_par_iter().for_each(|(seq, h, q0)| {
        let b = BLOCK.min(seq.end - q0);
        let base = qkv.as_ptr();
        // SAFETY: the assert above bounds every row used here by `rows` and
        // every column by `3d` (q at h·hd, k at d + h·hd, v at 2d + h·hd, each
        // hd wide); `dst` points into `out` (rows x d), and this piece alone
        // writes rows q0..q0+b of head h's columns.
        unsafe {
            attend_block(
                Strided {
                    ptr: base.add(q0 * stride + h * head_dim),
                    row: stride,
                    col: 1,
                },
                (
                    base.add(seq.start * stride + d + h * head_dim),
                    base.add(seq.start * stride + 2 * d + h * head_dim),
                    stride,
                ),
                (dst.ptr().add(q0 * d + h * head_dim), d),
                (b, seq.len(), head_dim),
                scale,
            );
        }
    });
}

/// One block of attention: `queries` rows of `q` over `keys` rows of keys
/// and values (`(k, v, row step)`), `head_dim` wide, written into `out`
/// (`(first element, row step)`); the score block is the thread's reused one.
///
/// # Safety
/// Every row named lies in a live buffer `head_dim` values wide from the
/// pointer, and no one else writes `out`'s rows meanwhile.
unsafe fn attend_block(
    q: Strided,
    (k, v, kv_row): (*const f32, *const f32, usize),
    (out, out_row): (*mut f32, usize),
    (queries, keys, head_dim): (usize, usize, usize),
    scale: f32,
) {
    SCORES.with_borrow_mut(|scores| {
        scores.clear();
        scores.resize(queries * keys, 0.0);
        // SAFETY: the caller's contract; `scores` is queries x keys.
        unsafe {
            product(
                (queries, keys, head_dim),
                scores.as_mut_ptr(),
                keys,
                q,
                Strided {
                    ptr: k,
                    row: 1,
                    col: kv_row,
                },
                scale,
            );
            softmax_rows(scores, keys);
            product(
                (queries, head_dim, keys),
                out,
                out_row,
                Strided {
                    ptr: scores.as_ptr(),
                    row: keys,
                    col: 1,
                },
                Strided {
                    ptr: v,
                    row: kv_row,
                    col: 1,
                },
                1.0,
            );
        }
    })
}

/// The shape of a one-query-row attention call, checked.
pub(crate) struct QueryShape {
    /// Sequences (query rows).
    pub(crate) rows: usize,
    pub(crate) head_dim: usize,
    /// `head_dim^-1/2`, applied to the scores.
    pub(crate) scale: f32,
}

/// Checks the arguments of a one-query-row attention (`kernel` names it in the
/// message): `q` and `out` `rows x d`, `kv_len` values of keys and values for
/// `capacity` frames of `2d` per row, `frames` of them attended over. `None`
/// (with `out` zeroed) when there is nothing to attend over. Mismatched shapes
/// are a caller's bug, never input's: they stop here before any unsafe read.
pub(crate) fn query_shape(
    kernel: &str,
    (q, out): (&[f32], &mut [f32]),
    kv_len: usize,
    (frames, capacity): (usize, usize),
    heads: usize,
    d: usize,
) -> Option<QueryShape> {
    let rows = q.len() / d.max(1);
    assert!(
        heads > 0
            && d.is_multiple_of(heads)
            && q.len() == rows * d
            && out.len() == rows * d
            && frames <= capacity
            && kv_len == rows * capacity * 2 * d,
        "{kernel}: {} q, {kv_len} kv, {} out values, {frames} of {capacity} frames, {heads} heads",
        q.len(),
        out.len()
    );
    if frames == 0 {
        out.fill(0.0);
        return None;
    }
    let head_dim = d / heads;
    Some(QueryShape {
        rows,
        head_dim,
        scale: (head_dim as f32).powf(-0.5),
    })
}

/// Attention of one query row per sequence over keys and values of its own
/// (a decoder step: over the encoded audio, or over the tokens so far): `q` is
/// `rows x d`, `kv` is `rows * capacity x 2d` (each row `[k | v]`; sequence
/// `r`'s block starts at row `r·capacity` and its first `frames` rows are
/// attended over), `out` `rows x d`.
pub(crate) fn query_attention(
    q: &[f32],
    kv: &[f32],
    frames: usize,
    capacity: usize,
    heads: usize,
    d: usize,
    out: &mut [f32],
) {
    let Some(QueryShape {
        rows,
        head_dim,
        scale,
    }) = query_shape(
        "query_attention",
        (q, &mut *out),
        kv.len(),
        (frames, capacity),
        heads,
        d,
    )
    else {
        return;
    };
    let dst = SharedOut(out.as_mut_ptr());
    let stride = 2 * d;
    (0..rows * heads).into_par_iter().for_each(|piece| {
        let (r, h) = (piece / heads, piece % heads);
        // SAFETY: the assert bounds row r of q and out (d wide) and rows
        // r·capacity..r·capacity + frames of kv (2d wide: k at h·hd, v at
        // d + h·hd); this piece alone writes row r's head-h columns of out.
        unsafe {
            let keys = kv.as_ptr().add(r * capacity * stride);
            attend_block(
                Strided {
                    ptr: q.as_ptr().add(r * d + h * head_dim),
                    row: d,
                    col: 1,
                },
                (keys.add(h * head_dim), keys.add(d + h * head_dim), stride),
                (dst.ptr().add(r * d + h * head_dim), d),
                (1, frames, head_dim),
                scale,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention by the definition, one sequence and head at a time, in f64.
    fn naive(qkv: &[f32], sequences: &[Range<usize>], heads: usize, d: usize) -> Vec<f32> {
        let hd = d / heads;
        let rows = qkv.len() / (3 * d);
        let mut out = vec![0f32; rows * d];
        let at = |r: usize, part: usize, h: usize, i: usize| {
            qkv[r * 3 * d + part * d + h * hd + i] as f64
        };
        for s in sequences {
            for h in 0..heads {
                for q in s.clone() {
                    let scores: Vec<f64> = s
                        .clone()
                        .map(|k| {
                            (0..hd)
                                .map(|i| at(q, 0, h, i) * at(k, 1, h, i))
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for i in 0..hd {
                        let v: f64 = s.clone().zip(&e).map(|(k, w)| w * at(k, 2, h, i)).sum();
                        out[q * d + h * hd + i] = (v / sum) as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn packed_sequences_attend_only_within_themselves_as_the_definition_says() {
        let (heads, d) = (3, 24);
        // Lengths across the block size, one empty sequence, one of length 1.
        let lengths = [5, 0, 1, 130, 64, 17];
        let mut sequences = Vec::new();
        let mut start = 0;
        for len in lengths {
            sequences.push(start..start + len);
            start += len;
        }
        let rows = start;
        let qkv: Vec<f32> = (0..rows * 3 * d)
            .map(|i| (((i * 2_654_435_761usize) >> 7) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let mut out = vec![f32::NAN; rows * d];
        self_attention(&qkv, &sequences, heads, d, &mut out);
        let want = naive(&qkv, &sequences, heads, d);
        for (i, (g, w)) in out.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-5, "value {i}: {g} vs {w}");
        }
    }

    #[test]
    fn one_query_per_sequence_attends_over_its_own_keys_as_the_definition_says() {
        let (heads, d, frames, capacity, rows) = (2, 16, 37, 40, 3);
        let wave = |i: usize| (((i * 2_654_435_761usize) >> 9) % 1000) as f32 / 500.0 - 1.0;
        let q: Vec<f32> = (0..rows * d).map(wave).collect();
        let kv: Vec<f32> = (0..rows * capacity * 2 * d).map(|i| wave(i + 7)).collect();
        let mut out = vec![f32::NAN; rows * d];
        query_attention(&q, &kv, frames, capacity, heads, d, &mut out);
        // The same as self-attention's answer for a sequence whose first row
        // is the query and whose keys and values are the frames.
        let hd = d / heads;
        for r in 0..rows {
            for h in 0..heads {
                let k = |f: usize, i: usize| kv[(r * capacity + f) * 2 * d + h * hd + i] as f64;
                let v = |f: usize, i: usize| kv[(r * capacity + f) * 2 * d + d + h * hd + i] as f64;
                let s: Vec<f64> = (0..frames)
                    .map(|f| {
                        (0..hd)
                            .map(|i| q[r * d + h * hd + i] as f64 * k(f, i))
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let max = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for i in 0..hd {
                    let want = (0..frames).map(|f| e[f] * v(f, i)).sum::<f64>() / sum;
                    let got = out[r * d + h * hd + i] as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "row {r} head {h} value {i}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
