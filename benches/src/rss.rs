//! Peak resident memory of this process.

/// `getrusage(RUSAGE_SELF).ru_maxrss` in MiB (Linux reports KiB).
pub fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass, which is zeroed and owned here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0.0;
    }
    (usage.ru_maxrss as f64 / 1024.0 * 10.0).round() / 10.0
}
