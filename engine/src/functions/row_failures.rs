//! Rows a function could not process under `on_error = 'skip'` or `'record'`.
//!
//! A scalar function has no side channel: it returns one value per row. The
//! morsel operator therefore evaluates its expressions inside [`capture`], and
//! a function that gives up on a row reports it here (on the same thread) and
//! returns a null for it; the operator then drops the reported rows and hands
//! the recorded ones to the query's [`crate::RowErrorSink`].

use std::cell::RefCell;

use datafusion::error::{DataFusionError, Result};

/// What kind of failure a row had, for the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowErrorClass {
    /// The bytes could not be fetched (network, HTTP status, missing file).
    Io,
    /// The bytes were fetched but are not what the function reads (corrupt media).
    Data,
    /// A model's batch failed after its retries; each of its rows is reported.
    Model,
    /// The access policy refused the row's URL or path.
    Access,
    /// A decoder ran past the function's `timeout_ms` on the row.
    Timeout,
}

impl RowErrorClass {
    /// The name stored in the error table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::Data => "data",
            Self::Model => "model",
            Self::Access => "access",
            Self::Timeout => "timeout",
        }
    }
}

/// One row a function gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowFailure {
    pub function: &'static str,
    /// The row within the batch the function was given.
    pub row: usize,
    /// The URL or path the row was read from, when the function knows it.
    pub source: Option<String>,
    pub class: RowErrorClass,
    pub message: String,
    /// `record` (kept for the error table) rather than `skip`.
    pub record: bool,
}

thread_local! {
    static CAPTURED: RefCell<Option<Vec<RowFailure>>> = const { RefCell::new(None) };
}

/// Runs `f`, collecting the rows the functions it calls give up on. Nested
/// captures each see only their own rows.
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<RowFailure>) {
    let outer = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
    let out = f();
    let caught = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (out, caught.unwrap_or_default())
}

/// Reports a row given up on. Outside [`capture`] (a function evaluated by an
/// operator that cannot drop rows) the row would silently become a null, so
/// this fails instead, naming the row.
pub fn report(failure: RowFailure) -> Result<()> {
    CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some(list) => {
            list.push(failure);
            Ok(())
        }
        None => Err(super::args::row_error(
            failure.function,
            failure.row,
            failure.source,
            format!(
                "{} (on_error = '{}' is not available where {} runs; use 'null' or 'raise')",
                failure.message,
                if failure.record { "record" } else { "skip" },
                failure.function
            ),
        )),
    })
}

/// `s` with every URL's query string and user info cut, so presigned
/// signatures and credentials never reach logs, the Raft log or error tables.
pub fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        // The scheme runs back from "://" over letters, digits, '+', '-', '.'.
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |p| p + 1);
        out.push_str(&rest[..scheme_start]);
        let url_end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ','))
            .map_or(rest.len(), |p| i + p);
        out.push_str(&redact_one(&rest[scheme_start..url_end]));
        rest = &rest[url_end..];
    }
    out.push_str(rest);
    out
}

fn redact_one(url: &str) -> String {
    let Some(i) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, after) = url.split_at(i + 3);
    let after = match after.find(['?', '#']) {
        Some(q) => &after[..q],
        None => after,
    };
    // user:password@host: keep the host only.
    let host_end = after.find('/').unwrap_or(after.len());
    let after = match after[..host_end].rfind('@') {
        Some(at) => &after[at + 1..],
        None => after,
    };
    format!("{scheme}{after}")
}

/// Cuts `e`'s own text through [`redact_urls`].
pub fn redacted(e: &DataFusionError) -> String {
    redact_urls(&e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_query_strings_and_credentials_but_keep_the_rest() {
        assert_eq!(
            redact_urls("GET https://b.s3.amazonaws.com/k.jpg?X-Amz-Signature=abc failed: 403"),
            "GET https://b.s3.amazonaws.com/k.jpg failed: 403"
        );
        assert_eq!(
            redact_urls("s3://user:secret@host/a/b.png#frag and http://x/y"),
            "s3://host/a/b.png and http://x/y"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        assert_eq!(redact_urls("(http://h/p?q=1)"), "(http://h/p)");
    }

    #[test]
    fn capture_collects_reports_and_outside_it_a_report_is_an_error() {
        let failure = RowFailure {
            function: "f",
            row: 3,
            source: None,
            class: RowErrorClass::Data,
            message: "bad".into(),
            record: true,
        };
        let ((), caught) = capture(|| {
            report(failure.clone()).unwrap();
            let ((), inner) = capture(|| report(failure.clone()).unwrap());
            assert_eq!(inner.len(), 1);
        });
        assert_eq!(caught, vec![failure.clone()]);
        let err = report(failure).unwrap_err().to_string();
        assert!(
            err.contains("on_error = 'record' is not available"),
            "{err}"
        );
    }
}
