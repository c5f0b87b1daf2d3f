//! [`ActorSystem`]: the actix system that hosts a session's actors.

use std::future::Future;
use std::thread::JoinHandle;

use actix::{Arbiter, ArbiterHandle, System};

use crate::{ActorError, Result};

/// An actix system on a thread of its own. Model actors get a thread each (one-thread
/// sync arbiters); this system's thread routes their mail and runs pool housekeeping.
/// Dropping it stops the system and every task on it.
#[derive(Debug)]
pub struct ActorSystem {
    system: System,
    arbiter: ArbiterHandle,
    thread: Option<JoinHandle<()>>,
}

impl ActorSystem {
    /// Starts the system thread.
    pub fn start() -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("regatta-actors".into())
            .spawn(move || {
                let runner = System::new();
                let _ = tx.send((System::current(), Arbiter::current()));
                if let Err(e) = runner.run() {
                    log::error!("actor system stopped with an error: {e}");
                }
            })
            .map_err(|e| ActorError::System(format!("cannot start its thread: {e}")))?;
        let (system, arbiter) = rx
            .recv()
            .map_err(|_| ActorError::System("its thread exited while starting".into()))?;
        Ok(Self {
            system,
            arbiter,
            thread: Some(thread),
        })
    }

    /// Runs `future` on the system's thread.
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        if self.arbiter.spawn(future) {
            Ok(())
        } else {
            Err(ActorError::System("it has stopped".into()))
        }
    }
}

impl Drop for ActorSystem {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            // The last owner may be a task on the system's own thread: never join itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}
