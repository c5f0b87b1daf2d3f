//! The gRPC JobService: submit, follow, cancel and fetch jobs.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use regatta_common::{JobId, RequestId};
use regatta_proto::job_service_server::JobService;
use regatta_proto::{
    JobInfo, JobRequest, JobStatus as ProtoStatus, ListJobsRequest, ListJobsResponse,
    ListWorkersRequest, ListWorkersResponse, ResultLocationsResponse, SubmitRequest,
};
use tonic::{Request, Response, Status};

use super::{Driver, Planner};

type BoxedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Serves clients.
#[derive(Clone)]
pub struct JobServiceImpl {
    driver: Driver,
    planner: Planner,
}

impl JobServiceImpl {
    pub fn new(driver: Driver, planner: Planner) -> Self {
        Self { driver, planner }
    }

    fn info(&self, job: u64) -> Result<JobInfo, Status> {
        super::job_info(&self.driver, JobId(job))
            .ok_or_else(|| Status::not_found(format!("job-{job} does not exist")))
    }
}

#[tonic::async_trait]
impl JobService for JobServiceImpl {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<JobInfo>, Status> {
        let request = request.into_inner();
        // Every submission has an identity before it is planned: the client's,
        // else one chosen here and replicated with the job.
        let request_id = if request.request_id.is_empty() {
            RequestId::generate()
        } else {
            RequestId::parse(&request.request_id)
                .map_err(|e| Status::invalid_argument(e.to_string()))?
        };
        // A retried submission gets the job its first try started.
        let accepted = |d: &Driver| d.with_state(|s| s.job_for_request(&request_id));
        if let Some(first) = accepted(&self.driver) {
            log::info!("request {request_id} is {first} already");
            return Ok(Response::new(self.info(first.0)?));
        }
        let job = self.driver.jobs().new_id();
        let cpus: f64 = self.driver.with_state(|s| {
            s.workers()
                .filter(|(_, w)| w.alive)
                .map(|(_, w)| w.spec.resources.cpus)
                .sum()
        });
        if cpus <= 0.0 {
            return Err(Status::unavailable(
                "no workers have registered with this driver yet; start `regatta worker`",
            ));
        }
        let planning = std::time::Instant::now();
        let planned = self
            .planner
            .plan(
                (job, &request_id),
                &request,
                cpus as usize,
                self.driver.options(),
            )
            .await
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // Every worker runs every stage's tasks: one without a model the job
        // calls would fail them, so the job is refused now, naming both.
        let alive: Vec<(regatta_common::WorkerId, String)> = self.driver.with_state(|s| {
            s.workers()
                .filter(|(_, w)| w.alive)
                .map(|(id, w)| (*id, w.spec.host.clone()))
                .collect()
        });
        if let Some((model, worker)) = self
            .driver
            .workers()
            .lacking_model(&planned.models, alive.iter().map(|(id, _)| *id))
        {
            let host = alive
                .iter()
                .find(|(id, _)| *id == worker)
                .map_or("", |(_, h)| h.as_str());
            return Err(Status::failed_precondition(format!(
                "model {model:?}: {worker} on {host} does not have it; on that node run \
                 `regatta models pull {model}` or give its cluster file [models.{model}], \
                 then restart the worker"
            )));
        }
        let cmd = planned.command;
        // Acknowledged only once committed: a job the client was told about
        // survives the leader.
        if let Err(e) = self.driver.jobs().submit(cmd, planning.elapsed()).await {
            // Two tries of one request raced and the other one won.
            if let Some(first) = accepted(&self.driver) {
                return Ok(Response::new(self.info(first.0)?));
            }
            return Err(e.into());
        }
        log::info!("{job} submitted");
        Ok(Response::new(self.info(job.0)?))
    }

    async fn get_job(&self, request: Request<JobRequest>) -> Result<Response<JobInfo>, Status> {
        Ok(Response::new(self.info(request.into_inner().job_id)?))
    }

    async fn list_jobs(
        &self,
        _request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        Ok(Response::new(ListJobsResponse {
            jobs: super::jobs_info(&self.driver),
        }))
    }

    async fn cancel_job(&self, request: Request<JobRequest>) -> Result<Response<JobInfo>, Status> {
        let id = request.into_inner().job_id;
        self.info(id)?;
        self.driver.jobs().cancel(JobId(id)).await?;
        Ok(Response::new(self.info(id)?))
    }

    type WatchJobStream = BoxedStream<JobInfo>;

    async fn watch_job(
        &self,
        request: Request<JobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = request.into_inner().job_id;
        self.info(id)?;
        let driver = self.driver.clone();
        let changes = driver.changes();
        let stream = futures::stream::unfold(
            (driver, changes, None::<JobInfo>, false),
            move |(driver, mut changes, last, done)| async move {
                if done {
                    return None;
                }
                loop {
                    if !driver.is_leader() {
                        // Ends the watch; the client picks it up at the new leader.
                        let gone = Status::unavailable("this driver no longer leads");
                        return Some((Err(gone), (driver, changes, last, true)));
                    }
                    changes.mark_unchanged();
                    let info = super::job_info(&driver, JobId(id))?;
                    let changed = last.as_ref().is_none_or(|l| {
                        let mut a = l.clone();
                        a.elapsed_seconds = info.elapsed_seconds;
                        a != info
                    });
                    if changed {
                        let terminal = info.status() != ProtoStatus::Running;
                        return Some((Ok(info.clone()), (driver, changes, Some(info), terminal)));
                    }
                    // The next change, or a second for the elapsed time's sake.
                    let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn result_locations(
        &self,
        request: Request<JobRequest>,
    ) -> Result<Response<ResultLocationsResponse>, Status> {
        let id = request.into_inner().job_id;
        let info = self.info(id)?;
        let locations = super::result_locations(&self.driver, JobId(id))
            .ok_or_else(|| Status::not_found(format!("job-{id} does not exist")))?;
        Ok(Response::new(ResultLocationsResponse {
            job: Some(info),
            stage_id: locations.stage.0 as u32,
            partitions: locations.partitions,
            done: locations.done,
        }))
    }

    async fn delete_job(&self, request: Request<JobRequest>) -> Result<Response<JobInfo>, Status> {
        let id = request.into_inner().job_id;
        self.info(id)?;
        self.driver.jobs().delete(JobId(id)).await?;
        Ok(Response::new(self.info(id)?))
    }

    async fn list_workers(
        &self,
        _request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        let workers = super::workers_info(&self.driver);
        Ok(Response::new(ListWorkersResponse { workers }))
    }
}
