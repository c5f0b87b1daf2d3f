//! The `video_frames` source: one row per decoded frame, `{url, frame_index,
//! pts_seconds, image}`, streamed. Each partition decodes its share of the videos on
//! a blocking thread and hands batches of a few frames through a bounded channel, so
//! memory holds a few frames per partition however long the videos are.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use tokio::sync::mpsc::Sender;

use super::sources::input_files;
use super::video_frames_exec::VideoFramesExec;
use crate::functions::row_failures::{RowErrorClass, RowFailure};
use crate::functions::OnError;
use crate::storage;
use crate::types::{image_type, ImageColumnBuilder};
use crate::video::{FrameReader, VideoError, VideoFrame, VideoOptions};

/// The table function's SQL name.
pub const VIDEO_FRAMES: &str = "video_frames";

/// Frames per output batch: a few, since each is a whole image.
const FRAMES_PER_BATCH: usize = 8;

/// The rows' schema: `url`, `frame_index`, `pts_seconds`, `image`.
pub fn video_frames_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("url", DataType::Utf8, false),
        Field::new("frame_index", DataType::Int64, false),
        Field::new("pts_seconds", DataType::Float64, false),
        Field::new("image", image_type(), false),
    ]))
}

/// `video_frames('glob, directory, path or URL' [, 'options'])` in SQL.
#[derive(Debug, Default)]
pub struct VideoFramesFunction;

const USAGE: &str = "video_frames('videos/*.mp4' [, 'size=640x640, every=1, fps=2, keyframes=true, limit=100, on_error=null'])";

fn string_literal(e: &Expr, what: &str) -> DfResult<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Ok(s.clone()),
        other => Err(DataFusionError::Plan(format!(
            "{VIDEO_FRAMES}: the {what} must be a string constant, got {other}; usage: {USAGE}"
        ))),
    }
}

impl TableFunctionImpl for VideoFramesFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.is_empty() || exprs.len() > 2 {
            return Err(DataFusionError::Plan(format!(
                "{VIDEO_FRAMES} takes 1 or 2 arguments, got {}; usage: {USAGE}",
                exprs.len()
            )));
        }
        let input = string_literal(&exprs[0], "input")?;
        let options = match exprs.get(1) {
            Some(e) => VideoOptions::parse(&string_literal(e, "options")?)
                .map_err(|e| DataFusionError::Plan(format!("{VIDEO_FRAMES}: {e}")))?,
            None => VideoOptions::default(),
        };
        Ok(Arc::new(VideoFramesTable::new(input, options)))
    }
}

/// The frames of the videos `input` names, as a table. Files are listed when the
/// table is scanned (a local glob or directory, or an object-store prefix or glob).
#[derive(Debug, Clone)]
pub struct VideoFramesTable {
    input: String,
    options: VideoOptions,
    schema: SchemaRef,
}

impl VideoFramesTable {
    pub fn new(input: String, options: VideoOptions) -> Self {
        Self {
            input,
            options,
            schema: video_frames_schema(),
        }
    }

    pub fn input(&self) -> &str {
        &self.input
    }

    pub fn options(&self) -> &VideoOptions {
        &self.options
    }
}

#[async_trait]
impl TableProvider for VideoFramesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // Directories are listed whole: videos come in many extensions.
        let policy = crate::access::policy_of(state.config());
        let files = input_files(&self.input, "", &policy)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let n = files
            .len()
            .min(state.config().target_partitions().max(1))
            .max(1);
        let mut shares: Vec<Vec<String>> = vec![Vec::new(); n];
        for (i, f) in files.into_iter().enumerate() {
            shares[i % n].push(f);
        }
        Ok(Arc::new(VideoFramesExec::new(
            shares,
            self.options.clone(),
            projection.cloned(),
        )?))
    }
}

