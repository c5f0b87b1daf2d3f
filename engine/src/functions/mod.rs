//! regatta's scalar functions and the registry that tells the morsel operator
//! which of them are expensive.

pub mod args;
pub mod audio_functions;
pub mod batch_udf;
pub mod image_functions;
mod io_runtime;
pub mod model_call;
pub mod model_catalog;
pub mod model_pool;
pub mod model_udf;
pub mod pdf_pages;
pub mod row_failures;
pub mod text_chunk;
pub mod text_functions;
pub mod text_split;
pub mod url_download;
pub mod vector_functions;
pub mod video_metadata;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::ScalarUDF;

pub use args::OnError;
pub use audio_functions::{AudioFunction, AudioOp};
pub use batch_udf::BatchUdf;
pub use image_functions::{ImageFunction, ImageOp};
pub use model_call::{
    ModelCall, ModelCallKind, CLASSIFY_IMAGE, DETECT_FACES, EMBED_TEXT, IMAGE_LOGITS,
    LOGITS_POOL_SUFFIX, TRANSCRIBE,
};
pub use model_catalog::ModelCatalog;
pub use model_pool::{ModelPool, ModelPoolStats, ModelProvider};
pub use model_udf::ModelUdf;
pub use pdf_pages::{PdfPages, PDF_PAGES};
pub use row_failures::{RowErrorClass, RowFailure};
pub use text_chunk::chunk_words;
pub use text_functions::{TextFunction, TextOp};
pub use text_split::split_text;
pub use url_download::{DownloadOptions, UrlDownload};
pub use vector_functions::{VectorFunction, VectorOp};
pub use video_metadata::{VideoMetadataFunction, VIDEO_METADATA};

/// How the morsel operator should run a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionCost {
    /// Waits on the network or disk: many morsels at once.
    Io,
    /// Burns CPU: about one morsel per core.
    Cpu,
    /// A user batch function: CPU, fed exactly this many rows per call.
    Batch(usize),
    /// A model behind an actor pool, fed exactly this many rows per call.
    Model(usize),
}

/// The expensive functions known to one engine, by name.
#[derive(Debug, Default, Clone)]
pub struct FunctionRegistry {
    costs: Arc<RwLock<HashMap<String, FunctionCost>>>,
}

impl FunctionRegistry {
    /// Records that `name` is expensive.
    pub fn insert(&self, name: &str, cost: FunctionCost) {
        if let Ok(mut m) = self.costs.write() {
            m.insert(name.to_string(), cost);
        }
    }

    /// The cost of `name`, if it is expensive.
    pub fn cost(&self, name: &str) -> Option<FunctionCost> {
        self.costs.read().ok().and_then(|m| m.get(name).copied())
    }
}

/// Every built-in function, with its cost when expensive.
pub fn builtin_functions(
    download: DownloadOptions,
    access: std::sync::Arc<crate::access::SharedAccess>,
) -> Vec<(ScalarUDF, Option<FunctionCost>)> {
    let mut out = vec![(
        ScalarUDF::new_from_impl(UrlDownload::new(download, access)),
        Some(FunctionCost::Io),
    )];
    for op in ImageOp::ALL {
        out.push((
            ScalarUDF::new_from_impl(ImageFunction::new(op)),
            op.is_expensive().then_some(FunctionCost::Cpu),
        ));
    }
    for op in AudioOp::ALL {
        out.push((
            ScalarUDF::new_from_impl(AudioFunction::new(op)),
            op.is_expensive().then_some(FunctionCost::Cpu),
        ));
    }
    out.push((
        ScalarUDF::new_from_impl(PdfPages::default()),
        Some(FunctionCost::Cpu),
    ));
    out.push((
        ScalarUDF::new_from_impl(VideoMetadataFunction::default()),
        Some(FunctionCost::Cpu),
    ));
    for op in VectorOp::ALL {
        out.push((ScalarUDF::new_from_impl(VectorFunction::new(op)), None));
    }
    for op in [TextOp::Chunk, TextOp::Split] {
        out.push((ScalarUDF::new_from_impl(TextFunction::new(op)), None));
    }
    // A resumable job's filter, built in so cluster workers have it too.
    out.push((
        ScalarUDF::new_from_impl(crate::io::resume::ResumePending::default()),
        None,
    ));
    // The stand-in model of the benchmarks, built in so cluster workers have it too.
    let image_mean = BatchUdf::new(IMAGE_MEAN, DataType::Float64, 64, image_mean);
    let batch = image_mean.batch_size();
    out.push((
        ScalarUDF::new_from_impl(image_mean),
        Some(FunctionCost::Batch(batch)),
    ));
    out
}

/// Name of the built-in batch function giving each image's mean pixel value.
pub const IMAGE_MEAN: &str = "image_mean";

/// The mean of every pixel byte of each image, as float64 (null for null images).
fn image_mean(
    args: &[datafusion::arrow::array::ArrayRef],
) -> datafusion::error::Result<datafusion::arrow::array::ArrayRef> {
    let images = args.first().ok_or_else(|| {
        datafusion::error::DataFusionError::Plan(format!("{IMAGE_MEAN} takes one image column"))
    })?;
    Ok(std::sync::Arc::new(
        crate::types::ImageColumn::try_new(images.as_ref(), IMAGE_MEAN)?.mean_values()?,
    ))
}
