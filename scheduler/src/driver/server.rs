//! Runs a driver: its gRPC services on one listener, and its loops.

use std::net::SocketAddr;
use std::time::Duration;

use regatta_proto::job_service_server::JobServiceServer;
use regatta_proto::worker_control_server::WorkerControlServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_stream::wrappers::TcpListenerStream;

use regatta_proto::TokenCheck;

use super::{Driver, DriverOptions, JobServiceImpl, Planner, WorkerControlImpl};
use crate::{Result, SchedulerError};

/// A running driver; dropping it stops the services and loops.
pub struct DriverHandle {
    pub address: SocketAddr,
    pub driver: Driver,
    tasks: JoinSet<()>,
}

impl DriverHandle {
    /// Binds `bind` (port 0 picks one) and serves until dropped.
    pub async fn start(bind: &str, options: DriverOptions, planner: Planner) -> Result<Self> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|e| SchedulerError::Plan(format!("driver cannot listen on {bind}: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| SchedulerError::Plan(format!("driver address: {e}")))?;
        let driver = Driver::new(options.clone());
        let check = TokenCheck::new(&options.token);
        let jobs = tonic::service::interceptor::InterceptedService::new(
            JobServiceServer::new(JobServiceImpl::new(driver.clone(), planner))
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            {
                let c = check.clone();
                move |r| c.check(r)
            },
        );
        let workers = WorkerControlServer::with_interceptor(
            WorkerControlImpl::new(driver.clone()),
            move |r| check.check(r),
        );
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &options.tls {
            server = server.tls_config(tls.server()).map_err(|e| {
                SchedulerError::Plan(format!("driver TLS (cluster.tls_cert/tls_key): {e}"))
            })?;
        }
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let served = server
                .http2_keepalive_interval(Some(Duration::from_secs(1)))
                .http2_keepalive_timeout(Some(Duration::from_secs(2)))
                .add_service(jobs)
                .add_service(workers)
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
            if let Err(e) = served {
                log::error!("driver server stopped: {e}");
            }
        });
        tasks.spawn(driver.clone().schedule_loop());
        let d = driver.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                d.check_heartbeats();
            }
        });
        log::info!("driver listening on {address}");
        Ok(Self {
            address,
            driver,
            tasks,
        })
    }

    /// Waits until the server stops (it runs until the process ends).
    pub async fn wait(mut self) {
        let _ = self.tasks.join_next().await;
    }
}
