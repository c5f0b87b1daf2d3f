//! The gRPC WorkerControl service: workers register, take orders and report.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use regatta_common::{JobId, Resources, StageId, WorkerId};
use regatta_proto::worker_control_server::WorkerControl;
use regatta_proto::{
    HeartbeatRequest, HeartbeatResponse, OrdersRequest, RegisterRequest, RegisterResponse,
    ReportResponse, TaskReport, WorkerOrder,
};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::membership::Registration;
use super::worker_credentials::WorkerCredentials;
use super::{Driver, TaskTime, WorkerReport};
use crate::{Command, OutputStats, TaskKey, WorkerSpec};
use regatta_common::OperatorSummary;

/// Serves workers.
#[derive(Clone)]
pub struct WorkerControlImpl {
    driver: Driver,
    credentials: WorkerCredentials,
}

impl WorkerControlImpl {
    pub fn new(driver: Driver) -> Self {
        Self {
            driver,
            credentials: WorkerCredentials,
        }
    }

    /// Refuses a call on `worker`'s behalf without its credential, checked
    /// against the digest in its replicated record.
    fn check_credential(
        &self,
        worker: WorkerId,
        metadata: &tonic::metadata::MetadataMap,
        what: &str,
    ) -> Result<(), Status> {
        let digest = self
            .driver
            .with_state(|s| s.worker(worker).map(|w| w.spec.credential_digest.clone()));
        self.credentials
            .check(worker, digest.as_deref(), metadata, what)
    }

    /// Refuses a report naming files outside the job's staging prefix: the
    /// commit moves what the reports name, so a forged one (any token holder
    /// can send one) must not point it at other files.
    fn check_written(&self, job: regatta_common::JobId, written: &str) -> Result<(), Status> {
        let Some(out) = self
            .driver
            .with_state(|s| s.job(job).and_then(|j| j.output.clone()))
        else {
            return Ok(());
        };
        let checked = if out.mode == crate::OutputMode::AddColumns {
            regatta_engine::io::lance::check_added_columns_report(written)
        } else {
            let tag = self.driver.jobs().tag(job);
            regatta_engine::io::reported::check_reported(&out.path, out.format, &tag, written)
        };
        checked.map_err(|e| {
            log::warn!("{job}: refused a task report: {e}");
            Status::invalid_argument(format!("{job}: {e}"))
        })
    }
}

/// A worker's order stream; when it ends (the worker died or disconnected) the
/// worker is declared lost at once, without waiting for its heartbeats to stop.
pub struct OrderStream {
    rx: mpsc::Receiver<WorkerOrder>,
    driver: Driver,
    worker: WorkerId,
}

impl Stream for OrderStream {
    type Item = Result<WorkerOrder, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|o| o.map(Ok))
    }
}

impl Drop for OrderStream {
    fn drop(&mut self) {
        let driver = self.driver.clone();
        let worker = self.worker;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                driver
                    .membership()
                    .lose(worker, "its connection to the driver closed")
                    .await
            });
        }
    }
}

