//! Runs a driver: its gRPC services on one listener, and its loops.

use std::net::SocketAddr;
use std::time::Duration;

use regatta_proto::job_service_server::JobServiceServer;
use regatta_proto::worker_control_server::WorkerControlServer;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use regatta_proto::TokenCheck;

use regatta_proto::driver_replication_server::DriverReplicationServer;

use super::{
    Driver, DriverOptions, JobServiceImpl, Planner, ReplicationOptions, WorkerControlImpl,
};
use crate::launcher::{LaunchContext, WorkerLauncher};
use crate::raft::{Replica, ReplicaOptions, ReplicationService};
use crate::{DriverState, SharedState};
use crate::{Result, SchedulerError};
use std::sync::Arc;

/// A running driver; dropping it stops the services and loops.
pub struct DriverHandle {
    pub address: SocketAddr,
    pub driver: Driver,
    /// The dashboard and `/metrics`, when served.
    pub dashboard: Option<regatta_proto::HttpServer>,
    tasks: JoinSet<()>,
    launcher: Option<Arc<dyn WorkerLauncher>>,
}

impl DriverHandle {
    /// Binds `bind` (port 0 picks one) and serves until dropped.
    pub async fn start(bind: &str, options: DriverOptions, planner: Planner) -> Result<Self> {
        // Whatever set the address (the file, `--bind`, the environment, a
        // launcher), beyond loopback needs the token: checked before listening.
        regatta_common::check_listener("driver", bind, "driver.bind", &options.token)
            .map_err(|e| SchedulerError::Refused(e.to_string()))?;
        if let Some(d) = &options.dashboard {
            regatta_common::check_listener(
                "dashboard",
                &d.address,
                "driver.dashboard_bind",
                &options.token,
            )
            .map_err(|e| SchedulerError::Refused(e.to_string()))?;
        }
        let listen_error = |source| SchedulerError::Listen {
            what: "driver",
            address: bind.to_string(),
            setting: "driver.bind",
            source,
        };
        let listener = TcpListener::bind(bind).await.map_err(listen_error)?;
        let address = listener.local_addr().map_err(listen_error)?;
        let (driver, replica) = match &options.replication {
            None => (Driver::new(options.clone()), None),
            Some(r) => {
                let replica = start_replica(r, &options, address).await?;
                let shared = replica.1;
                let replica = replica.0;
                (
                    Driver::replicated(options.clone(), shared, replica.clone()),
                    Some(replica),
                )
            }
        };
        let check = TokenCheck::new(&options.token);
        let jobs = tonic::service::interceptor::InterceptedService::new(
            JobServiceServer::new(JobServiceImpl::new(driver.clone(), planner))
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
            leader_only(check.clone(), driver.clone()),
        );
        let workers = WorkerControlServer::with_interceptor(
            WorkerControlImpl::new(driver.clone()),
            leader_only(check.clone(), driver.clone()),
        );
        let replication = replica.clone().map(|r| {
            tonic::service::interceptor::InterceptedService::new(
                DriverReplicationServer::new(ReplicationService::new(r))
                    .max_decoding_message_size(256 << 20)
                    .max_encoding_message_size(256 << 20),
                move |req| check.check(req),
            )
        });
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = &options.tls {
            let config = if options.verify_worker_certs {
                tls.server_asking_clients()
            } else {
                tls.server()
            };
            server = server.tls_config(config).map_err(|e| SchedulerError::Tls {
                what: "driver",
                message: e.to_string(),
            })?;
        }
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let served = server
                .http2_keepalive_interval(Some(Duration::from_secs(1)))
                .http2_keepalive_timeout(Some(Duration::from_secs(2)))
                .add_service(jobs)
                .add_service(workers)
                .add_optional_service(replication)
                .serve_with_incoming(regatta_proto::incoming(listener))
                .await;
            if let Err(e) = served {
                log::error!("driver server stopped: {e}");
            }
        });
        if let Some(replica) = &replica {
            // Peers that refuse this replica stop it before it takes any part.
            replica.check_peers().await?;
            replica.initialize_if_new().await?;
            tasks.spawn(super::loops::leadership_loop(driver.clone()));
        }
        tasks.spawn(super::loops::schedule_loop(driver.clone()));
        tasks.spawn(super::loops::heartbeat_loop(driver.clone()));
        log::info!("driver listening on {address}");
        let dashboard = match &options.dashboard {
            Some(d) => Some(start_dashboard(d, &options, driver.clone()).await?),
            None => None,
        };
        if let Some(launcher) = &options.launcher {
            let host = if options.control_host.is_empty() {
                address.ip().to_string()
            } else {
                options.control_host.clone()
            };
            let ctx = LaunchContext::new(
                format!("{host}:{}", address.port()),
                options.token.clone(),
                driver.clone(),
            );
            log::info!("launching workers: {}", launcher.describe());
            if let Err(e) = launcher.start(ctx).await {
                // Whatever it got running goes with it.
                if let Err(stop) = launcher.stop().await {
                    log::warn!("stopping the workers after a failed launch: {stop}");
                }
                return Err(e);
            }
        }
        Ok(Self {
            address,
            driver,
            dashboard,
            tasks,
            launcher: options.launcher.clone(),
        })
    }

    /// Waits until the server stops (it runs until the process ends).
    pub async fn wait(&mut self) {
        let _ = self.tasks.join_next().await;
    }

    /// Stops the launched workers and cleans up after them, then the services.
    pub async fn shutdown(mut self) -> Result<()> {
        let stopped = match self.launcher.take() {
            Some(l) => l.stop().await,
            None => Ok(()),
        };
        self.tasks.shutdown().await;
        stopped
    }
}

