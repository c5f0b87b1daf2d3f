//! [`VideoFramesExec`]: the scan of a `video_frames` table. It holds only which
//! videos each partition decodes and how, so a cluster ships it to the workers
//! and each decodes its share there, streaming.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use super::video_frames::{decode_videos, video_frames_schema};
use crate::plan_methods::leaf_properties;
use crate::video::VideoOptions;

/// Partition `p` decodes the videos of `shares[p]`, in order, with `options`,
/// and gives the columns `projection` picks (all when None).
#[derive(Debug)]
pub struct VideoFramesExec {
    shares: Vec<Vec<String>>,
    options: VideoOptions,
    projection: Option<Vec<usize>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl VideoFramesExec {
    pub fn new(
        shares: Vec<Vec<String>>,
        options: VideoOptions,
        projection: Option<Vec<usize>>,
    ) -> DfResult<Self> {
        let full = video_frames_schema();
        let schema = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        let properties = leaf_properties(&schema, shares.len());
        Ok(Self {
            shares,
            options,
            projection,
            schema,
            properties,
        })
    }

    pub fn shares(&self) -> &[Vec<String>] {
        &self.shares
    }

    pub fn options(&self) -> &VideoOptions {
        &self.options
    }

    pub fn projection(&self) -> Option<&[usize]> {
        self.projection.as_deref()
    }
}

impl DisplayAs for VideoFramesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let videos: usize = self.shares.iter().map(Vec::len).sum();
        write!(
            f,
            "VideoFramesExec: {videos} videos in {} partitions",
            self.shares.len()
        )
    }
}

impl ExecutionPlan for VideoFramesExec {
    crate::leaf_exec_methods!("VideoFramesExec");

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        // No videos at all is one partition with no rows.
        let videos = match self.shares.get(partition) {
            Some(v) => v.clone(),
            None if self.shares.is_empty() && partition == 0 => Vec::new(),
            None => {
                return Err(DataFusionError::Internal(format!(
                    "video_frames: no partition {partition} (of {})",
                    self.shares.len()
                )))
            }
        };
        let policy = crate::access::policy_of(context.session_config());
        let errors = context
            .session_config()
            .get_extension::<crate::RowErrorSink>();
        let frames = decode_videos(
            videos,
            self.options.clone(),
            video_frames_schema(),
            policy,
            errors,
        );
        let Some(projection) = self.projection.clone() else {
            return Ok(frames);
        };
        let rows = frames.map(move |b| Ok(b?.project(&projection)?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            rows,
        )))
    }
}