/// Refuses a worker whose TLS client certificate (already checked against the
/// cluster's CA by the handshake) does not name the host of the address it is
/// reached at ([`advertised`]): with `security.verify_worker_certs` a node
/// joins only as the node its certificate was made for.
fn check_worker_certificate(
    certs: Option<&[regatta_proto::CertificateDer<'static>]>,
    address: &str,
) -> Result<(), Status> {
    let refused = |why: String| {
        Status::permission_denied(format!(
            "register: the worker at {address} is refused \
             (security.verify_worker_certs): {why}"
        ))
    };
    let (host, _port) = address
        .rsplit_once(':')
        .ok_or_else(|| refused(format!("{address:?} is not host:port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    regatta_proto::peer_names_cover(certs, host).map_err(refused)
}

/// The address other processes reach a worker's shuffle server at: what it
/// registered, except that a worker bound to every interface (`0.0.0.0:7701`,
/// `[::]:7701`) is reached at the address it called the driver from, as other
/// nodes would see it (dialled as given, `0.0.0.0` would reach each caller's
/// own machine).
fn advertised(flight_address: &str, peer: Option<std::net::SocketAddr>) -> String {
    match (flight_address.parse::<std::net::SocketAddr>(), peer) {
        (Ok(bound), Some(peer)) if bound.ip().is_unspecified() => {
            let address = std::net::SocketAddr::new(peer.ip(), bound.port()).to_string();
            log::info!("a worker bound to {flight_address} is reached at {address}");
            address
        }
        _ => flight_address.to_string(),
    }
}

#[tonic::async_trait]
impl WorkerControl for WorkerControlImpl {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let (certs, peer) = (request.peer_certs(), request.remote_addr());
        let (metadata, _, mut r) = request.into_parts();
        let address = advertised(&r.flight_address, peer);
        if self.driver.options().verify_worker_certs {
            check_worker_certificate(certs.as_deref().map(Vec::as_slice), &address)?;
        }
        let models = std::mem::take(&mut r.models);
        let previous = (r.previous_worker_id != 0).then_some(WorkerId(r.previous_worker_id));
        if let Some(previous) = previous {
            self.check_credential(previous, &metadata, "taking the id over")?;
        }
        let res = r
            .resources
            .ok_or_else(|| Status::invalid_argument("register: resources are missing"))?;
        // Used only if the worker joins anew: one that takes its id up again
        // keeps the credential it proved above.
        let issued = self.credentials.issue();
        if res.cpus == 0 {
            return Err(Status::invalid_argument(
                "register: a worker must offer at least one CPU",
            ));
        }
        if r.flight_address.is_empty() {
            return Err(Status::invalid_argument(
                "register: the worker's shuffle address is missing",
            ));
        }
        let spec = WorkerSpec {
            address,
            host: r.host,
            resources: Resources {
                cpus: f64::from(res.cpus),
                gpus: f64::from(res.gpus),
                memory: res.memory_bytes,
            },
            node_label: r.node_label,
            gpu_ids: r.gpu_ids,
            shuffle_root: r.shuffle_root,
            shuffle_token: r.shuffle_token,
            metrics_address: r.metrics_address,
            credential_digest: issued.digest,
        };
        let running: Vec<(TaskKey, u32)> =
            r.running.iter().map(|k| (task_key(k), k.attempt)).collect();
        self.driver
            .consensus()
            .taken_up()
            .await
            .map_err(unavailable)?;
        let (worker, registration) = self
            .driver
            .membership()
            .register(spec, previous, &running)
            .await
            .map_err(unavailable)?;
        self.driver.workers().set_models(worker, models);
        // Taken up again, the worker keeps the credential it proved; joined
        // (even under the number it had, from a driver that forgot it), it
        // gets the one whose digest its new record holds.
        let worker_secret = if registration == Registration::TakenUp {
            WorkerCredentials::presented(&metadata).to_string()
        } else {
            issued.secret
        };
        Ok(Response::new(RegisterResponse {
            worker_id: worker.0,
            heartbeat_interval_ms: self.driver.options().heartbeat_interval.as_millis() as u32,
            term: self.driver.term(),
            access: Some((&self.driver.options().access).into()),
            worker_secret,
        }))
    }

    type OrdersStream = OrderStream;

    async fn orders(
        &self,
        request: Request<OrdersRequest>,
    ) -> Result<Response<Self::OrdersStream>, Status> {
        let (metadata, _, ask) = request.into_parts();
        let worker = WorkerId(ask.worker_id);
        self.check_credential(worker, &metadata, "its orders")?;
        let rx = self.driver.membership().connect(worker).map_err(|_| {
            Status::not_found(format!(
                "{worker} is not registered (or was lost); register again"
            ))
        })?;
        Ok(Response::new(OrderStream {
            rx,
            driver: self.driver.clone(),
            worker,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let (metadata, _, h) = request.into_parts();
        self.check_credential(WorkerId(h.worker_id), &metadata, "a heartbeat")?;
        let known = self.driver.membership().heartbeat(
            WorkerId(h.worker_id),
            WorkerReport {
                model_builds: h.model_builds,
                running_tasks: h.running_tasks,
                actor_devices: h.actor_devices,
                usage: h.usage.unwrap_or_default(),
            },
        );
        Ok(Response::new(HeartbeatResponse { known }))
    }

    async fn report_task(
        &self,
        request: Request<TaskReport>,
    ) -> Result<Response<ReportResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        self.check_credential(WorkerId(r.worker_id), &metadata, "a task report")?;
        let key = r
            .key
            .ok_or_else(|| Status::invalid_argument("report: the task key is missing"))?;
        let task = task_key(&key);
        let worker = WorkerId(r.worker_id);
        if r.ok && !r.written.is_empty() {
            self.check_written(task.job, &r.written)?;
        }
        let cmd = if r.ok {
            Command::TaskFinished {
                task,
                worker,
                attempt: key.attempt,
                outputs: r
                    .outputs
                    .iter()
                    .map(|o| OutputStats {
                        partition: o.partition,
                        rows: o.rows,
                        bytes: o.bytes,
                    })
                    .collect(),
                spilled_bytes: r.spilled_bytes,
                written: r.written,
                operators: r.operators.iter().map(OperatorSummary::from).collect(),
                row_failures: regatta_engine::RowFailureCounts {
                    failed: r.failed_rows,
                    checked: r.checked_rows,
                },
            }
        } else {
            log::warn!("{task} failed on {worker}: {}", r.error);
            Command::TaskFailed {
                task,
                worker,
                attempt: key.attempt,
                class: r.failure_class().into(),
                error: r.error,
                lost_input: (r.lost_input_worker != 0).then_some(WorkerId(r.lost_input_worker)),
            }
        };
        // A report about an ended job or an older attempt changes nothing; a
        // report that was not committed (no quorum, deposed) is sent again.
        self.driver
            .consensus()
            .taken_up()
            .await
            .map_err(unavailable)?;
        if r.lost_input_worker != 0 {
            self.driver
                .membership()
                .input_unreachable(WorkerId(r.lost_input_worker))
                .await;
        }
        match self.driver.consensus().propose(cmd).await {
            Ok(_) => {
                if r.ok && r.failed_rows > 0 {
                    self.driver
                        .jobs()
                        .fail_over_budget(task.job, false)
                        .await
                        .map_err(unavailable)?;
                }
                if r.ok {
                    self.driver.clock().task_done(
                        task,
                        TaskTime {
                            task_nanos: r.task_nanos,
                            read_nanos: r.read_nanos,
                            write_nanos: r.write_nanos,
                        },
                    );
                }
                Ok(Response::new(ReportResponse {}))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn task_key(k: &regatta_proto::TaskKey) -> TaskKey {
    TaskKey {
        job: JobId(k.job_id),
        stage: StageId(u64::from(k.stage_id)),
        partition: k.partition,
    }
}

/// A failure the worker should retry, against whichever driver leads then.
fn unavailable(e: crate::SchedulerError) -> Status {
    Status::unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::advertised;

    #[test]
    fn a_worker_bound_to_every_interface_is_reached_where_it_called_from() {
        let peer = "10.0.0.2:53123".parse().ok();
        assert_eq!(advertised("0.0.0.0:7701", peer), "10.0.0.2:7701");
        let peer6 = "[fd00::2]:53123".parse().ok();
        assert_eq!(advertised("[::]:7701", peer6), "[fd00::2]:7701");
        // A specific address, a name, or no known caller: as registered.
        assert_eq!(advertised("10.0.0.3:7701", peer), "10.0.0.3:7701");
        assert_eq!(advertised("worker-3:7701", peer), "worker-3:7701");
        assert_eq!(advertised("0.0.0.0:7701", None), "0.0.0.0:7701");
    }
}
