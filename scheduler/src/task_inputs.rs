//! What each task of a stage reads, named for a task that fails for good.

use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;

/// Names listed per task before "and N more".
const NAMES_SHOWN: usize = 3;

/// What each of `tasks` tasks of `plan` reads: its files, when the stage
/// scans one file source whose groups are its tasks; else its shuffle
/// partition of the rows from `job_files` (every file the job scans); empty
/// when the job scans no files (a Lance dataset, values).
pub fn task_inputs(plan: &dyn ExecutionPlan, tasks: u32, job_files: &[String]) -> Vec<String> {
    let mut scans = Vec::new();
    collect_scans(plan, &mut scans);
    if let [groups] = scans.as_slice() {
        if groups.len() == tasks as usize {
            return groups.iter().map(|files| names(files)).collect();
        }
    }
    if job_files.is_empty() {
        return Vec::new();
    }
    let from = names(job_files);
    (0..tasks)
        .map(|p| format!("partition {p} of the rows of {from}"))
        .collect()
}

/// Every file `plans` scan, once each, in order.
pub fn scanned_files<'a>(plans: impl IntoIterator<Item = &'a dyn ExecutionPlan>) -> Vec<String> {
    let mut scans = Vec::new();
    for p in plans {
        collect_scans(p, &mut scans);
    }
    let mut seen = std::collections::HashSet::new();
    scans
        .into_iter()
        .flatten()
        .flatten()
        .filter(|f| seen.insert(f.clone()))
        .collect()
}

/// A few names, then how many more.
fn names(files: &[String]) -> String {
    let mut s = files
        .iter()
        .take(NAMES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if files.len() > NAMES_SHOWN {
        s.push_str(&format!(" and {} more", files.len() - NAMES_SHOWN));
    }
    s
}

fn collect_scans(plan: &dyn ExecutionPlan, out: &mut Vec<Vec<Vec<String>>>) {
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
        if let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() {
            out.push(
                config
                    .file_groups
                    .iter()
                    .map(|g| {
                        g.files()
                            .iter()
                            .map(|f| {
                                format!(
                                    "{}{}",
                                    config.object_store_url.as_str(),
                                    f.object_meta.location
                                )
                            })
                            .collect()
                    })
                    .collect(),
            );
        }
    }
    for child in plan.children() {
        collect_scans(child.as_ref(), out);
    }
}
