//! What a task reports it wrote, checked on the driver before the commit moves
//! the files it names: a forged report (any token holder can send one) must
//! not point the commit at other files.

use super::sinks::FileFormat;
use crate::{EngineError, Result};

/// Whether `name` is one file name (no directory, not `.` or `..`): what a
/// task may report it staged. An absolute path would replace the staging
/// directory it is joined to.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Checks what a task of job `tag` reported it wrote for `dest`, before the
/// driver records it (and later moves the files it names).
pub fn check_reported(dest: &str, format: FileFormat, tag: &str, written: &str) -> Result<()> {
    if written.is_empty() {
        return Ok(());
    }
    if format == FileFormat::Lance {
        return super::lance_staged::check_reported(dest, tag, written);
    }
    if is_plain_name(written) {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "a task reported writing {written:?}, not a file name in its staging directory"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fragment naming `file`, as Lance serialises it.
    fn fragment(file: &str) -> serde_json::Value {
        serde_json::json!({
            "id": 0,
            "files": [{"path": file, "fields": [0], "column_indices": [0],
                       "file_major_version": 2, "file_minor_version": 0}],
            "deletion_file": null,
            "row_id_meta": null,
            "physical_rows": 1
        })
    }

    #[test]
    fn a_forged_report_cannot_name_files_outside_the_staging_prefix() {
        let tag = "regatta/job-1-0123";
        let ok = |w: &str| check_reported("/out/t", FileFormat::Parquet, tag, w).is_ok();
        assert!(ok("part-00001-a0.parquet"));
        assert!(ok(""));
        for forged in ["/etc/passwd", "../x.parquet", "a/b.parquet", "..", "."] {
            assert!(!ok(forged), "{forged}");
        }
        let root = crate::io::lance_staged::staging_root("/out/ds", tag).unwrap();
        let lance = |dir: &str, file: &str| {
            let json = serde_json::json!({"dir": dir, "fragments": [fragment(file)]});
            check_reported("/out/ds", FileFormat::Lance, tag, &json.to_string())
        };
        let own = format!("{root}/p00001-a0");
        assert!(
            lance(&own, "f.lance").is_ok(),
            "{:?}",
            lance(&own, "f.lance")
        );
        assert!(lance("/etc", "f.lance").is_err());
        assert!(lance(&format!("{root}/../../etc"), "f.lance").is_err());
        assert!(lance(&own, "/etc/shadow").is_err());
        assert!(lance(&own, "../../x.lance").is_err());
        // A column add's report names the fragment's files in data/.
        let added = |file: &str| {
            let json = serde_json::json!({"read_version": 1, "fragment": fragment(file)});
            crate::io::lance::check_added_columns_report(&json.to_string())
        };
        assert!(added("c0ffee.lance").is_ok(), "{:?}", added("c0ffee.lance"));
        assert!(added("../../etc/shadow").is_err());
        assert!(added("/etc/shadow").is_err());
    }
}
