//! The five workloads. Each returns the JSON record (without the RSS fields).

use std::path::{Path, PathBuf};
use std::time::Instant;

use regatta::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt64Array};
use regatta::arrow::compute::{concat_batches, take_record_batch};
use regatta::arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int32Type, Int64Type};
use regatta::arrow::record_batch::RecordBatchReader;
use regatta::arrow::util::display::array_value_to_string;
use regatta::datafusion::parquet::arrow::arrow_reader::{
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};
use regatta::prelude::*;
use serde_json::{json, Map, Value};

use crate::embed_stub;
use crate::Args;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = std::result::Result<T, BoxError>;

/// W3a and W3b, from the files the tests run too.
const Q1: &str = include_str!("../queries/tpch_q1.sql");

const Q3: &str = include_str!("../queries/tpch_q3.sql");

/// Runs the workload `args.workload`.
pub async fn run(args: &Args) -> Res<Value> {
    if args.runner != "native" && args.runner != "cluster" {
        return Err(format!("unknown runner {:?}; use native or cluster", args.runner).into());
    }
    let name = match args.workload.as_str() {
        "w1" => "image",
        "w3a" => "tpch_q1",
        "w3b" => "tpch_q3",
        "w4" => "lance_take",
        "w5" => "embed_stub",
        "w6" => "documents",
        "w7" => "audio",
        "w8" => "classify",
        "w9" => "video",
        other => other,
    };
    if name == "schedule" {
        let (rows, secs, extra) =
            crate::schedule::schedule(args.tasks, args.workers, args.replicas).await?;
        return Ok(record(args, name, rows, secs, extra));
    }
    if args.runner == "cluster"
        && !matches!(
            name,
            "image" | "tpch_q1" | "tpch_q3" | "documents" | "audio" | "classify"
        )
    {
        return Err(format!(
            "{name} runs only on the native runner; the cluster runs image, tpch_q1, tpch_q3, documents, audio and classify"
        )
        .into());
    }
    let data = Path::new(&args.data);
    let (rows, secs, extra) = match name {
        "image" => w1_image(args, data).await?,
        "tpch_q1" => tpch(args, data, Q1, &["lineitem"]).await?,
        "tpch_q3" => tpch(args, data, Q3, &["customer", "orders", "lineitem"]).await?,
        "lance_take" => w4_lance_take(data).await?,
        "embed_stub" => w5_embed(args, data).await?,
        "embed_minilm" => embed_minilm(args, data).await?,
        "documents" => crate::media::w6_documents(args, data).await?,
        "audio" => crate::media::w7_audio(args, data).await?,
        "classify" => crate::vision::w8_classify(args, data).await?,
        "video" => crate::vision::w9_video(args, data).await?,
        other => {
            return Err(format!(
                "unknown workload {other}; choose image, tpch_q1, tpch_q3, lance_take, embed_stub, embed_minilm, documents, audio, classify or video"
            )
            .into())
        }
    };
    Ok(record(args, name, rows, secs, extra))
}

/// The JSON line of one run.
fn record(args: &Args, name: &str, rows: u64, secs: f64, mut extra: Value) -> Value {
    let mut rec = json!({
        "workload": name,
        "runner": args.runner,
        "rows_out": rows,
        "seconds": (secs * 10_000.0).round() / 10_000.0,
        "engine": "regatta",
        "regatta_version": env!("CARGO_PKG_VERSION"),
    });
    if let (Some(obj), Some(more)) = (rec.as_object_mut(), extra.as_object_mut()) {
        obj.append(more);
    }
    rec
}

