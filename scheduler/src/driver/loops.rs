//! The driver's loops. Each waits on an event, never on a tick: the state's
//! changes (placement and job lifecycle), Raft's metrics (leadership), and
//! the earliest moment a worker may time out (heartbeats). Where the next
//! event is a point in time (a worker's timeout, a result's expiry) the wait
//! ends then.

use std::time::Duration;

use regatta_common::WorkerId;

use super::core::Driver;
use super::placement::schedule_round;

/// Places tasks and moves jobs along whenever the state changes, until the
/// driver is dropped; wakes by itself when a job's results expire.
pub async fn schedule_loop(driver: Driver) {
    loop {
        let changed = driver.consensus().state().wait_for_change();
        match driver.jobs().next_expiry() {
            Some(due) => {
                // Past its retention by a millisecond, not just before it.
                let _ = tokio::time::timeout(due + Duration::from_millis(1), changed).await;
            }
            None => changed.await,
        }
        if !driver.is_leader() {
            continue;
        }
        schedule_round(&driver).await;
        driver.jobs().advance().await;
    }
}

/// Declares lost the workers that fall silent past the timeout, waking when
/// the earliest of them may.
pub async fn heartbeat_loop(driver: Driver) {
    let timeout = driver.options().worker_timeout;
    loop {
        driver.workers().next_deadline(timeout).await;
        driver.membership().check_heartbeats().await;
    }
}

/// Follows this replica's leadership: on election, waits until every earlier
/// command is applied and gives each known worker a fresh timeout to come back;
/// when deposed, drops its worker streams so workers go find the new leader.
pub async fn leadership_loop(driver: Driver) {
    let Some(replica) = driver.consensus().replica().cloned() else {
        return;
    };
    let mut metrics = replica.raft().metrics();
    let mut fresh = false;
    loop {
        // A leader whose quorum acks lagged paused placement; it resumes as
        // soon as they are fresh again.
        let now_fresh = replica.is_leader();
        if now_fresh && !fresh {
            driver.consensus().state().wake();
        }
        fresh = now_fresh;
        // Leadership proper, not the quorum's freshness: a busy leader whose
        // acks lag keeps its workers (it only pauses scheduling meanwhile).
        let leads = replica.holds_leadership();
        let term = replica.term();
        let was = driver.consensus().taken_up_term();
        if leads && was != term {
            match replica.raft().ensure_linearizable().await {
                Ok(_) => {
                    let alive: Vec<WorkerId> = driver.with_state(|s| {
                        s.workers()
                            .filter(|(_, w)| w.alive)
                            .map(|(id, _)| *id)
                            .collect()
                    });
                    driver.workers().expect(alive);
                    driver.consensus().set_taken_up(term);
                    log::info!("driver {} leads in term {term}", replica.id());
                    driver.consensus().state().wake();
                }
                Err(e) => log::info!("driver {}: not leading after all: {e}", replica.id()),
            }
        } else if !leads && was != 0 {
            log::info!("driver {} no longer leads", replica.id());
            driver.consensus().set_taken_up(0);
            driver.workers().clear();
        }
        // Leadership lives in the metrics (state, current leader): every change
        // of it is a change of the metrics.
        if metrics.changed().await.is_err() {
            return;
        }
    }
}