/// Decodes `videos` one after another as a stream of frame batches (the full
/// schema), on a blocking thread that waits when the consumer is slow.
pub(crate) fn decode_videos(
    videos: Vec<String>,
    options: VideoOptions,
    schema: SchemaRef,
    policy: Arc<crate::access::AccessPolicy>,
    errors: Option<Arc<crate::RowErrorSink>>,
) -> SendableRecordBatchStream {
    // Two batches in flight: the decoder waits when the consumer is slow.
    let mut builder = RecordBatchReceiverStreamBuilder::new(schema.clone(), 2);
    let tx = builder.tx();
    let handle = tokio::runtime::Handle::current();
    builder.spawn_blocking(move || {
        for url in &videos {
            let video = Video {
                url,
                options: &options,
                errors: errors.as_deref(),
            };
            match decode_video(&video, &schema, &tx, &handle, &policy) {
                Ok(true) => {}
                Ok(false) => break, // the reader went away
                Err(e) => {
                    // Through the channel, behind the frames already sent (a
                    // task's own error could overtake them).
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
        Ok(())
    });
    builder.build()
}

/// A local copy of a remote video (removed on drop), the local path itself,
/// or a local file the policy checked once open, read through its descriptor
/// (so what FFmpeg opens is what was checked).
enum LocalVideo {
    Path(PathBuf),
    Temp(tempfile::NamedTempFile),
    Open {
        _file: std::fs::File,
        by_descriptor: PathBuf,
    },
}

impl LocalVideo {
    fn path(&self) -> &Path {
        match self {
            Self::Path(p) => p,
            Self::Temp(t) => t.path(),
            Self::Open { by_descriptor, .. } => by_descriptor,
        }
    }
}

fn fetch(
    url: &str,
    handle: &tokio::runtime::Handle,
    policy: &crate::access::AccessPolicy,
) -> Result<LocalVideo, String> {
    policy.check_scheme(url).map_err(|e| e.to_string())?;
    if !storage::is_object_url(url) {
        let path = crate::io::paths::local_path(url).map_err(|e| e.to_string())?;
        // Listed on the driver under its policy; checked again where it is read.
        if policy.local_roots.is_none() {
            return policy
                .check_local(&path)
                .map(LocalVideo::Path)
                .map_err(|e| e.to_string());
        }
        return open_checked(policy, &path);
    }
    // FFmpeg reads files: an object is copied to a temporary file first.
    let parsed = storage::ObjectUrl::parse(url).map_err(|e| e.to_string())?;
    let bytes = handle
        .block_on(storage::remote::get_bytes(&parsed))
        .map_err(|e| e.to_string())?;
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| format!("temporary file: {e}"))?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(|e| format!("temporary file: {e}"))?;
    Ok(LocalVideo::Temp(tmp))
}

/// `path` opened under the policy's roots and handed to FFmpeg as
/// `/proc/self/fd/N`: a link swapped in after the check cannot redirect it.
#[cfg(target_os = "linux")]
fn open_checked(policy: &crate::access::AccessPolicy, path: &Path) -> Result<LocalVideo, String> {
    use std::os::fd::AsRawFd;
    let file = policy.open_local(path).map_err(|e| match e {
        crate::access::LocalOpenError::Refused(r) => r.to_string(),
        crate::access::LocalOpenError::Io(e) => format!("{}: {e}", path.display()),
    })?;
    let by_descriptor = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    Ok(LocalVideo::Open {
        _file: file,
        by_descriptor,
    })
}

#[cfg(not(target_os = "linux"))]
fn open_checked(policy: &crate::access::AccessPolicy, path: &Path) -> Result<LocalVideo, String> {
    policy
        .check_local(path)
        .map(LocalVideo::Path)
        .map_err(|e| e.to_string())
}

fn video_error(url: &str, message: impl std::fmt::Display) -> DataFusionError {
    let url = crate::access::cut_query(url);
    DataFusionError::Execution(format!("{VIDEO_FRAMES}: {url}: {message}"))
}

/// One video to decode, with what its failures go to.
struct Video<'a> {
    url: &'a str,
    options: &'a VideoOptions,
    /// The job's failed-row counts and error table, when it keeps them.
    errors: Option<&'a crate::RowErrorSink>,
}

impl Video<'_> {
    /// Leaves the rest of this video out (on_error other than raise): logged,
    /// and under skip or record counted as one failed row of the job (with the
    /// URL as its key in the error table under record), so a bad video is never
    /// lost silently. Fails once the job's max_failed_rows is passed.
    fn left_out(&self, class: RowErrorClass, message: String) -> DfResult<bool> {
        let url = crate::access::cut_query(self.url);
        log::warn!("{VIDEO_FRAMES}: leaving out {url}: {message}");
        let counted = matches!(self.options.on_error, OnError::Skip | OnError::Record);
        if let (true, Some(errors)) = (counted, self.errors) {
            let failure = RowFailure {
                function: VIDEO_FRAMES,
                row: 0,
                source: Some(self.url.to_string()),
                class,
                message,
                record: self.options.on_error == OnError::Record,
            };
            errors
                .add_failures(vec![(failure, Some(self.url.to_string()))])
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        Ok(true)
    }
}

/// Decodes `video` into batches sent on `tx`. False when the receiver is gone.
fn decode_video(
    video: &Video<'_>,
    schema: &SchemaRef,
    tx: &Sender<DfResult<RecordBatch>>,
    handle: &tokio::runtime::Handle,
    policy: &crate::access::AccessPolicy,
) -> DfResult<bool> {
    let (url, options) = (video.url, video.options);
    // Frames are rows of a source, not of a function: null, skip and record
    // all leave a bad file out.
    let skip = options.on_error != OnError::Raise;
    if let Some(errors) = video.errors {
        errors.add_checked(VIDEO_FRAMES, 1);
    }
    let local = match fetch(url, handle, policy) {
        Ok(l) => l,
        Err(e) if skip => return video.left_out(RowErrorClass::Io, e),
        Err(e) => return Err(video_error(url, e)),
    };
    let mut reader = match FrameReader::open(local.path(), options.clone()) {
        Ok(r) => r,
        Err(e @ VideoError::TimedOut { .. }) if skip => {
            return video.left_out(RowErrorClass::Timeout, e.to_string())
        }
        Err(e) if skip => return video.left_out(RowErrorClass::Data, e.to_string()),
        Err(e) => return Err(video_error(url, e)),
    };
    let mut pending: Vec<VideoFrame> = Vec::with_capacity(FRAMES_PER_BATCH);
    loop {
        let (frame, fault, end) = match reader.next_frame() {
            Ok(Some(f)) => (Some(f), None, false),
            Ok(None) => (None, None, true),
            Err(e) => (None, Some(e), true),
        };
        pending.extend(frame);
        // The frames decoded before a fault are sent before it is reported.
        if pending.len() >= FRAMES_PER_BATCH || (end && !pending.is_empty()) {
            let batch = frames_batch(url, std::mem::take(&mut pending), schema)?;
            if tx.blocking_send(Ok(batch)).is_err() {
                return Ok(false);
            }
        }
        match fault {
            Some(e) if skip => {
                let class = match e {
                    VideoError::TimedOut { .. } => RowErrorClass::Timeout,
                    _ => RowErrorClass::Data,
                };
                return video.left_out(class, format!("{e} (the frames before it are kept)"));
            }
            Some(e) => return Err(video_error(url, e)),
            None if end => return Ok(true),
            None => {}
        }
    }
}

fn frames_batch(url: &str, frames: Vec<VideoFrame>, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let n = frames.len();
    let mut urls = StringBuilder::with_capacity(n, n * url.len());
    let mut index = Int64Builder::with_capacity(n);
    let mut pts = Float64Builder::with_capacity(n);
    let mut images = ImageColumnBuilder::with_capacity(n);
    for f in frames {
        urls.append_value(url);
        index.append_value(f.index as i64);
        pts.append_value(f.pts_seconds);
        images.append(f.image)?;
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(urls.finish()),
        Arc::new(index.finish()),
        Arc::new(pts.finish()),
        images.finish(),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
