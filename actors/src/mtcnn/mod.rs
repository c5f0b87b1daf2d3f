//! MTCNN face detection in Rust (candle): the three cascaded networks of Zhang et
//! al. (P-net over an image pyramid, R-net on 24 x 24 candidates, O-net on 48 x 48
//! ones), with facenet-pytorch's weights, thresholds and box arithmetic.
//!
//! The model is read from a local directory holding `model.safetensors`
//! (`scripts/fetch_mtcnn.sh` converts facenet-pytorch's checkpoints); nothing is
//! downloaded at run time.

mod cascade;
mod detector;
mod factory;
mod nets;
mod nhwc_nets;

use std::path::PathBuf;

pub use cascade::{Cascade, StageOut};
pub use detector::{detect, face_box_fields, faces_type, FaceBox, FaceDetector};
pub use factory::MtcnnFactory;
pub use nets::Nets;
pub use nhwc_nets::NhwcNets;

/// The model's canonical name (`detect_faces(image)` uses it by default).
pub const NAME: &str = "mtcnn";

/// True for the names this model answers to (case-insensitive).
pub fn is_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == NAME || n == "facenet-mtcnn"
}

/// Where the model is read from: `$REGATTA_MTCNN_DIR`, else `models/mtcnn` under
/// the current directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("REGATTA_MTCNN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models").join(NAME))
}
