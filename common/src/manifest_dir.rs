//! [`manifest_dir!`]: the calling package's directory, for tests that read the
//! checkout's docs and models.

/// The calling package's directory as a `PathBuf`: cargo's `CARGO_MANIFEST_DIR`
/// when cargo runs the binary (the checkout under test), else the one compiled
/// in. Read at run time because a test binary reused from a shared target
/// directory may have been compiled in another clone of the tree.
#[macro_export]
macro_rules! manifest_dir {
    () => {
        ::std::path::PathBuf::from(
            ::std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| ::std::ffi::OsString::from(env!("CARGO_MANIFEST_DIR"))),
        )
    };
}
