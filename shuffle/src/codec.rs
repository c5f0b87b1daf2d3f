//! [`RegattaCodec`]: datafusion-proto's extension codec for regatta's own plan nodes
//! (shuffle reads and writes, morsel operators, streaming filters, Lance fragment
//! scans) and for models,
//! which a worker builds by name.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::from_proto::parse_expr;
use datafusion_proto::logical_plan::to_proto::serialize_expr;
use datafusion_proto::logical_plan::DefaultLogicalExtensionCodec;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use datafusion_proto::protobuf::{LogicalExprNode, PhysicalExprNode, Schema as SchemaNode};
use prost::Message;
use regatta_common::{JobId, StageId};
use regatta_engine::io::lance_scan::LanceFragmentScanExec;
use regatta_engine::io::video_frames_exec::VideoFramesExec;
use regatta_engine::morsel::{MorselExec, StreamingFilterExec};
use regatta_engine::Engine;
use regatta_proto::plan_node::Node;
use regatta_proto::{
    FragmentGroup, LanceScanNode, MorselNode, PlanNode, ShuffleReadNode, ShuffleWriteNode,
    StreamingFilterNode, VideoFramesNode, VideoShare,
};

use crate::video_msg::{video_options_from_msg, video_options_to_msg};
use crate::{
    OutputSink, ShuffleInput, ShuffleLayout, ShufflePartitioning, ShuffleReadExec, ShuffleWriteExec,
};

/// Encodes regatta's nodes on the driver; decodes them on a worker, where it also
/// knows the task's shuffle inputs, the spill directory and the local engine.
#[derive(Debug, Clone, Default)]
pub struct RegattaCodec {
    engine: Option<Engine>,
    layout: Option<ShuffleLayout>,
    inputs: HashMap<StageId, ShuffleInput>,
}

impl RegattaCodec {
    /// A codec that only encodes (the driver's).
    pub fn encoder() -> Self {
        Self::default()
    }

    /// A worker's codec for one task: decoded operators run on `engine`, write under
    /// `layout` and read `inputs`.
    pub fn for_task(
        engine: Engine,
        layout: ShuffleLayout,
        inputs: HashMap<StageId, ShuffleInput>,
    ) -> Self {
        Self {
            engine: Some(engine),
            layout: Some(layout),
            inputs,
        }
    }

    /// A codec that decodes plans against `engine` without running them (checks).
    pub fn for_engine(engine: Engine) -> Self {
        Self {
            engine: Some(engine),
            ..Self::default()
        }
    }

    fn expr_bytes(&self, e: &Arc<dyn PhysicalExpr>) -> DfResult<Vec<u8>> {
        Ok(serialize_physical_expr(e, self)?.encode_to_vec())
    }

    fn parse_expr(
        &self,
        bytes: &[u8],
        ctx: &TaskContext,
        schema: &Schema,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        let node = PhysicalExprNode::decode(bytes).map_err(decode_err)?;
        parse_physical_expr(&node, ctx, schema, self)
    }

    fn engine(&self, what: &str) -> DfResult<&Engine> {
        self.engine.as_ref().ok_or_else(|| {
            DataFusionError::Internal(format!("{what} can only be decoded on a worker"))
        })
    }
}

fn decode_err(e: prost::DecodeError) -> DataFusionError {
    DataFusionError::Plan(format!("malformed regatta plan node: {e}"))
}

fn one_input(inputs: &[Arc<dyn ExecutionPlan>], what: &str) -> DfResult<Arc<dyn ExecutionPlan>> {
    match inputs {
        [one] => Ok(one.clone()),
        _ => Err(DataFusionError::Plan(format!(
            "{what} needs exactly one input, got {}",
            inputs.len()
        ))),
    }
}

