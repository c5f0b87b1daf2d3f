//! [`SharedState`]: the driver state as the services read it and as commands
//! (local or replicated) change it, with wake-ups for whoever waits on changes.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::{watch, Notify};

use crate::{Command, DriverState, Refusal, Result};

pub struct SharedState {
    state: Mutex<DriverState>,
    /// Counts applied commands, so watchers wake on every change.
    changes: watch::Sender<u64>,
    /// Wakes the scheduling loop.
    wake: Notify,
}

impl SharedState {
    pub fn new(state: DriverState) -> Self {
        Self {
            state: Mutex::new(state),
            changes: watch::Sender::new(0),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DriverState> {
        // Commands apply whole or not at all, so a poisoned lock holds consistent data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.wake.notify_one();
        self.changes.send_modify(|n| *n += 1);
    }

    /// Applies one command.
    pub fn apply(&self, cmd: &Command) -> Result<()> {
        let applied = self.lock().apply(cmd);
        self.changed();
        Ok(applied?)
    }

    /// Applies a command, saying for each command in it (a batch has several)
    /// why it was refused, `None` where it was applied.
    pub fn apply_all(&self, cmd: &Command) -> Vec<Option<Refusal>> {
        let outcome = {
            let mut s = self.lock();
            match cmd {
                Command::Batch(cmds) => s.apply_batch(cmds),
                one => vec![s.apply(one).err()],
            }
        };
        self.changed();
        outcome
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&DriverState) -> R) -> R {
        f(&self.lock())
    }

    /// Replaces the whole state (a snapshot was installed).
    pub fn replace(&self, state: DriverState) {
        *self.lock() = state;
        self.changed();
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub async fn wait_for_change(&self) {
        self.wake.notified().await
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
