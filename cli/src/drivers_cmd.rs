//! `regatta drivers`: the driver replicas and their Raft membership.

use clap::{Args, Subcommand};

use crate::cluster_cmds::{driver_url, ClusterArgs};
use crate::{CliError, Result};

#[derive(Debug, Args)]
pub struct DriversArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(subcommand)]
    pub action: Option<DriversAction>,
}

#[derive(Debug, Subcommand)]
pub enum DriversAction {
    /// Every replica with its role, term and log position (the default).
    List,
    /// Add a replica (started with `regatta driver --join`) as a voter.
    Add { node_id: u64, address: String },
    /// Remove a replica from the voters.
    Remove { node_id: u64 },
}

/// `regatta drivers`: the driver replicas and their membership.
pub async fn run_drivers(args: DriversArgs) -> Result<()> {
    use regatta::proto::driver_replication_client::DriverReplicationClient;
    use regatta::proto::{AddDriverRequest, ListDriversRequest, RemoveDriverRequest};
    let cfg = args.cluster.load()?;
    let tls = cfg.tls().map_err(CliError::from)?;
    let tls = tls.map(|t| regatta::proto::client_trusting(&t.ca));
    // A malformed address is answered as the SDK answers it: unreachable.
    let drivers = regatta::proto::Drivers::new(
        regatta::proto::Drivers::split(&driver_url(&cfg)),
        &cfg.cluster.token,
        tls,
    )
    .map_err(|message| {
        CliError::Sdk(regatta::Error::Unreachable {
            address: driver_url(&cfg),
            message,
        })
    })?;
    let failed = |s: regatta::proto::Status| {
        CliError::Sdk(regatta::Error::Cluster {
            address: driver_url(&cfg),
            code: s.code(),
            message: s.message().to_string(),
        })
    };
    let listed = match args.action.unwrap_or(DriversAction::List) {
        DriversAction::List => drivers
            .call(|ch| async move {
                DriverReplicationClient::new(ch)
                    .list_drivers(ListDriversRequest {})
                    .await
            })
            .await
            .map_err(failed)?,
        DriversAction::Add { node_id, address } => drivers
            .call(|ch| {
                let address = address.clone();
                async move {
                    DriverReplicationClient::new(ch)
                        .add_driver(AddDriverRequest { node_id, address })
                        .await
                }
            })
            .await
            .map_err(failed)?,
        DriversAction::Remove { node_id } => drivers
            .call(|ch| async move {
                DriverReplicationClient::new(ch)
                    .remove_driver(RemoveDriverRequest { node_id })
                    .await
            })
            .await
            .map_err(failed)?,
    }
    .into_inner();
    println!(
        "{:<8} {:<22} {:<12} {:>6} {:>10} {:>10} {:<5} first_placed_ms",
        "driver", "address", "role", "term", "last_log", "applied", "voter"
    );
    for d in listed.drivers {
        println!(
            "{:<8} {:<22} {:<12} {:>6} {:>10} {:>10} {:<5} {}",
            format!("node-{}", d.node_id),
            d.address,
            d.role().word(),
            d.term,
            d.last_log_index,
            d.applied_index,
            if d.voter { "yes" } else { "no" },
            d.first_placement_unix_ms,
        );
    }
    Ok(())
}