/// The session a workload runs on: the in-process engine, or the cluster whose
/// driver `--driver` (or `REGATTA_DRIVER`) names, with the token in `REGATTA_TOKEN`.
pub(crate) async fn session(args: &Args) -> Res<Session> {
    let precision = args.precision;
    if args.runner != "cluster" {
        if precision == regatta_common::Precision::F32 {
            return Ok(Session::local_from_env()?);
        }
        // The two transformer models of W6 and W7 under their built-in names,
        // from the directories scripts/env.sh names, at that precision.
        let mut store = regatta::models::ModelStore::default();
        for (name, var) in [
            ("all-MiniLM-L6-v2", "REGATTA_MINILM_DIR"),
            ("whisper-tiny.en", "REGATTA_WHISPER_DIR"),
        ] {
            let dir = std::env::var(var)
                .map_err(|_| format!("--precision {precision}: set {var} (scripts/env.sh does)"))?;
            store = store.with_entry(regatta::models::ModelEntry {
                name: name.into(),
                dir: dir.into(),
                kind: None,
                batch_size: None,
                precision: Some(precision),
            });
        }
        return Ok(Session::local_with_models(
            regatta::EngineOptions::from_env()?,
            regatta::models::NodeResources::detect(regatta::models::ResourceOverrides::from_env()?),
            store,
        )?);
    }
    if precision != regatta_common::Precision::F32 {
        // A cluster's models take their precision from its cluster file.
        return Err(format!(
            "--precision {precision} is for the local runner; set precision in the cluster file's [models]"
        )
        .into());
    }
    let driver = args
        .driver
        .clone()
        .or_else(|| std::env::var("REGATTA_DRIVER").ok())
        .ok_or("--runner cluster needs --driver http://HOST:PORT (or REGATTA_DRIVER)")?;
    let url = if driver.contains("://") {
        driver
    } else {
        format!("http://{driver}")
    };
    Ok(Session::connect(&url).await?)
}

pub(crate) fn out_dir(args: &Args, name: &str) -> Res<PathBuf> {
    let base = args
        .out_root
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::Builder::new()
        .prefix(&format!("regatta_{name}_"))
        .tempdir_in(&base)?;
    Ok(dir.keep())
}

pub(crate) fn read_dir_batches(dir: &Path) -> Res<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    for f in files {
        out.extend(read_parquet_file(&f)?);
    }
    Ok(out)
}

pub(crate) fn finish_output(args: &Args, dir: &Path, extra: &mut Value) {
    if args.keep_output || args.resume_into.is_some() {
        extra["out_dir"] = json!(dir.display().to_string());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

async fn w1_image(args: &Args, data: &Path) -> Res<(u64, f64, Value)> {
    let od = match &args.resume_into {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            PathBuf::from(dir)
        }
        None => out_dir(args, "w1")?,
    };
    let session = session(args).await?;
    let t0 = Instant::now();
    // The stand-in model: the built-in batch function giving each image's mean.
    let mean_pixels = session.engine().function("image_mean")?;
    let df = session
        .read_parquet(&data.join("images.parquet").to_string_lossy())
        .await?
        .with_column(
            "img",
            col("url")
                .url_download_with(OnError::Null, 30_000, 3)
                .image_decode_with(ImageMode::Rgb, OnError::Null),
        )?
        .filter(col("img").is_not_null())?
        .filter(
            col("img")
                .image_width()
                .gt_eq(lit(224u32))
                .and(col("img").image_height().gt_eq(lit(224u32))),
        )?
        .with_column("img", col("img").image_resize(224, 224))?
        .select(vec![
            col("id"),
            mean_pixels.call(vec![col("img")]).alias("label"),
        ])?;
    let df = match args.resume_into {
        Some(_) => df.resume_on("id"),
        None => df,
    };
    if std::env::var_os("REGATTA_BENCH_EXPLAIN").is_some() {
        // Diagnostics: the plan with every operator's metrics, on stderr.
        eprintln!("{}", df.clone().explain_analyze().await?);
    }
    let rows = df.write_parquet(&od.to_string_lossy()).await?;
    let secs = t0.elapsed().as_secs_f64();
    let batches = read_dir_batches(&od)?;
    let (mut n, mut id_sum, mut label_sum) = (0u64, 0i64, 0f64);
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let labels = b.column(1).as_primitive::<Float64Type>();
        n += b.num_rows() as u64;
        id_sum += ids.values().iter().sum::<i64>();
        label_sum += labels.values().iter().sum::<f64>();
    }
    let mut extra = json!({
        "check": {"rows": n, "id_sum": id_sum, "label_sum": (label_sum * 10_000.0).round() / 10_000.0},
        "decoder": "lenient (image crate / zune-jpeg)",
    });
    finish_output(args, &od, &mut extra);
    Ok((rows, secs, extra))
}

async fn tpch(args: &Args, data: &Path, sql: &str, tables: &[&str]) -> Res<(u64, f64, Value)> {
    let session = session(args).await?;
    for t in tables {
        let p = data.join("tpch").join(format!("{t}.parquet"));
        session
            .register(t, &p.to_string_lossy(), Some(FileFormat::Parquet))
            .await?;
    }
    let t0 = Instant::now();
    let batches = session.sql(sql).await?.collect().await?;
    let secs = t0.elapsed().as_secs_f64();
    let rows = json_rows(&batches)?;
    Ok((rows.len() as u64, secs, json!({ "result": rows })))
}

