//! [`ModelKind`]: what a model does, from the cluster file's `[models]` to the
//! actor pools that serve it.

use serde::{Deserialize, Serialize};

/// What a model does, which decides how its directory is read and which
/// function calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A BERT-family sentence-transformers model (`embed_text`).
    Embedding,
    /// A Whisper speech model (`transcribe`).
    Whisper,
    /// EfficientNet-Lite0 (`classify_image`, `image_logits`).
    #[serde(rename = "efficientnet")]
    EfficientNet,
    /// MTCNN (`detect_faces`).
    Mtcnn,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        Self::Embedding,
        Self::Whisper,
        Self::EfficientNet,
        Self::Mtcnn,
    ];

    /// The spelling used in config files and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedding => "embedding",
            Self::Whisper => "whisper",
            Self::EfficientNet => "efficientnet",
            Self::Mtcnn => "mtcnn",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_as_they_are_spelled() {
        for k in ModelKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
    }
}
