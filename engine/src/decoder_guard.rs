//! Decoders of untrusted bytes (images, audio, PDFs) run behind [`guarded`]: a
//! panic inside one becomes that row's error, which `on_error` then handles like
//! any other (a null, or the job's error naming the row), instead of failing the
//! whole task. [`guarded_within`] adds a deadline per row: a decoder that runs
//! past it (a crafted file that loops) gives the row a timeout error and the
//! query goes on.
//!
//! A thread cannot be stopped from outside, so a decoder past its deadline is
//! left to finish on its own thread and its result dropped. Such threads hold a
//! core each; past [`MAX_STUCK`] of them in a process, a function with a
//! deadline refuses to start another decoder and fails its task as out of
//! resources (retried elsewhere, and counted toward the task's attempts), rather
//! than take the machine's every core.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Decoders left running past their deadline that one process tolerates.
pub const MAX_STUCK: usize = 4;

/// Decoders now running past their deadline, in this process.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// How many decoders are running past their deadline now.
pub fn stuck_decoders() -> usize {
    STUCK.load(Ordering::SeqCst)
}

/// Why a decoder with a deadline gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The decoder's own error, or its panic: the row's data.
    #[error("{0}")]
    Failed(String),
    /// Still running when the deadline passed; left to finish, its result dropped.
    #[error("the {what} decoder timed out after {} ms on this input", .after.as_millis())]
    TimedOut { what: String, after: Duration },
    /// Too many decoders already past their deadlines in this process.
    #[error(
        "{stuck} decoders in this process are still running past their deadlines \
         (at most {}); not starting another {what} decoder",
        MAX_STUCK
    )]
    Stuck { what: String, stuck: usize },
}

const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const ABANDONED: u8 = 2;

/// [`guarded`], within `limit` when one is given (on a thread of its own;
/// without a limit, on the caller's thread as [`guarded`] runs).
pub fn guarded_within<T: Send + 'static>(
    what: &str,
    limit: Option<Duration>,
    decode: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, GuardError> {
    let Some(limit) = limit else {
        return guarded(what, decode).map_err(GuardError::Failed);
    };
    let stuck = STUCK.load(Ordering::SeqCst);
    if stuck >= MAX_STUCK {
        return Err(GuardError::Stuck {
            what: what.to_string(),
            stuck,
        });
    }
    let state = Arc::new(AtomicU8::new(RUNNING));
    let (tx, rx) = mpsc::sync_channel(1);
    let name = what.to_string();
    let theirs = state.clone();
    std::thread::Builder::new()
        .name(format!("regatta-{what}-decoder"))
        .spawn(move || {
            let out = guarded(&name, decode);
            // Abandoned: the caller has counted this thread as stuck.
            if theirs
                .compare_exchange(RUNNING, FINISHED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                STUCK.fetch_sub(1, Ordering::SeqCst);
            }
            let _ = tx.send(out);
        })
        .map_err(|e| GuardError::Failed(format!("cannot start a {what} decoder thread: {e}")))?;
    match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(GuardError::Failed),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(GuardError::Failed(format!(
            "the {what} decoder's thread ended without a result"
        ))),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Counted before the exchange, so the thread's decrement (which
            // follows a lost exchange) never precedes the increment.
            STUCK.fetch_add(1, Ordering::SeqCst);
            if state
                .compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
            {
                // It finished just now: not stuck after all.
                STUCK.fetch_sub(1, Ordering::SeqCst);
                if let Ok(out) = rx.recv() {
                    return out.map_err(GuardError::Failed);
                }
            }
            Err(GuardError::TimedOut {
                what: what.to_string(),
                after: limit,
            })
        }
    }
}

/// A deadline argument in milliseconds: 0 (or none) for no limit.
pub fn limit_from_ms(ms: Option<i64>, function: &str) -> Result<Option<Duration>, String> {
    match ms {
        None | Some(0) => Ok(None),
        Some(n) if n > 0 => Ok(Some(Duration::from_millis(n as u64))),
        Some(n) => Err(format!(
            "{function}: timeout_ms must be 0 (no limit) or positive, got {n}"
        )),
    }
}

/// Runs `decode`; a panic becomes an error naming `what` and the panic's message.
pub fn guarded<T>(what: &str, decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    // The decoder's state is dropped with the unwinding closure; nothing it
    // touched outlives the call.
    match catch_unwind(AssertUnwindSafe(decode)) {
        Ok(r) => r,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(format!(
                "the {what} decoder failed on this input (panicked: {message})"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test drives the process-wide count, so nothing else here races it.
    #[test]
    fn a_decoder_past_its_deadline_times_out_and_too_many_stuck_refuse_more() {
        // Within the deadline: the result; a failure or a panic: Failed (a
        // generous deadline: unwinding with a backtrace takes a while).
        let generous = Some(Duration::from_secs(60));
        assert_eq!(
            guarded_within("audio", generous, || Ok::<_, String>(7)),
            Ok(7)
        );
        assert!(matches!(
            guarded_within::<()>("pdf", generous, || panic!("bad xref")),
            Err(GuardError::Failed(m)) if m.contains("pdf decoder") && m.contains("bad xref")
        ));
        // Decoders that block until released: each times out and stays counted
        // while it runs.
        let limit = Some(Duration::from_millis(20));
        let mut releases = Vec::new();
        for i in 0..MAX_STUCK {
            let (release, wait) = mpsc::channel::<()>();
            releases.push(release);
            let e = guarded_within("pdf", limit, move || {
                let _ = wait.recv();
                Ok::<_, String>(())
            })
            .unwrap_err();
            assert_eq!(
                e,
                GuardError::TimedOut {
                    what: "pdf".into(),
                    after: Duration::from_millis(20)
                }
            );
            assert!(e.to_string().contains("timed out after 20 ms"), "{e}");
            assert_eq!(stuck_decoders(), i + 1);
        }
        // At the bound, no new decoder starts (this one would return at once).
        let e = guarded_within("image", limit, || Ok::<_, String>(1)).unwrap_err();
        assert!(
            matches!(e, GuardError::Stuck { stuck, .. } if stuck == MAX_STUCK),
            "{e}"
        );
        // Without a deadline the caller's thread decodes, whatever is stuck.
        assert_eq!(guarded_within("image", None, || Ok::<_, String>(2)), Ok(2));
        // Released, the stuck decoders finish and are no longer counted.
        drop(releases);
        let start = std::time::Instant::now();
        while stuck_decoders() > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "still counted");
            std::thread::yield_now();
        }
        assert_eq!(guarded_within("image", limit, || Ok::<_, String>(3)), Ok(3));
    }

    #[test]
    fn deadlines_in_milliseconds_are_checked() {
        assert_eq!(limit_from_ms(None, "f"), Ok(None));
        assert_eq!(limit_from_ms(Some(0), "f"), Ok(None));
        assert_eq!(
            limit_from_ms(Some(250), "f"),
            Ok(Some(Duration::from_millis(250)))
        );
        assert!(limit_from_ms(Some(-1), "f")
            .unwrap_err()
            .contains("timeout_ms"));
    }

    #[test]
    fn a_panicking_decoder_gives_an_error_naming_it() {
        let e = guarded::<()>("image", || panic!("index out of bounds")).unwrap_err();
        assert!(
            e.contains("image decoder") && e.contains("index out of bounds"),
            "{e}"
        );
        assert_eq!(guarded("audio", || Ok::<_, String>(3)), Ok(3));
    }
}
