//! Counts the rows an operator holds: taken from its input and not yet handed on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::physical_plan::metrics::Gauge;
use tokio::sync::OwnedSemaphorePermit;

/// Rows held by one operator, across its partitions, with the peak in a metric.
#[derive(Debug)]
pub struct InFlight {
    current: AtomicUsize,
    peak: Gauge,
}

impl InFlight {
    /// A counter that records its peak in `peak`.
    pub fn new(peak: Gauge) -> Arc<Self> {
        Arc::new(Self {
            current: AtomicUsize::new(0),
            peak,
        })
    }

    /// Rows held right now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    /// Counts `rows` as held until the returned guard is dropped; the permit (one of
    /// the partition's in-flight slots) is released at the same moment.
    pub fn hold(self: &Arc<Self>, rows: usize, permit: OwnedSemaphorePermit) -> InFlightGuard {
        let now = self.current.fetch_add(rows, Ordering::SeqCst) + rows;
        self.peak.set_max(now);
        InFlightGuard {
            rows,
            tracker: self.clone(),
            _permit: permit,
        }
    }
}

/// Releases its rows and its in-flight slot when dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    rows: usize,
    tracker: Arc<InFlight>,
    _permit: OwnedSemaphorePermit,
}

impl InFlightGuard {
    /// Changes the rows held (a morsel's output may differ from its input).
    pub fn set_rows(&mut self, rows: usize) {
        if rows > self.rows {
            let now = self
                .tracker
                .current
                .fetch_add(rows - self.rows, Ordering::SeqCst)
                + rows
                - self.rows;
            self.tracker.peak.set_max(now);
        } else {
            self.tracker
                .current
                .fetch_sub(self.rows - rows, Ordering::SeqCst);
        }
        self.rows = rows;
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.tracker.current.fetch_sub(self.rows, Ordering::SeqCst);
    }
}
