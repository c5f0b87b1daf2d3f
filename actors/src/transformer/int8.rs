//! int8 dense products: dynamic quantisation, as PyTorch's `quantize_dynamic`
//! and ONNX Runtime's `DynamicQuantizeLinear` + `MatMulInteger` do it. Weights
//! are quantised once, symmetrically per output channel (`scale = max|w| /
//! 127`); each row of the input is quantised when the product runs to unsigned
//! bytes over its own range (`[min(x, 0), max(x, 0)]` in 255 steps, zero exact
//! at the row's zero point `z`), which is what AVX-512 VNNI's `vpdpbusd`
//! multiplies (unsigned by signed bytes), and which keeps a full 8 bits for
//! one-sided rows (GELU's outputs). The zero point is taken back out exactly:
//! `Σ (q - z) w = Σ q w - z Σ w`, with `Σ w` kept per output. Products
//! accumulate in i32 (no saturation: `vpdpbusd` widens before it adds) and
//! leave as `acc · scale_row · scale_out + bias (+ residual)`.
//!
//! `vpdpbusd` does 64 multiply-adds per instruction where an f32 FMA does 16.
//! CPUs without AVX-512 VNNI but with AVX2 run the same packed layout through
//! 16-bit `vpmaddwd` (int8/avx2.rs, equal to the portable loop bit for bit);
//! others through a portable loop (correct, not fast). Measured on an AVX2-only CPU, the portable loop
//! ran MiniLM at a thirteenth of the f32 kernels' speed (benches/RESULTS.md).

use crate::product::SharedOut;
use rayon::prelude::*;

/// Output columns of one packed panel: four 16-lane registers.
const PANEL: usize = 64;
/// Inputs one `vpdpbusd` lane takes at a time.
const GROUP: usize = 4;
/// Bytes of one panel's group: `PANEL` columns of `GROUP` inputs.
const PANEL_GROUP: usize = PANEL * GROUP;
/// Rows of one micro tile (its 4 x 4 accumulators fill 16 of 32 registers).
const ROWS: usize = 4;

/// A weight matrix quantised to int8 per output channel, packed in panels of
/// 64 outputs: within a panel, group `g` holds inputs `4g..4g+4` of each
/// output as 4 consecutive bytes, output after output (one 64-byte register
/// per 16 outputs).
#[derive(Debug, Clone)]
pub(crate) struct Int8Weights {
    inputs: usize,
    outputs: usize,
    groups: usize,
    packed: Vec<i8>,
    /// Per output: its weights' scale.
    scales: Vec<f32>,
    /// Per output: `Σ_k q_w[k]`, which each row's zero point multiplies.
    sums: Vec<i32>,
}

