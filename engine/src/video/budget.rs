//! [`DecodeBudget`]: how long one video may spend being read and decoded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Never: the interrupt callback's deadline while the reader is not running.
const DISARMED: u64 = u64::MAX;

/// A video's time budget. Only time inside the reader counts: between frames
/// the reader waits on its consumer (a full channel, a slow model), and that
/// wait is no fault of the video's. While armed, FFmpeg's interrupt callback
/// sees the deadline too, so a read blocked inside the demuxer ends with it.
pub(crate) struct DecodeBudget {
    limit: Duration,
    spent: Duration,
    armed_at: Option<Instant>,
    base: Instant,
    /// Nanoseconds after `base` at which the armed reader must stop.
    deadline_ns: Arc<AtomicU64>,
}

impl DecodeBudget {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            spent: Duration::ZERO,
            armed_at: None,
            base: Instant::now(),
            deadline_ns: Arc::new(AtomicU64::new(DISARMED)),
        }
    }

    pub(crate) fn limit(&self) -> Duration {
        self.limit
    }

    /// The callback FFmpeg polls during blocking I/O: true stops it.
    pub(crate) fn interrupt(&self) -> impl FnMut() -> bool + Send + 'static {
        let (deadline, base) = (Arc::clone(&self.deadline_ns), self.base);
        move || nanos(base.elapsed()) >= deadline.load(Ordering::Relaxed)
    }

    /// The reader starts working: the clock runs.
    pub(crate) fn arm(&mut self) {
        let now = Instant::now();
        self.armed_at = Some(now);
        let left = self.limit.saturating_sub(self.spent);
        let at = nanos(now.duration_since(self.base).saturating_add(left));
        self.deadline_ns.store(at, Ordering::Relaxed);
    }

    /// The reader hands a frame on: the clock stops.
    pub(crate) fn disarm(&mut self) {
        if let Some(t) = self.armed_at.take() {
            self.spent = self.spent.saturating_add(t.elapsed());
        }
        self.deadline_ns.store(DISARMED, Ordering::Relaxed);
    }

    /// True once the time spent reaches the limit.
    pub(crate) fn expired(&self) -> bool {
        let running = self.armed_at.map_or(Duration::ZERO, |t| t.elapsed());
        self.spent.saturating_add(running) >= self.limit
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(DISARMED - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_armed_time_counts_and_the_interrupt_follows_the_arming() {
        let mut b = DecodeBudget::new(Duration::from_millis(40));
        let mut interrupt = b.interrupt();
        assert!(!interrupt(), "disarmed: never interrupts");
        let start = Instant::now();
        b.arm();
        assert!(!b.expired() && !interrupt());
        while !b.expired() {
            std::hint::spin_loop();
        }
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert!(interrupt(), "armed past the limit: interrupts");
        b.disarm();
        assert!(!interrupt(), "waiting on the consumer is never interrupted");
        assert!(b.expired(), "the time spent stays spent");

        // Time between armings does not count.
        let mut b = DecodeBudget::new(Duration::from_millis(200));
        b.arm();
        b.disarm();
        let idle = Instant::now();
        while idle.elapsed() < Duration::from_millis(250) {
            std::hint::spin_loop();
        }
        b.arm();
        assert!(!b.expired(), "the idle wait was not counted");
    }
}
