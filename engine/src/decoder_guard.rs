//! Decoders of untrusted bytes (images, audio) run behind [`guarded`]: a panic
//! inside one becomes that row's error, which `on_error` then handles like any
//! other (a null, or the job's error naming the row), instead of failing the
//! whole task.

use std::panic::{catch_unwind, AssertUnwindSafe};

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
