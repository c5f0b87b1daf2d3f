//! Model actors and the resources they run on.
//!
//! This crate will host the actix actor pools that hold models (see the actor issue);
//! today it holds the part they stand on: a node's resource ledger, which grants
//! CPU/GPU/memory leases, gives GPU requests distinct devices, packs fractional GPU
//! requests onto one device, and refuses at once a request that can never fit.

mod error;
mod ledger;

pub use error::{ActorError, Result};
pub use ledger::{Lease, ResourceLedger};
