//! What a decoder deadline costs per row: `guarded_within` with a limit runs
//! each call on a thread of its own (`pdf_pages` does, with its 300 s default),
//! without one on the caller's thread. Times both on a trivial decode.
//!
//! `cargo run --release -p regatta-engine --example guard_overhead -- [CALLS]`

use std::time::{Duration, Instant};

use regatta_engine::decoder_guard::guarded_within;

fn per_call(calls: u32, limit: Option<Duration>) -> Result<Duration, String> {
    let start = Instant::now();
    for i in 0..calls {
        let got = guarded_within("bench", limit, move || Ok(i.wrapping_mul(3)))
            .map_err(|e| e.to_string())?;
        std::hint::black_box(got);
    }
    Ok(start.elapsed() / calls)
}

fn main() -> Result<(), String> {
    let calls = std::env::args()
        .nth(1)
        .map(|s| s.parse::<u32>().map_err(|e| format!("CALLS: {e}")))
        .transpose()?
        .unwrap_or(20_000)
        .max(1);
    let inline = per_call(calls, None)?;
    let threaded = per_call(calls, Some(Duration::from_secs(300)))?;
    println!(
        "{{\"calls\": {calls}, \"inline_us\": {:.2}, \"own_thread_us\": {:.2}}}",
        inline.as_secs_f64() * 1e6,
        threaded.as_secs_f64() * 1e6
    );
    Ok(())
}