impl Int8Weights {
    /// Quantises the `inputs x outputs` matrix whose value at (input, output)
    /// is `weight(input, output)`.
    pub fn quantize(inputs: usize, outputs: usize, weight: impl Fn(usize, usize) -> f32) -> Self {
        let groups = inputs.div_ceil(GROUP);
        let panels = outputs.div_ceil(PANEL);
        let mut packed = vec![0i8; panels * groups * PANEL_GROUP];
        let mut scales = vec![0f32; outputs];
        let mut sums = vec![0i32; outputs];
        for n in 0..outputs {
            let max = (0..inputs).fold(0f32, |m, k| m.max(weight(k, n).abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            let (panel, column) = (n / PANEL, n % PANEL);
            let mut sum = 0i32;
            for k in 0..inputs {
                let q = (weight(k, n) / scale)
                    .round_ties_even()
                    .clamp(-127.0, 127.0) as i8;
                sum += i32::from(q);
                let at = (panel * groups + k / GROUP) * PANEL_GROUP + column * GROUP + k % GROUP;
                packed[at] = q;
            }
            scales[n] = scale;
            sums[n] = sum;
        }
        Self {
            inputs,
            outputs,
            groups,
            packed,
            scales,
            sums,
        }
    }

    pub fn inputs(&self) -> usize {
        self.inputs
    }

    fn panel(&self, p: usize) -> &[i8] {
        let len = self.groups * PANEL_GROUP;
        &self.packed[p * len..(p + 1) * len]
    }

    /// `out = activation(x · W + bias (+ residual))`: `x` is `rows x inputs`,
    /// `out` and `residual` are `rows x outputs`.
    pub fn product(&self, x: &[f32], epilogue: Epilogue<'_>, out: &mut [f32]) {
        self.product_with(Kernel::detect(), x, epilogue, out)
    }

    fn product_with(&self, kernel: Kernel, x: &[f32], epilogue: Epilogue<'_>, out: &mut [f32]) {
        let rows = x.len() / self.inputs.max(1);
        assert!(
            x.len() == rows * self.inputs
                && out.len() == rows * self.outputs
                && epilogue.bias.len() == self.outputs
                && epilogue.residual.is_none_or(|r| r.len() == out.len()),
            "int8 product: {} inputs, {} outputs, {} bias values for {} and {} values",
            self.inputs,
            self.outputs,
            epilogue.bias.len(),
            x.len(),
            out.len()
        );
        if rows == 0 || self.outputs == 0 {
            return;
        }
        // The quantised input in this thread's buffer, kept between products
        // (a fresh one was mapped, zeroed and unmapped per call); a fresh one
        // when the buffer is in use (a product started while this thread
        // waited inside another, as rayon's work stealing allows).
        QUANTIZED.with(|cell| match cell.try_borrow_mut() {
            Ok(mut q) => {
                q.fill(kernel, x, rows, self.inputs, self.groups);
                self.run(kernel, &q, rows, &epilogue, out);
                q.release_if_large();
            }
            Err(_) => {
                let mut q = QuantizedRows::default();
                q.fill(kernel, x, rows, self.inputs, self.groups);
                self.run(kernel, &q, rows, &epilogue, out);
            }
        });
    }

    /// The product's pieces over the quantised input `q` (`rows` rows).
    fn run(
        &self,
        kernel: Kernel,
        q: &QuantizedRows,
        rows: usize,
        epilogue: &Epilogue<'_>,
        out: &mut [f32],
    ) {
        let panels = self.outputs.div_ceil(PANEL);
        // Pieces: whole rows of the output where there are rows enough for every
        // core (an encoder's batch), else panels of columns too (a decoder step
        // of a few rows against a wide projection).
        let threads = rayon::current_num_threads().max(1);
        let row_piece = rows
            .div_ceil(threads * 2)
            .next_multiple_of(ROWS)
            .clamp(ROWS, 256);
        let row_pieces = rows.div_ceil(row_piece);
        let panel_piece = panels.div_ceil((threads * 4).div_ceil(row_pieces)).max(1);
        let tiles: Vec<(usize, usize)> = (0..row_pieces)
            .flat_map(|r| (0..panels.div_ceil(panel_piece)).map(move |p| (r, p)))
            .collect();
        let out = SharedOut(out.as_mut_ptr());
        tiles.par_iter().for_each(|&(r, p)| {
            let piece = Piece {
                rows: (r * row_piece)..((r + 1) * row_piece).min(rows),
                panels: (p * panel_piece)..((p + 1) * panel_piece).min(panels),
            };
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `detect` saw the CPU's AVX-512 F, BW and VNNI; the
                // piece's cells of `out` are its own (tiles are disjoint), and
                // `out` is `rows x outputs` (asserted above).
                Kernel::Vnni => unsafe { self.piece_vnni(q, &piece, epilogue, out) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `detect` saw the CPU's AVX2; the rest as above.
                Kernel::Avx2 => unsafe { self.piece_avx2(q, &piece, epilogue, out) },
                // SAFETY: as above, without the CPU features.
                _ => unsafe { self.piece(kernel, q, &piece, epilogue, out) },
            }
        });
    }

    /// [`Self::piece`] compiled for AVX-512, so its epilogue is vectorised 16 wide.
    ///
    /// # Safety
    /// As [`Self::piece`], on a CPU with AVX-512 F, BW and VNNI.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn piece_vnni(
        &self,
        q: &QuantizedRows,
        piece: &Piece,
        epilogue: &Epilogue<'_>,
        out: SharedOut,
    ) {
        // SAFETY: the caller's contract.
        unsafe { self.piece(Kernel::Vnni, q, piece, epilogue, out) }
    }

    /// [`Self::piece`] compiled for AVX2, so its epilogue is vectorised 8 wide.
    ///
    /// # Safety
    /// As [`Self::piece`], on a CPU with AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn piece_avx2(
        &self,
        q: &QuantizedRows,
        piece: &Piece,
        epilogue: &Epilogue<'_>,
        out: SharedOut,
    ) {
        // SAFETY: the caller's contract.
        unsafe { self.piece(Kernel::Avx2, q, piece, epilogue, out) }
    }

