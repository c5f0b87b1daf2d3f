//! [`submit_driver_job`]: runs a regatta driver itself as a Ray job (for clients
//! outside the cluster's network, which workers could not dial back to) and
//! follows its log until it ends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::client::{RayClient, RayJob};
use crate::launcher::shell_quote;
use crate::options::RayOptions;
use crate::package::ensure_package;
use crate::secret_package::{runtime_env, SecretPackage};
use crate::{RayError, Result};

/// A driver job submitted to Ray.
#[derive(Debug, Clone)]
pub struct DriverJob {
    pub client: RayClient,
    pub id: String,
}

/// Submits `./regatta ARGS` as a Ray job on the head node, with `env` added to
/// its environment and `secrets` readable through `regatta_common::secret_var`
/// (in a package of their own: Ray lists `env_vars` to anyone); Ray's own
/// address and token are passed on.
pub async fn submit_driver_job(
    options: &RayOptions,
    args: &[String],
    env: BTreeMap<String, String>,
    mut secrets: BTreeMap<String, String>,
) -> Result<DriverJob> {
    let client = RayClient::new(&options.address, &options.token)?;
    client.version().await?;
    let package = ensure_package(&client, &options.binary).await?;
    if !options.token.is_empty() {
        secrets.insert("REGATTA_RAY_TOKEN".into(), options.token.clone());
    }
    let secrets = SecretPackage::upload(&client, &secrets).await?;
    let mut env_vars: serde_json::Map<String, serde_json::Value> =
        env.into_iter().map(|(k, v)| (k, json!(v))).collect();
    env_vars.insert("REGATTA_RAY_ADDRESS".into(), json!(options.address));
    let millis = regatta_common::unix_ms_now();
    let id = format!("regatta-{}-{millis}-driver", std::process::id());
    let request = json!({
        "entrypoint": format!(
            "exec ./regatta {}",
            args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
        ),
        "submission_id": id,
        "entrypoint_num_cpus": 0,
        "runtime_env": runtime_env(&package, &secrets, env_vars),
        "metadata": {"regatta": "driver"},
    });
    let id = client.submit(&request).await?;
    Ok(DriverJob { client, id })
}

impl DriverJob {
    /// Passes the job's log to `out` as it grows, until the job ends; returns
    /// how it ended. The log is polled (Ray's tail endpoint is a WebSocket).
    pub async fn follow(&self, mut out: impl FnMut(&str)) -> Result<RayJob> {
        let mut shown = 0usize;
        loop {
            let job = self.client.job(&self.id).await?.ok_or_else(|| {
                RayError::Launch(format!("Ray lost job {} while it ran", self.id))
            })?;
            let logs = self.client.logs(&self.id).await?;
            if logs.len() > shown && logs.is_char_boundary(shown) {
                out(&logs[shown..]);
                shown = logs.len();
            }
            if job.ended() {
                // The last lines may land just after the status flips.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let logs = self.client.logs(&self.id).await?;
                if logs.len() > shown && logs.is_char_boundary(shown) {
                    out(&logs[shown..]);
                }
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Stops the job (the driver then stops its workers' jobs) and deletes it.
    pub async fn cancel(&self) -> Result<()> {
        self.client
            .stop_and_delete(&self.id, Duration::from_secs(20))
            .await
    }
}
