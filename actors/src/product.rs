//! [`product`] and [`product_add`]: single-threaded matrix products over
//! strided operands, the one place the kernels call gemm (dense layers and 1x1
//! convolutions read contiguous rows; attention reads Q, K and V in place;
//! logits read the embeddings transposed; a few-row product a slice of columns).

/// An output buffer written by parallel pieces that each own disjoint cells
/// (their rows, their columns, their tiles).
#[derive(Clone, Copy)]
pub(crate) struct SharedOut(pub *mut f32);
// SAFETY: pieces write disjoint cells of the buffer, which outlives the
// parallel loop that uses the pointer (its owner lends it mutably for the loop).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer, through a method so closures capture the whole (Send) wrapper.
    pub fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// A matrix read in place: its first element and the steps between its rows
/// and its columns (a transpose is the same buffer with the steps swapped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Strided {
    pub ptr: *const f32,
    pub row: usize,
    pub col: usize,
}

/// `dst = scale · lhs · rhs`: `lhs` is `m x k`, `rhs` `k x n`, and `dst`
/// `m x n` with contiguous columns and rows `dst_row` apart.
///
/// # Safety
/// Every element the strides reach (`m x k` of `lhs`, `k x n` of `rhs`,
/// `m x n` of `dst`) lies in a live buffer, and `dst`'s elements are written
/// by nothing else meanwhile nor overlap the operands.
pub(crate) unsafe fn product(
    dims: (usize, usize, usize),
    dst: *mut f32,
    dst_row: usize,
    lhs: Strided,
    rhs: Strided,
    scale: f32,
) {
    // SAFETY: the caller's contract, as `gemm_strided` states it.
    unsafe { gemm_strided(dims, (dst, dst_row), lhs, rhs, false, scale) }
}

/// `dst += lhs · rhs`, shaped as [`product`]'s operands.
///
/// # Safety
/// As [`product`]'s, and `dst`'s `m x n` elements are initialised.
pub(crate) unsafe fn product_add(
    dims: (usize, usize, usize),
    dst: *mut f32,
    dst_row: usize,
    lhs: Strided,
    rhs: Strided,
) {
    // SAFETY: the caller's contract, as `gemm_strided` states it.
    unsafe { gemm_strided(dims, (dst, dst_row), lhs, rhs, true, 1.0) }
}

/// `dst = (dst if accumulate) + scale · lhs · rhs`.
///
/// # Safety
/// As [`product`]'s; with `accumulate`, `dst`'s elements are initialised.
unsafe fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    (dst, dst_row): (*mut f32, usize),
    lhs: Strided,
    rhs: Strided,
    accumulate: bool,
    scale: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the caller's contract above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row as isize,
            accumulate,
            lhs.ptr,
            lhs.col as isize,
            lhs.row as isize,
            rhs.ptr,
            rhs.col as isize,
            rhs.row as isize,
            // dst's factor (read only when accumulating), then the product's.
            if accumulate { 1.0 } else { 0.0 },
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
