//! Multimodal methods on expressions: `col("url").url_download().image_decode(..)`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use regatta_engine::access::{AccessPolicy, SharedAccess};
use regatta_engine::datafusion::logical_expr::{Expr, ScalarUDF};
use regatta_engine::datafusion::prelude::lit;
use regatta_engine::functions::{
    AudioFunction, AudioOp, DownloadOptions, ImageFunction, ImageOp, ModelCall, ModelCallKind,
    ModelCatalog, OnError, PdfPages, TextFunction, TextOp, UrlDownload, VectorFunction, VectorOp,
};
use regatta_engine::image::ImageMode;

/// A deadline as the functions take it: whole milliseconds, at least one (0
/// would mean no limit).
fn timeout_ms(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn call(udf: &'static OnceLock<Arc<ScalarUDF>>, make: fn() -> ScalarUDF, args: Vec<Expr>) -> Expr {
    udf.get_or_init(|| Arc::new(make())).call(args)
}

/// One lazily built function per name: `name => the ScalarUDF impl`.
macro_rules! udf_cells {
    ($($name:ident => $make:expr),* $(,)?) => {
        $(fn $name(args: Vec<Expr>) -> Expr {
            static CELL: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
            call(&CELL, || ScalarUDF::new_from_impl($make), args)
        })*
    };
}

/// One cell per image operation.
macro_rules! image_udf_cells {
    ($($name:ident => $op:ident),* $(,)?) => {
        udf_cells!($($name => ImageFunction::new(ImageOp::$op)),*);
    };
}

/// One cell per model call; each is rebound to the session's instance (and its
/// models) when a DataFrame uses it.
macro_rules! model_udf_cells {
    ($($name:ident => $kind:ident),* $(,)?) => {
        udf_cells!($($name => ModelCall::new(ModelCallKind::$kind, ModelCatalog::default())),*);
    };
}

image_udf_cells!(
    decode => Decode,
    encode => Encode,
    resize => Resize,
    crop => Crop,
    convert => Convert,
    width => Width,
    height => Height,
    mode => Mode,
    tensor => ToTensor,
);
model_udf_cells!(
    embed => EmbedText,
    transcribe => Transcribe,
    classify => ClassifyImage,
    logits => ImageLogits,
    faces => DetectFaces,
);

udf_cells!(
    split => TextFunction::new(TextOp::Split),
    // A placeholder policy: the engine that runs the query rebinds the call to
    // its own instance and access policy (`Engine::bind`).
    download => UrlDownload::new(
        DownloadOptions::default(),
        Arc::new(SharedAccess::new(AccessPolicy::local())),
    ),
    cosine => VectorFunction::new(VectorOp::Cosine),
    dot => VectorFunction::new(VectorOp::Dot),
    l2 => VectorFunction::new(VectorOp::L2),
    chunk => TextFunction::new(TextOp::Chunk),
    pdf => PdfPages::default(),
    audio => AudioFunction::new(AudioOp::Decode),
    duration => AudioFunction::new(AudioOp::Duration),
);

/// Multimodal operations on any expression. The same functions are in SQL under
/// the names given in each method's docs.
pub trait MultimodalExt {
    /// `url_download(url)`: the bytes at each URL (http, https, file or a path);
    /// a failed row fails the query with its URL and row.
    fn url_download(self) -> Expr;
    /// `url_download(url, on_error, timeout_ms, max_retries)`.
    fn url_download_with(self, on_error: OnError, timeout_ms: u64, max_retries: u32) -> Expr;
    /// `image_decode(bytes, mode)`: decoded pixels; a bad image fails the query.
    fn image_decode(self, mode: ImageMode) -> Expr;
    /// `image_decode(bytes, mode, on_error)`.
    fn image_decode_with(self, mode: ImageMode, on_error: OnError) -> Expr;
    /// `image_encode(image, format)` with format `jpeg` or `png`.
    fn image_encode(self, format: &str) -> Expr;
    /// `image_resize(image, width, height)`.
    fn image_resize(self, width: u32, height: u32) -> Expr;
    /// `image_crop(image, x, y, width, height)`.
    fn image_crop(self, x: u32, y: u32, width: u32, height: u32) -> Expr;
    /// `image_convert(image, mode)`.
    fn image_convert(self, mode: ImageMode) -> Expr;
    /// `image_width(image)`.
    fn image_width(self) -> Expr;
    /// `image_height(image)`.
    fn image_height(self) -> Expr;
    /// `image_mode(image)`.
    fn image_mode(self) -> Expr;
    /// `image_to_tensor(image)`: `{data: [u8], shape: [h, w, c]}`.
    fn image_to_tensor(self) -> Expr;
    /// `cosine_distance(a, b)`.
    fn cosine_distance(self, other: Expr) -> Expr;
    /// `dot_product(a, b)`.
    fn dot_product(self, other: Expr) -> Expr;
    /// `l2_distance(a, b)`.
    fn l2_distance(self, other: Expr) -> Expr;
    /// `text_chunk(text, words, overlap)`: the text cut into chunks of words.
    fn text_chunk(self, words: u32, overlap: u32) -> Expr;
    /// `text_split(text, chunk_size, overlap)`: the recursive character splitter
    /// (paragraphs, lines, words, characters), chunks of at most `chunk_size`
    /// characters overlapping by up to `overlap`.
    fn text_split(self, chunk_size: u32, overlap: u32) -> Expr;
    /// Sentence embedding of this text column by `model` (e.g. `"all-MiniLM-L6-v2"`),
    /// served by the session's actor pool for that model.
    fn embed_text(self, model: &str) -> Expr;
    /// `pdf_pages(bytes, max_pages, on_error)`: each page's text as a list of
    /// `{page, text}` (`max_pages` 0 for all); a bad PDF fails the query naming the
    /// row, or is null under [`OnError::Null`].
    fn pdf_pages(self, max_pages: u32, on_error: OnError) -> Expr;
    /// `audio_decode(bytes, sample_rate, mono, on_error)`: decoded audio (WAV,
    /// FLAC, MP3, Ogg Vorbis), resampled to `sample_rate` (0 keeps the file's).
    fn audio_decode(self, sample_rate: u32, mono: bool, on_error: OnError) -> Expr;
    /// [`MultimodalExt::pdf_pages`] within `timeout` per PDF (the function's
    /// default is 300 s): a PDF read past it is the row's timeout error, under
    /// `on_error`.
    fn pdf_pages_within(self, max_pages: u32, on_error: OnError, timeout: Duration) -> Expr;
    /// [`MultimodalExt::audio_decode`] within `timeout` per clip (decoding
    /// and resampling; no limit by default).
    fn audio_decode_within(
        self,
        sample_rate: u32,
        mono: bool,
        on_error: OnError,
        timeout: Duration,
    ) -> Expr;
    /// `audio_duration(audio)`: seconds of decoded audio.
    fn audio_duration(self) -> Expr;
    /// `transcribe(audio, model)`: the text spoken in decoded audio, by a speech
    /// model such as `whisper-tiny.en`.
    fn transcribe(self, model: &str) -> Expr;
    /// `classify_image(image, model)`: `{label, score}`, the top-1 ImageNet class
    /// of a decoded image and its probability, by a classifier such as
    /// `efficientnet-lite0` (which resizes, crops and normalises itself).
    fn classify_image(self, model: &str) -> Expr;
    /// `image_logits(image, model)`: the classifier's raw logits per image.
    fn image_logits(self, model: &str) -> Expr;
    /// `detect_faces(image)`: the faces in a decoded image as a list of
    /// `{x, y, w, h, score}` boxes in pixels (MTCNN), ready for `image_crop`.
    fn detect_faces(self) -> Expr;
}

impl MultimodalExt for Expr {
    fn url_download(self) -> Expr {
        download(vec![self])
    }
    fn url_download_with(self, on_error: OnError, timeout_ms: u64, max_retries: u32) -> Expr {
        download(vec![
            self,
            lit(on_error.name()),
            lit(timeout_ms as i64),
            lit(i64::from(max_retries)),
        ])
    }
    fn image_decode(self, mode: ImageMode) -> Expr {
        decode(vec![self, lit(mode.name())])
    }
    fn image_decode_with(self, mode: ImageMode, on_error: OnError) -> Expr {
        decode(vec![self, lit(mode.name()), lit(on_error.name())])
    }
    fn image_encode(self, format: &str) -> Expr {
        encode(vec![self, lit(format)])
    }
    fn image_resize(self, width: u32, height: u32) -> Expr {
        resize(vec![self, lit(width), lit(height)])
    }
    fn image_crop(self, x: u32, y: u32, width: u32, height: u32) -> Expr {
        crop(vec![self, lit(x), lit(y), lit(width), lit(height)])
    }
    fn image_convert(self, to: ImageMode) -> Expr {
        convert(vec![self, lit(to.name())])
    }
    fn image_width(self) -> Expr {
        width(vec![self])
    }
    fn image_height(self) -> Expr {
        height(vec![self])
    }
    fn image_mode(self) -> Expr {
        mode(vec![self])
    }
    fn image_to_tensor(self) -> Expr {
        tensor(vec![self])
    }
    fn cosine_distance(self, other: Expr) -> Expr {
        cosine(vec![self, other])
    }
    fn dot_product(self, other: Expr) -> Expr {
        dot(vec![self, other])
    }
    fn l2_distance(self, other: Expr) -> Expr {
        l2(vec![self, other])
    }
    fn text_chunk(self, words: u32, overlap: u32) -> Expr {
        chunk(vec![self, lit(words), lit(overlap)])
    }
    fn text_split(self, chunk_size: u32, overlap: u32) -> Expr {
        split(vec![self, lit(chunk_size), lit(overlap)])
    }
    fn embed_text(self, model: &str) -> Expr {
        embed(vec![self, lit(model)])
    }
    fn pdf_pages(self, max_pages: u32, on_error: OnError) -> Expr {
        pdf(vec![self, lit(max_pages), lit(on_error.name())])
    }
    fn audio_decode(self, sample_rate: u32, mono: bool, on_error: OnError) -> Expr {
        audio(vec![
            self,
            lit(sample_rate),
            lit(mono),
            lit(on_error.name()),
        ])
    }
    fn pdf_pages_within(self, max_pages: u32, on_error: OnError, timeout: Duration) -> Expr {
        pdf(vec![
            self,
            lit(max_pages),
            lit(on_error.name()),
            lit("auto"),
            lit(timeout_ms(timeout)),
        ])
    }
    fn audio_decode_within(
        self,
        sample_rate: u32,
        mono: bool,
        on_error: OnError,
        timeout: Duration,
    ) -> Expr {
        audio(vec![
            self,
            lit(sample_rate),
            lit(mono),
            lit(on_error.name()),
            lit(timeout_ms(timeout)),
        ])
    }
    fn audio_duration(self) -> Expr {
        duration(vec![self])
    }
    fn transcribe(self, model: &str) -> Expr {
        transcribe(vec![self, lit(model)])
    }
    fn classify_image(self, model: &str) -> Expr {
        classify(vec![self, lit(model)])
    }
    fn image_logits(self, model: &str) -> Expr {
        logits(vec![self, lit(model)])
    }
    fn detect_faces(self) -> Expr {
        faces(vec![self])
    }
}
