//! [`Precision`]: the number format a model's dense layers compute in, from the
//! cluster file's `[models]` to the CPU kernels.

use serde::{Deserialize, Serialize};

/// How a transformer model's weights and products are held on the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats throughout: the checkpoint's own numbers.
    #[default]
    F32,
    /// Dense layers in int8 (weights per output channel, activations per row,
    /// quantised dynamically); norms, softmax and attention stay f32. Faster on
    /// CPUs with AVX-512 VNNI, at a small cost in accuracy (docs/models.md).
    Int8,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Self::F32, Self::Int8];

    /// The spelling used in config files, flags and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown precision {s:?} (f32 or int8)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_serialize_and_parse_as_they_are_spelled() {
        for p in Precision::ALL {
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
            assert_eq!(p.as_str().parse::<Precision>(), Ok(p));
        }
        assert!("fp16".parse::<Precision>().unwrap_err().contains("fp16"));
    }
}