    /// One piece of the product: its rows against its panels, each 4 x 64 micro
    /// tile finished (scales, bias, residual, activation) while it is in cache.
    ///
    /// # Safety
    /// `out` is the product's `rows x outputs` output and no one else writes
    /// this piece's cells meanwhile; `kernel` runs on this CPU.
    #[inline(always)]
    unsafe fn piece(
        &self,
        kernel: Kernel,
        q: &QuantizedRows,
        piece: &Piece,
        epilogue: &Epilogue<'_>,
        out: SharedOut,
    ) {
        let outputs = self.outputs;
        let mut acc = [[0i32; PANEL]; ROWS];
        for panel in piece.panels.clone() {
            let weights = self.panel(panel);
            let first = panel * PANEL;
            let columns = PANEL.min(outputs - first);
            let scales = &self.scales[first..first + columns];
            let sums = &self.sums[first..first + columns];
            let bias = &epilogue.bias[first..first + columns];
            for row in piece.rows.clone().step_by(ROWS) {
                let n = ROWS.min(piece.rows.end - row);
                kernel.tile(q, row, n, weights, self.groups, &mut acc);
                for (i, acc) in acc.iter().take(n).enumerate() {
                    let at = (row + i) * outputs + first;
                    // SAFETY: the caller's contract: this piece's cells.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.ptr().add(at), columns) };
                    let (row_scale, zero) = (q.scales[row + i], q.zeros[row + i]);
                    // Wrapping: no overflow checks to stop vectorising (the
                    // products fit: |acc| < 2^31 for any inputs below 2^15).
                    for (((d, a), s), (sum, b)) in dst
                        .iter_mut()
                        .zip(acc)
                        .zip(scales)
                        .zip(sums.iter().zip(bias))
                    {
                        *d = a.wrapping_sub(zero.wrapping_mul(*sum)) as f32 * (row_scale * s) + b;
                    }
                    if let Some(r) = epilogue.residual {
                        dst.iter_mut()
                            .zip(&r[at..at + columns])
                            .for_each(|(d, r)| *d += r);
                    }
                    epilogue.activation.apply_elementwise(dst);
                }
            }
        }
    }
}

/// What a product does to its output after the matrix product.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epilogue<'a> {
    pub bias: &'a [f32],
    pub residual: Option<&'a [f32]>,
    /// Applied to each finished tile; it must act element by element.
    pub activation: crate::nhwc::Activation<'a>,
}

/// The rows and panels one parallel piece computes.
struct Piece {
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
}

thread_local! {
    /// Each thread's quantised input, reused by the products it starts.
    static QUANTIZED: std::cell::RefCell<QuantizedRows> =
        std::cell::RefCell::new(QuantizedRows::default());
}

/// The most bytes a thread keeps between products: an encoder window's
/// widest input (1,500 x 1,536) fits; a larger batch's buffer is let go.
const KEPT_BYTES: usize = 4 << 20;

/// The input quantised per row: `rows x (groups * 4)` bytes (padding inputs
/// hold the row's zero point, so they add nothing), each row's scale and zero
/// point.
#[derive(Default)]
struct QuantizedRows {
    bytes: Vec<u8>,
    stride: usize,
    scales: Vec<f32>,
    zeros: Vec<i32>,
}

/// Rows quantised per parallel piece.
const QUANTIZE_PIECE: usize = 64;

impl QuantizedRows {
    /// Quantises `rows` rows of `x` (`inputs` wide) into this buffer with
    /// `kernel`'s quantiser; every byte, scale and zero point is written
    /// (padding included).
    fn fill(&mut self, kernel: Kernel, x: &[f32], rows: usize, inputs: usize, groups: usize) {
        let stride = groups * GROUP;
        self.stride = stride;
        self.bytes.resize(rows * stride, 0);
        self.scales.resize(rows, 0.0);
        self.zeros.resize(rows, 0);
        let (bytes, scales, zeros) = (
            &mut self.bytes[..rows * stride],
            &mut self.scales[..rows],
            &mut self.zeros[..rows],
        );
        bytes
            .par_chunks_mut(stride * QUANTIZE_PIECE)
            .zip(scales.par_chunks_mut(QUANTIZE_PIECE))
            .zip(zeros.par_chunks_mut(QUANTIZE_PIECE))
            .enumerate()
            .for_each(|(c, ((bytes, scales), zeros))| {
                let x = &x[c * QUANTIZE_PIECE * inputs..];
                quantize(kernel, x, inputs, bytes, scales, zeros);
            });
    }

    /// Lets go of a buffer past [`KEPT_BYTES`], so a thread keeps no more
    /// than a window's worth between products.
    fn release_if_large(&mut self) {
        if self.bytes.capacity() > KEPT_BYTES {
            *self = Self::default();
        }
    }
}

/// A row's quantisation step and zero point from its extremes `lo <= 0 <= hi`:
/// 255 steps over `[lo, hi]`, zero exact at `z` (every quantiser's).
fn row_step(lo: f32, hi: f32) -> (f32, f32) {
    let step = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    (step, (-lo / step).round_ties_even().clamp(0.0, 255.0))
}