impl PhysicalExtensionCodec for RegattaCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let node = PlanNode::decode(buf)
            .map_err(decode_err)?
            .node
            .ok_or_else(|| DataFusionError::Plan("empty regatta plan node".into()))?;
        match node {
            Node::ShuffleWrite(w) => {
                let input = one_input(inputs, "ShuffleWriteExec")?;
                let partitioning = if w.spread {
                    ShufflePartitioning::Spread(w.partitions as usize)
                } else if w.hash_keys.is_empty() {
                    ShufflePartitioning::PerTask
                } else {
                    let schema = input.schema();
                    let keys = w
                        .hash_keys
                        .iter()
                        .map(|k| self.parse_expr(k, ctx, &schema))
                        .collect::<DfResult<Vec<_>>>()?;
                    ShufflePartitioning::Hash(keys, w.partitions as usize)
                };
                let sink = w.sink.as_ref().map(OutputSink::from_msg).transpose()?;
                Ok(Arc::new(
                    ShuffleWriteExec::new(
                        (JobId(w.job_id), StageId(u64::from(w.stage_id))),
                        input,
                        partitioning,
                        self.layout.clone(),
                    )
                    .with_sink(sink),
                ))
            }
            Node::ShuffleRead(r) => {
                let proto = SchemaNode::decode(r.schema.as_slice()).map_err(decode_err)?;
                let schema = Schema::try_from(&proto)?;
                let stage = StageId(u64::from(r.stage_id));
                Ok(Arc::new(ShuffleReadExec::new(
                    (JobId(r.job_id), stage),
                    Arc::new(schema),
                    r.partitions as usize,
                    self.inputs.get(&stage).cloned(),
                )))
            }
            Node::Morsel(m) => {
                let input = one_input(inputs, "MorselExec")?;
                if m.exprs.len() != m.names.len() {
                    return Err(DataFusionError::Plan(
                        "morsel node: expressions and names differ in number".into(),
                    ));
                }
                let schema = input.schema();
                let exprs = m
                    .exprs
                    .iter()
                    .zip(m.names)
                    .map(|(e, alias)| {
                        Ok(ProjectionExpr {
                            expr: self.parse_expr(e, ctx, &schema)?,
                            alias,
                        })
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                self.engine("a morsel operator")?
                    .morsel_operator(exprs, input)
                    .map_err(|e| DataFusionError::External(Box::new(e)))
            }
            Node::StreamingFilter(f) => {
                let input = one_input(inputs, "StreamingFilterExec")?;
                let predicate = self.parse_expr(&f.predicate, ctx, &input.schema())?;
                Ok(Arc::new(StreamingFilterExec::try_new(predicate, input)?))
            }
            Node::VideoFrames(v) => Ok(Arc::new(video_frames_from_msg(v)?)),
            Node::LanceScan(l) => {
                let proto = SchemaNode::decode(l.schema.as_slice()).map_err(decode_err)?;
                let schema = Schema::try_from(&proto)?;
                let filter = if l.filter.is_empty() {
                    None
                } else {
                    let node = LogicalExprNode::decode(l.filter.as_slice()).map_err(decode_err)?;
                    Some(parse_expr(&node, ctx, &DefaultLogicalExtensionCodec {})?)
                };
                let limit = l.limit.map(|n| n as usize);
                let groups = l.groups.into_iter().map(|g| g.fragments).collect();
                Ok(Arc::new(
                    LanceFragmentScanExec::new(l.uri, l.version, Arc::new(schema), groups)
                        .with_pushdown(filter, limit),
                ))
            }
        }
    }

    fn try_encode(&self, node: Arc<dyn ExecutionPlan>, buf: &mut Vec<u8>) -> DfResult<()> {
        let encoded = if let Some(w) = node.downcast_ref::<ShuffleWriteExec>() {
            let (partitions, hash_keys) = match w.partitioning() {
                ShufflePartitioning::Hash(keys, n) => (
                    *n as u32,
                    keys.iter()
                        .map(|k| self.expr_bytes(k))
                        .collect::<DfResult<Vec<_>>>()?,
                ),
                ShufflePartitioning::PerTask | ShufflePartitioning::Spread(_) => {
                    (w.output_partitions() as u32, Vec::new())
                }
            };
            Node::ShuffleWrite(ShuffleWriteNode {
                job_id: w.job().0,
                stage_id: w.stage().0 as u32,
                partitions,
                hash_keys,
                spread: matches!(w.partitioning(), ShufflePartitioning::Spread(_)),
                sink: w.sink().map(OutputSink::to_msg),
            })
        } else if let Some(r) = node.downcast_ref::<ShuffleReadExec>() {
            let schema = SchemaNode::try_from(r.schema().as_ref())?;
            Node::ShuffleRead(ShuffleReadNode {
                job_id: r.job().0,
                stage_id: r.stage().0 as u32,
                partitions: r.partitions() as u32,
                schema: schema.encode_to_vec(),
            })
        } else if let Some(m) = node.downcast_ref::<MorselExec>() {
            let mut exprs = Vec::new();
            let mut names = Vec::new();
            for pe in m.exprs() {
                exprs.push(self.expr_bytes(&pe.expr)?);
                names.push(pe.alias.clone());
            }
            Node::Morsel(MorselNode { exprs, names })
        } else if let Some(f) = node.downcast_ref::<StreamingFilterExec>() {
            Node::StreamingFilter(StreamingFilterNode {
                predicate: self.expr_bytes(f.predicate())?,
            })
        } else if let Some(v) = node.downcast_ref::<VideoFramesExec>() {
            Node::VideoFrames(video_frames_to_msg(v))
        } else if let Some(l) = node.downcast_ref::<LanceFragmentScanExec>() {
            let schema = SchemaNode::try_from(l.schema().as_ref())?;
            let filter = match l.filter() {
                Some(f) => serialize_expr(f, &DefaultLogicalExtensionCodec {})?.encode_to_vec(),
                None => Vec::new(),
            };
            Node::LanceScan(LanceScanNode {
                uri: l.uri().to_string(),
                version: l.version(),
                schema: schema.encode_to_vec(),
                filter,
                limit: l.limit().map(|n| n as u64),
                groups: l
                    .groups()
                    .iter()
                    .map(|g| FragmentGroup {
                        fragments: g.clone(),
                    })
                    .collect(),
            })
        } else {
            return Err(DataFusionError::NotImplemented(format!(
                "{} cannot run on a cluster: regatta cannot ship this operator to workers",
                node.name()
            )));
        };
        PlanNode {
            node: Some(encoded),
        }
        .encode(buf)
        .map_err(|e| DataFusionError::Internal(format!("encoding a plan node: {e}")))
    }

    fn try_decode_udf(&self, name: &str, _buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
        // Functions a worker's engine registers are found by name before this; what
        // is left are models, which the worker's actor runtime builds by name.
        let engine = self.engine(&format!("function {name}"))?;
        engine.model(name).map_err(|_| {
            DataFusionError::Plan(format!(
                "function {name} is not known on this worker: register it in the worker \
                 (built-in functions and models need nothing)"
            ))
        })
    }
}

fn video_frames_to_msg(v: &VideoFramesExec) -> VideoFramesNode {
    VideoFramesNode {
        shares: v
            .shares()
            .iter()
            .map(|urls| VideoShare { urls: urls.clone() })
            .collect(),
        options: Some(video_options_to_msg(v.options())),
        projection: v
            .projection()
            .map(|p| p.iter().map(|&i| i as u32).collect())
            .unwrap_or_default(),
        projected: v.projection().is_some(),
    }
}

fn video_frames_from_msg(v: VideoFramesNode) -> DfResult<VideoFramesExec> {
    let options = video_options_from_msg(v.options)?;
    let projection = v
        .projected
        .then(|| v.projection.iter().map(|&i| i as usize).collect());
    let shares = v.shares.into_iter().map(|s| s.urls).collect();
    VideoFramesExec::new(shares, options, projection)
}
