//! [`RegattaLogicalCodec`]: datafusion-proto's logical extension codec, for the
//! DataFrames a connected session sends to a cluster. It carries the tables
//! datafusion-proto does not know: a Lance snapshot
//! ([`LanceFragmentTable`], sent as its address, version and fragment ids, so the
//! driver plans against the very version the client saw without opening it), and
//! a [`VideoFramesTable`] (its input and options; the driver lists the videos).
//! Everything else (file formats, functions by name) is datafusion-proto's own.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion_proto::logical_plan::{DefaultLogicalExtensionCodec, LogicalExtensionCodec};
use prost::Message;
use regatta_engine::io::lance_scan::LanceFragmentTable;
use regatta_engine::io::video_frames::VideoFramesTable;
use regatta_proto::table_node::Table;
use regatta_proto::{LanceTableNode, TableNode, VideoTableNode};

use crate::video_msg::{video_options_from_msg, video_options_to_msg};

/// Encodes a connected session's tables (SDK); decodes them on the driver.
#[derive(Debug)]
pub struct RegattaLogicalCodec {
    defaults: DefaultLogicalExtensionCodec,
}

impl Default for RegattaLogicalCodec {
    fn default() -> Self {
        Self {
            defaults: DefaultLogicalExtensionCodec {},
        }
    }
}

impl LogicalExtensionCodec for RegattaLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> DfResult<Extension> {
        self.defaults.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.defaults.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        _ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let node = TableNode::decode(buf).map_err(|e| {
            DataFusionError::Plan(format!("table {table_ref}: not a table node: {e}"))
        })?;
        match node.table {
            Some(Table::Lance(l)) => Ok(Arc::new(LanceFragmentTable::from_parts(
                l.uri,
                l.version,
                schema,
                l.fragments,
                l.per_fragment,
            ))),
            Some(Table::Video(v)) => Ok(Arc::new(VideoFramesTable::new(
                v.input,
                video_options_from_msg(v.options)?,
            ))),
            None => Err(DataFusionError::Plan(format!(
                "table {table_ref}: a table node naming no table"
            ))),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        let table = if let Some(lance) = node.downcast_ref::<LanceFragmentTable>() {
            Table::Lance(LanceTableNode {
                uri: lance.uri().to_string(),
                version: lance.version(),
                fragments: lance.fragments().to_vec(),
                per_fragment: lance.per_fragment(),
            })
        } else if let Some(video) = node.downcast_ref::<VideoFramesTable>() {
            Table::Video(VideoTableNode {
                input: video.input().to_string(),
                options: Some(video_options_to_msg(video.options())),
            })
        } else {
            return Err(DataFusionError::NotImplemented(format!(
                "table {table_ref} is held in this process only"
            )));
        };
        TableNode { table: Some(table) }
            .encode(buf)
            .map_err(|e| DataFusionError::Internal(format!("encoding table {table_ref}: {e}")))
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.defaults.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> DfResult<()> {
        self.defaults.try_encode_file_format(buf, node)
    }
}
