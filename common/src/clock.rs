//! The wall clock, in the one unit the protocol and the Raft log use.

/// The wall clock in Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