/// Result rows as JSON objects: integers as numbers, everything else as its text.
fn json_rows(batches: &[RecordBatch]) -> Res<Vec<Value>> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        for r in 0..b.num_rows() {
            let mut row = Map::new();
            for (c, f) in schema.fields().iter().enumerate() {
                let a = b.column(c);
                let v = if a.is_null(r) {
                    Value::Null
                } else {
                    match a.data_type() {
                        DataType::Int64 => json!(a.as_primitive::<Int64Type>().value(r)),
                        DataType::Int32 => json!(a.as_primitive::<Int32Type>().value(r)),
                        _ => json!(array_value_to_string(a, r)?),
                    }
                };
                row.insert(f.name().clone(), v);
            }
            out.push(Value::Object(row));
        }
    }
    Ok(out)
}

async fn w4_lance_take(data: &Path) -> Res<(u64, f64, Value)> {
    let lineitem = data.join("tpch").join("lineitem.parquet");
    let uri = data.join("lance").join("lineitem.lance");
    if !uri.exists() {
        // Setup (untimed): one partition keeps the Parquet row order.
        let opts = EngineOptions {
            target_partitions: 1,
            ..EngineOptions::default()
        };
        let s = Session::local_with(opts)?;
        s.read_parquet(&lineitem.to_string_lossy())
            .await?
            .write_lance(&uri.to_string_lossy())
            .await?;
    }
    let idx_batches = read_parquet_file(&data.join("tpch").join("take_indices.parquet"))?;
    let mut indices: Vec<u64> = Vec::new();
    for b in &idx_batches {
        let c = b.column(0).as_primitive::<Int64Type>();
        indices.extend(c.values().iter().map(|&v| v as u64));
    }

    let t0 = Instant::now();
    let ds = regatta_engine_lance::open(&uri.to_string_lossy()).await?;
    let lance_rows = regatta_engine_lance::take(&ds, &indices).await?;
    let lance_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let parquet_rows = parquet_take(&lineitem, &indices)?;
    let parquet_s = t1.elapsed().as_secs_f64();

    let same = lance_rows.num_rows() == parquet_rows.num_rows()
        && lance_rows
            .columns()
            .iter()
            .zip(parquet_rows.columns())
            .all(|(a, b)| {
                regatta::arrow::compute::cast(b, a.data_type())
                    .map(|b| a.as_ref() == b.as_ref())
                    .unwrap_or(false)
            });
    let extra = json!({
        "parquet_take_s": (parquet_s * 10_000.0).round() / 10_000.0,
        "lance_fragments": ds.get_fragments().len(),
        "check": {
            "lance": take_sums(&lance_rows)?,
            "parquet": take_sums(&parquet_rows)?,
            "lance_equals_parquet_in_order": same,
        }
    });
    Ok((lance_rows.num_rows() as u64, lance_s, extra))
}

use regatta::lance_io as regatta_engine_lance;

fn read_parquet_file(p: &Path) -> Res<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(p)?)?.build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// Reads only the wanted rows of the row groups that hold them, then restores the
/// request order.
fn parquet_take(path: &Path, indices: &[u64]) -> Res<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
    let total = builder.metadata().file_metadata().num_rows() as u64;
    let mut sorted: Vec<u64> = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.last().is_some_and(|&m| m >= total) {
        return Err(format!("take index beyond the {total} rows of {}", path.display()).into());
    }
    let mut selectors = Vec::new();
    let mut pos = 0u64;
    for &i in &sorted {
        if i > pos {
            selectors.push(RowSelector::skip((i - pos) as usize));
        }
        selectors.push(RowSelector::select(1));
        pos = i + 1;
    }
    if pos < total {
        selectors.push(RowSelector::skip((total - pos) as usize));
    }
    let reader = builder
        .with_row_selection(RowSelection::from(selectors))
        .with_batch_size(16_384)
        .build()?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let all = concat_batches(&schema, &batches)?;
    // all[k] holds row sorted[k]; map each request to its k.
    let order: Vec<u64> = indices
        .iter()
        .map(|i| sorted.binary_search(i).map(|k| k as u64).unwrap_or(0))
        .collect();
    Ok(take_record_batch(&all, &UInt64Array::from(order))?)
}

