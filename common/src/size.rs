//! Byte sizes written the way people write them: `256MiB`, `2GB`, `1048576`.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::{CommonError, Result};

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `123`, `64KiB`, `256MiB`, `2GiB`, `1TiB` (and KB/MB/GB/TB as powers of 1000).
    pub fn parse(s: &str) -> Result<Self> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let err = |reason: &str| CommonError::ByteSize {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let n: f64 = num.parse().map_err(|_| err("no number"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(err("unknown unit")),
        };
        let v = n * mult as f64;
        if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
            return Err(err("out of range"));
        }
        Ok(Self(v as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (name, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{name}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ByteSize;

    #[test]
    fn parses_units_and_rejects_garbage() {
        assert_eq!(ByteSize::parse("256MiB").unwrap().0, 256 << 20);
        assert_eq!(ByteSize::parse("2 GB").unwrap().0, 2_000_000_000);
        assert_eq!(ByteSize::parse("1048576").unwrap().0, 1 << 20);
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
    }
}
