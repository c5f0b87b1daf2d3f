//! Integer keys held as ranges, for resumable jobs ([`super::resume`]): a
//! rerun checks its source rows against every key its output holds, and
//! integer ids are written in runs (each commit holds a task's or a morsel's
//! rows, whose ids are mostly consecutive), so a set of inclusive ranges holds
//! them in memory that grows with the number of runs, not of keys. A hash set
//! of ten billion ids would not fit (Ray Data's resume hit that wall,
//! ray-project/ray#65685); their ranges do.

use std::collections::BTreeMap;

/// Sorted, disjoint, non-adjacent inclusive ranges of `i64` keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyRanges {
    /// Start → end (inclusive). No two ranges overlap or touch.
    ranges: BTreeMap<i64, i64>,
}

impl KeyRanges {
    /// Adds `keys` (any order, repeats allowed); reorders the slice.
    pub fn insert_all(&mut self, keys: &mut [i64]) {
        keys.sort_unstable();
        let mut run: Option<(i64, i64)> = None;
        for &k in keys.iter() {
            run = match run {
                Some((lo, hi)) if k <= hi.saturating_add(1) => Some((lo, hi.max(k))),
                Some((lo, hi)) => {
                    self.insert_range(lo, hi);
                    Some((k, k))
                }
                None => Some((k, k)),
            };
        }
        if let Some((lo, hi)) = run {
            self.insert_range(lo, hi);
        }
    }

    /// Adds `lo..=hi`, merging it with every range it overlaps or touches.
    fn insert_range(&mut self, mut lo: i64, mut hi: i64) {
        if let Some((&start, &end)) = self.ranges.range(..=lo).next_back() {
            if end.saturating_add(1) >= lo {
                lo = start;
                hi = hi.max(end);
            }
        }
        let absorbed: Vec<(i64, i64)> = self
            .ranges
            .range(lo..=hi.saturating_add(1))
            .map(|(s, e)| (*s, *e))
            .collect();
        for (start, end) in absorbed {
            self.ranges.remove(&start);
            hi = hi.max(end);
        }
        self.ranges.insert(lo, hi);
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: i64) -> bool {
        self.ranges
            .range(..=key)
            .next_back()
            .is_some_and(|(_, end)| *end >= key)
    }

    /// How many ranges hold the keys (what the memory grows with).
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    /// How many keys are held (saturating at `u64::MAX`).
    pub fn keys(&self) -> u64 {
        self.ranges.iter().fold(0u64, |n, (start, end)| {
            // end >= start, so the difference fits in u64.
            let width = end.abs_diff(*start).saturating_add(1);
            n.saturating_add(width)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges built from keys in any order hold exactly those keys, and
    /// consecutive runs merge however they arrive.
    #[test]
    fn ranges_hold_exactly_the_inserted_keys_and_merge_runs() {
        let mut set = KeyRanges::default();
        // Three batches: out of order, repeated, touching and overlapping.
        set.insert_all(&mut [5, 3, 4, 10, 10, 12]);
        set.insert_all(&mut [11, 20, 21]);
        set.insert_all(&mut [0, 1, 2, 6, 19]);
        for k in -3..25 {
            let want = (0..=6).contains(&k) || (10..=12).contains(&k) || (19..=21).contains(&k);
            // 13..=18 are missing, so 10..=12 and 19..=21 stay apart.
            assert_eq!(set.contains(k), want, "key {k}: {set:?}");
        }
        assert_eq!((set.ranges(), set.keys()), (3, 7 + 3 + 3));
    }

    /// A million consecutive ids in shuffled batches are one range; sparse
    /// keys are one range each.
    #[test]
    fn dense_ids_take_one_range_whatever_their_count() {
        let mut set = KeyRanges::default();
        let n = 1_000_000i64;
        for batch in (0..n).collect::<Vec<_>>().chunks(4096).rev() {
            let mut b = batch.to_vec();
            b.reverse();
            set.insert_all(&mut b);
        }
        assert_eq!((set.ranges(), set.keys()), (1, n as u64));
        assert!(set.contains(0) && set.contains(n - 1) && !set.contains(n) && !set.contains(-1));

        let mut sparse = KeyRanges::default();
        sparse.insert_all(&mut [i64::MIN, -10, 7, i64::MAX]);
        assert_eq!((sparse.ranges(), sparse.keys()), (4, 4));
        assert!(sparse.contains(i64::MIN) && sparse.contains(i64::MAX) && !sparse.contains(8));
    }
}