/// Checks the token, then that this driver leads: clients and workers talk only
/// to the leader, and a follower's refusal names it.
fn leader_only(
    check: TokenCheck,
    driver: Driver,
) -> impl FnMut(tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> + Clone
{
    move |r| {
        let r = check.check(r)?;
        driver.consensus().require_leader()?;
        Ok(r)
    }
}

/// Serves the dashboard on `d`, on a free port when the default one is taken.
async fn start_dashboard(
    d: &super::DashboardBind,
    options: &DriverOptions,
    driver: Driver,
) -> Result<regatta_proto::HttpServer> {
    let listener = match TcpListener::bind(&d.address).await {
        Ok(l) => l,
        Err(e) if d.any_port_if_taken && e.kind() == std::io::ErrorKind::AddrInUse => {
            let host = d.address.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            log::info!("{} is taken; the dashboard takes a free port", d.address);
            TcpListener::bind(format!("{host}:0"))
                .await
                .map_err(|source| SchedulerError::Listen {
                    what: "dashboard",
                    address: format!("{host}:0"),
                    setting: "driver.dashboard_bind",
                    source,
                })?
        }
        Err(source) => {
            return Err(SchedulerError::Listen {
                what: "dashboard",
                address: d.address.clone(),
                setting: "driver.dashboard_bind",
                source,
            })
        }
    };
    let server = regatta_proto::HttpServer::serve(
        "dashboard",
        listener,
        &options.token,
        options.tls.as_ref(),
        crate::dashboard::router(driver),
    )
    .map_err(SchedulerError::Plan)?;
    log::info!("dashboard at {}/", server.url());
    Ok(server)
}

/// Opens this driver's Raft replica (its state restored from disk).
async fn start_replica(
    r: &ReplicationOptions,
    options: &DriverOptions,
    bound: SocketAddr,
) -> Result<(Replica, Arc<SharedState>)> {
    let address = if !r.advertise.is_empty() {
        r.advertise.clone()
    } else {
        r.members
            .get(&r.node_id)
            .cloned()
            .unwrap_or_else(|| bound.to_string())
    };
    if !r.members.is_empty() && !r.members.contains_key(&r.node_id) {
        return Err(SchedulerError::Refused(format!(
            "driver {} is not among the first members {:?}; start it with members empty \
             and add it with `regatta drivers add`",
            r.node_id,
            r.members.keys().collect::<Vec<_>>()
        )));
    }
    let shared = Arc::new(SharedState::new(
        DriverState::new(options.max_task_failures).with_history(options.history_jobs),
    ));
    let replica = Replica::start(
        ReplicaOptions {
            node_id: r.node_id,
            address,
            members: r.members.clone(),
            data_dir: r.data_dir.clone(),
            cluster_id: r.cluster_id.clone(),
            token: options.token.clone(),
            tls: options.tls.as_ref().map(|t| t.client()),
            heartbeat: r.heartbeat,
            #[cfg(feature = "link-cuts")]
            cuts: r.cuts.clone(),
        },
        shared.clone(),
    )
    .await?;
    Ok((replica, shared))
}