/// Quantises the rows of `x` (`inputs` wide, as many as `scales` holds) into
/// `bytes` (`bytes.len() / scales.len()` per row, the padding past `inputs`
/// set to the row's zero point) with `kernel`'s row quantiser.
fn quantize(
    kernel: Kernel,
    x: &[f32],
    inputs: usize,
    bytes: &mut [u8],
    scales: &mut [f32],
    zeros: &mut [i32],
) {
    let stride = bytes.len() / scales.len().max(1);
    let rows = bytes.chunks_exact_mut(stride).zip(scales).zip(zeros);
    for (r, ((dst, scale), zero)) in rows.enumerate() {
        let row = &x[r * inputs..(r + 1) * inputs];
        let (step, z) = match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512 F and BW (`Kernel::detect`); `dst`
            // is `stride >= inputs` bytes.
            Kernel::Vnni => unsafe { vnni::quantize_row(row, dst) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA (`Kernel::detect`), as above.
            Kernel::Avx2 => unsafe { avx2::quantize_row(row, dst) },
            _ => quantize_row(row, dst),
        };
        dst[inputs..].fill(z as u8);
        (*scale, *zero) = (step, z as i32);
    }
}

/// One row into `dst`'s first `row.len()` bytes, returning its step and zero
/// point: the portable version of `vnni::quantize_row` and `avx2::quantize_row`.
fn quantize_row(row: &[f32], dst: &mut [u8]) -> (f32, f32) {
    // Lane-wise extremes, which LLVM vectorises (a single float fold it may not).
    let (mut lo, mut hi) = ([0f32; 16], [0f32; 16]);
    let chunks = row.chunks_exact(16);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..16 {
            lo[i] = lo[i].min(c[i]);
            hi[i] = hi[i].max(c[i]);
        }
    }
    let lo = tail.iter().chain(&lo).fold(0f32, |m, v| m.min(*v));
    let hi = tail.iter().chain(&hi).fold(0f32, |m, v| m.max(*v));
    let (step, z) = row_step(lo, hi);
    let inv = 1.0 / step;
    for (d, v) in dst.iter_mut().zip(row) {
        *d = (v * inv + z).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    (step, z)
}

/// The micro tile's implementation, picked once per product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// AVX-512 VNNI's `vpdpbusd`.
    Vnni,
    /// AVX2's `vpmaddwd` on bytes widened to 16 bits.
    Avx2,
    /// Plain Rust over the same layout.
    Portable,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                return Self::Vnni;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Self::Avx2;
            }
        }
        Self::Portable
    }

    /// Accumulates rows `row..row + n` (`n <= 4`) of `q` against one panel.
    fn tile(
        self,
        q: &QuantizedRows,
        row: usize,
        n: usize,
        panel: &[i8],
        groups: usize,
        acc: &mut [[i32; PANEL]; ROWS],
    ) {
        let a = &q.bytes[row * q.stride..(row + n) * q.stride];
        debug_assert!(q.stride >= groups * GROUP && panel.len() >= groups * PANEL_GROUP);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` saw the CPU features; `a` holds `n` rows of
            // `stride >= 4 groups` bytes and `panel` `groups` groups, which is
            // all the kernel reads.
            Self::Vnni => unsafe {
                match n {
                    1 => vnni::tile::<1>(a, q.stride, panel, groups, acc),
                    2 => vnni::tile::<2>(a, q.stride, panel, groups, acc),
                    3 => vnni::tile::<3>(a, q.stride, panel, groups, acc),
                    _ => vnni::tile::<4>(a, q.stride, panel, groups, acc),
                }
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, with AVX2.
            Self::Avx2 => unsafe {
                match n {
                    1 => avx2::tile::<1>(a, q.stride, panel, groups, acc),
                    2 => avx2::tile::<2>(a, q.stride, panel, groups, acc),
                    3 => avx2::tile::<3>(a, q.stride, panel, groups, acc),
                    _ => avx2::tile::<4>(a, q.stride, panel, groups, acc),
                }
            },
            _ => portable_tile(a, q.stride, n, panel, groups, acc),
        }
    }
}

fn portable_tile(
    a: &[u8],
    stride: usize,
    n: usize,
    panel: &[i8],
    groups: usize,
    acc: &mut [[i32; PANEL]; ROWS],
) {
    for (r, acc) in acc.iter_mut().take(n).enumerate() {
        let row = &a[r * stride..r * stride + groups * GROUP];
        acc.fill(0);
        for (g, bytes) in row.chunks_exact(GROUP).enumerate() {
            let weights = &panel[g * PANEL_GROUP..(g + 1) * PANEL_GROUP];
            for (acc, w) in acc.iter_mut().zip(weights.chunks_exact(GROUP)) {
                *acc += bytes
                    .iter()
                    .zip(w)
                    .map(|(&a, &w)| i32::from(a) * i32::from(w))
                    .sum::<i32>();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(test)]
mod tests;
