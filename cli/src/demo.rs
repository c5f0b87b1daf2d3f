//! `regatta demo`: an image + text pipeline on the embedded engine, into Lance.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use regatta::arrow::array::ArrayRef;
use regatta::arrow::datatypes::DataType;
use regatta::prelude::*;
use regatta::types::ImageColumn;

use crate::demo_data;
use crate::progress::steps_bar;
use crate::{CliError, Result};

/// `regatta demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// An images.parquet (id, url, caption) to use instead of generated data.
    #[arg(long)]
    pub input: Option<String>,
    /// Where the Lance dataset goes (default: a new temporary directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Images to generate when no --input is given.
    #[arg(long, default_value_t = 48)]
    pub images: usize,
    /// Text whose nearest captions (by embedding) the demo looks up at the end.
    #[arg(long, default_value = "a boat on the water")]
    pub query: String,
}

/// The embedding model the demo uses.
const MODEL: &str = "all-MiniLM-L6-v2";

/// Mean pixel value of each image: a stand-in for a model, as a batch function.
fn brightness(args: &[ArrayRef]) -> regatta::datafusion::error::Result<ArrayRef> {
    let images = args.first().ok_or_else(|| {
        regatta::datafusion::error::DataFusionError::Plan(
            "brightness takes one image column".into(),
        )
    })?;
    Ok(Arc::new(
        ImageColumn::try_new(images.as_ref(), "brightness")?.mean_values()?,
    ))
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<()> {
    let started = Instant::now();
    let session = Session::local();
    let steps = steps_bar(5, "data");
    let tmp = tempfile::Builder::new()
        .prefix("regatta-demo-")
        .tempdir()
        .map_err(|e| CliError::Output(format!("cannot make a temp dir: {e}")))?
        .keep();
    let input = match &args.input {
        Some(p) => p.clone(),
        None => demo_data::generate(&session, &tmp, args.images).await?,
    };
    let out = args.out.clone().unwrap_or_else(|| tmp.join("demo.lance"));
    let out_s = out.to_string_lossy().to_string();
    steps.inc(1);
    steps.set_message("pipeline");

    let bright = session.register_batch_udf(BatchUdf::new(
        "brightness",
        DataType::Float64,
        16,
        brightness,
    ));
    let df = session
        .read_parquet(&input)
        .await?
        .with_column(
            "image",
            col("url")
                .url_download_with(OnError::Null, 10_000, 2)
                .image_decode_with(ImageMode::Rgb, OnError::Null),
        )?
        .filter(col("image").is_not_null())?
        .with_column("width", col("image").image_width())?
        .with_column("height", col("image").image_height())?
        .with_column("small", col("image").image_resize(64, 64))?
        .select(vec![
            col("id"),
            col("caption"),
            col("caption").text_chunk(8, 2).alias("caption_chunks"),
            col("caption").embed_text(MODEL).alias("caption_embedding"),
            col("width"),
            col("height"),
            bright.call(vec![col("small")]).alias("brightness"),
            col("small").image_encode("png").alias("thumbnail"),
        ])?;
    let mut exec = df.execute().await?;
    let rows = regatta::lance_io::write_stream(exec.take_stream(), &out_s, WriteMode::Create)
        .await
        .map_err(regatta::Error::from)?;
    let metrics = exec.metrics();
    steps.inc(1);
    steps.set_message("add column");

    // Grow the dataset in place: a column computed from stored thumbnails.
    session
        .add_lance_column(
            &out_s,
            "thumb_mode",
            col("thumbnail").image_decode(ImageMode::Rgb).image_mode(),
        )
        .await?;
    steps.inc(1);
    steps.set_message("summary");

    let total = session.read_parquet(&input).await?.count().await?;
    let stored = session.read_lance(&out_s).await?;
    let preview = stored
        .clone()
        .select(vec![
            col("id"),
            col("width"),
            col("height"),
            col("brightness"),
            col("thumb_mode"),
            regatta::datafusion::functions::expr_fn::left(col("caption"), lit(40i64))
                .alias("caption"),
        ])?
        .sort(vec![col("id").sort(true, false)])?
        .to_table_string(5)
        .await?;
    steps.inc(1);
    steps.set_message("nearest neighbours");
    let hits = session
        .nearest_text(&out_s, "caption_embedding", &args.query, MODEL, 3)
        .await?;
    let hits = session
        .from_batches(vec![hits])?
        .select(vec![col("id"), col("caption"), col("_distance")])?
        .to_table_string(3)
        .await?;
    let model = session.model_stats(MODEL);
    steps.inc(1);
    steps.finish_and_clear();

    println!("regatta demo: image + text pipeline on the embedded engine");
    println!("  input            {input}");
    println!("  rows in          {total}");
    println!("  images decoded   {rows}");
    println!("  skipped (broken or missing) {}", total as u64 - rows);
    println!(
        "  lance dataset    {out_s} ({} columns)",
        stored.schema().fields().len()
    );
    println!("  elapsed          {:.2}s", started.elapsed().as_secs_f64());
    println!("  operators:");
    for m in metrics.iter().filter(|m| m.in_flight_rows_peak.is_some()) {
        let op = m
            .description
            .split("op=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or(&m.name);
        println!(
            "    {op:<40} rows {:>6}  in-flight peak {:>5}  compute {:.3}s",
            m.output_rows,
            m.in_flight_rows_peak.unwrap_or(0),
            m.compute_nanos as f64 / 1e9
        );
    }
    if let Some(m) = model {
        println!(
            "  {MODEL}: {} batches, {} actor(s), model loaded {} time(s), busy {:.2}s",
            m.batches,
            m.actors_peak,
            m.builds,
            m.busy_nanos as f64 / 1e9
        );
    }
    println!("{preview}");
    println!(
        "captions nearest to {:?} (Lance vector search over caption_embedding):",
        args.query
    );
    println!("{hits}");
    Ok(())
}
