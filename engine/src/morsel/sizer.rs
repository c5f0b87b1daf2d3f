//! Chooses rows per morsel from the bytes output rows are seen to take.

use std::sync::Mutex;

/// Adapts morsel row counts so that a morsel's output is about `target_bytes`.
#[derive(Debug)]
pub struct MorselSizer {
    target_bytes: usize,
    first_rows: usize,
    max_rows: usize,
    fixed_rows: Option<usize>,
    /// Mean output bytes per row seen so far (None before the first morsel).
    bytes_per_row: Mutex<Option<f64>>,
}

impl MorselSizer {
    /// A sizer aiming at `target_bytes`; `fixed_rows` pins the row count (batch functions).
    pub fn new(
        target_bytes: usize,
        first_rows: usize,
        max_rows: usize,
        fixed_rows: Option<usize>,
    ) -> Self {
        Self {
            target_bytes: target_bytes.max(1),
            first_rows: first_rows.max(1),
            max_rows: max_rows.max(1),
            fixed_rows,
            bytes_per_row: Mutex::new(None),
        }
    }

    /// True when every morsel must have exactly [`Self::rows`] rows (but the last).
    pub fn is_fixed(&self) -> bool {
        self.fixed_rows.is_some()
    }

    /// Rows for the next morsel.
    pub fn rows(&self) -> usize {
        if let Some(n) = self.fixed_rows {
            return n;
        }
        let bpr = self.bytes_per_row.lock().ok().and_then(|g| *g);
        match bpr {
            None => self.first_rows.min(self.max_rows),
            Some(b) if b <= 0.0 => self.max_rows,
            Some(b) => ((self.target_bytes as f64 / b) as usize).clamp(1, self.max_rows),
        }
    }

    /// Records that `rows` rows produced `bytes` bytes of output.
    pub fn observe(&self, rows: usize, bytes: usize) {
        if rows == 0 {
            return;
        }
        let sample = bytes as f64 / rows as f64;
        if let Ok(mut g) = self.bytes_per_row.lock() {
            *g = Some(match *g {
                None => sample,
                // Weighted towards recent morsels, so a drift in row width is followed.
                Some(old) => old * 0.5 + sample * 0.5,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MorselSizer;

    #[test]
    fn rows_follow_observed_row_width() {
        let s = MorselSizer::new(1_000_000, 16, 8192, None);
        assert_eq!(s.rows(), 16);
        s.observe(16, 16 * 100_000); // wide rows: 100 kB each
        assert_eq!(s.rows(), 10);
        let narrow = MorselSizer::new(1_000_000, 16, 8192, None);
        narrow.observe(16, 16 * 8);
        assert_eq!(narrow.rows(), 8192);
    }

    #[test]
    fn fixed_rows_win() {
        let s = MorselSizer::new(1_000, 16, 8192, Some(64));
        s.observe(64, 1_000_000);
        assert_eq!(s.rows(), 64);
    }
}