fn take_sums(b: &RecordBatch) -> Res<Value> {
    let col = |name: &str| -> Res<ArrayRef> {
        b.column_by_name(name)
            .cloned()
            .ok_or_else(|| format!("column {name} missing").into())
    };
    let ok = regatta::arrow::compute::cast(&col("l_orderkey")?, &DataType::Int64)?;
    let ln = regatta::arrow::compute::cast(&col("l_linenumber")?, &DataType::Int64)?;
    let ep = col("l_extendedprice")?;
    let ok: &Int64Array = ok.as_primitive();
    let ln: &Int64Array = ln.as_primitive();
    let price = match ep.data_type() {
        DataType::Decimal128(_, scale) => {
            let s: i128 = ep.as_primitive::<Decimal128Type>().values().iter().sum();
            let scale = *scale as u32;
            let div = 10i128.pow(scale);
            format!(
                "{}.{:0width$}",
                s / div,
                (s % div).abs(),
                width = scale as usize
            )
        }
        _ => return Err(format!("l_extendedprice is {}, not decimal", ep.data_type()).into()),
    };
    Ok(json!({
        "l_orderkey_sum": ok.values().iter().sum::<i64>(),
        "l_linenumber_sum": ln.values().iter().sum::<i64>(),
        "l_extendedprice_sum": price,
    }))
}

/// The real-model anchor of `shared/bench/README.md`: 64-word chunks of the first
/// `--docs` documents of docs.parquet embedded by all-MiniLM-L6-v2. The model is
/// loaded before the clock starts, as the Python peer does.
async fn embed_minilm(args: &Args, data: &Path) -> Res<(u64, f64, Value)> {
    const MODEL: &str = "all-MiniLM-L6-v2";
    let session = Session::local_from_env()?;
    session.embed_query("warm up", MODEL).await?;
    let before = session.model_stats(MODEL).unwrap_or_default();
    let t0 = Instant::now();
    let df = session
        .read_parquet(&data.join("docs.parquet").to_string_lossy())
        .await?
        .filter(col("id").lt(lit(args.docs as i64)))?
        .with_column("chunk", col("text").text_chunk(64, 0))?
        .explode_with_index("chunk", "chunk_idx")?
        .select(vec![
            col("id"),
            col("chunk_idx"),
            col("chunk").embed_text(MODEL).alias("embedding"),
        ])?;
    let mut rows = 0u64;
    let mut norms_ok = true;
    let mut stream = df.stream().await?;
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        let list = batch.column(2).as_fixed_size_list();
        for r in 0..list.len() {
            let v = list.value(r);
            let n: f32 = v
                .as_primitive::<regatta::arrow::datatypes::Float32Type>()
                .values()
                .iter()
                .map(|x| x * x)
                .sum();
            norms_ok &= (n.sqrt() - 1.0).abs() < 1e-3;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let after = session.model_stats(MODEL).unwrap_or_default();
    let busy = (after.busy_nanos - before.busy_nanos) as f64 / 1e9;
    let actors = after.actors_peak.max(1) as f64;
    let extra = json!({
        "docs": args.docs,
        "chunks_per_s": (rows as f64 / secs * 10.0).round() / 10.0,
        "pool_busy_share": (busy / (secs * actors) * 1000.0).round() / 1000.0,
        "model_batches": after.batches - before.batches,
        "model_builds": after.builds,
        "actors": after.actors_peak,
        "unit_vectors": norms_ok,
    });
    Ok((rows, secs, extra))
}

async fn w5_embed(args: &Args, data: &Path) -> Res<(u64, f64, Value)> {
    let od = out_dir(args, "w5")?;
    let session = Session::local_from_env()?;
    let t0 = Instant::now();
    let embed = session.register_batch_udf(BatchUdf::new(
        "embed_stub",
        embed_stub::embedding_type(),
        2048,
        embed_stub::embed_batch,
    ));
    let df = session
        .read_parquet(&data.join("docs.parquet").to_string_lossy())
        .await?
        .with_column("chunk", col("text").text_chunk(64, 0))?
        .explode_with_index("chunk", "chunk_idx")?
        .select(vec![
            col("id").alias("doc_id"),
            col("chunk_idx"),
            col("chunk").alias("text"),
            embed.call(vec![col("chunk")]).alias("embedding"),
        ])?;
    let rows = df.write_parquet(&od.to_string_lossy()).await?;
    let secs = t0.elapsed().as_secs_f64();
    let mut extra = json!({});
    finish_output(args, &od, &mut extra);
    Ok((rows, secs, extra))
}
