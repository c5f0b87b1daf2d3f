//! [`ActorPool`]: `min..max` actors of one model, grown while batches wait for an
//! actor, shrunk when idle, with retries and actor replacement.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use actix::ActorContext as _;
use actix::{Actor, Addr, AsyncContext, Context, SyncArbiter};
use arrow::array::{new_empty_array, new_null_array, Array, ArrayRef};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use regatta_engine::datafusion::error::DataFusionError;
use regatta_engine::functions::row_failures::{self, RowErrorClass, RowFailure};
use regatta_engine::functions::{ModelPool, ModelPoolStats, OnError};
use tokio::sync::oneshot;

use crate::actor_system::ActorSystem;
use crate::model::{ActorContext, ActorId, ModelFactory};
use crate::model_actor::{ActorFailure, Build, Infer, ModelActor};
use crate::{ActorError, Lease, NodeResources, PoolConfig, Result};

/// One model's actors. Cheap to share; lives as long as the session that made it, so
/// later queries reuse loaded models.
#[derive(Debug)]
pub struct ActorPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    name: String,
    factory: Arc<dyn ModelFactory>,
    output_type: DataType,
    config: PoolConfig,
    resources: Arc<NodeResources>,
    system: Arc<ActorSystem>,
    state: Mutex<PoolState>,
    next_actor: AtomicU64,
    builds: AtomicU64,
    batches: AtomicU64,
    failed_attempts: AtomicU64,
    replaced: AtomicU64,
    busy_nanos: AtomicU64,
    /// The GPU devices of the latest actors built, e.g. `m actor 2: GPU 5`.
    devices: Mutex<VecDeque<String>>,
}

/// How many actors' devices a pool remembers.
const DEVICES_KEPT: usize = 32;

impl std::fmt::Debug for PoolInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorPool")
            .field("model", &self.name)
            .field("config", &self.config)
            .finish()
    }
}

type Waiter = oneshot::Sender<Result<ActorSlot>>;

#[derive(Default)]
struct PoolState {
    /// Idle actors, the longest idle first.
    idle: VecDeque<ActorSlot>,
    /// Batches waiting for an actor, in arrival order.
    waiters: VecDeque<Waiter>,
    /// Actors alive or being started.
    live: usize,
    /// Actors waiting for resources or building their model.
    starting: usize,
    actors_peak: usize,
    queue_peak: usize,
}

/// An actor and the resources it holds; dropping it stops the actor (its thread ends
/// once its address is gone) and returns the resources.
struct ActorSlot {
    id: ActorId,
    addr: Addr<ModelActor>,
    lease: Option<Lease>,
    resources: Arc<NodeResources>,
    idle_since: Instant,
}

impl Drop for ActorSlot {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            self.resources.release(lease);
        }
    }
}

/// An actor lent to one batch; returned to the pool when dropped, unless discarded.
struct Lent {
    slot: Option<ActorSlot>,
    pool: Arc<PoolInner>,
}

impl Lent {
    fn discard(mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.discard(slot);
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.pool.checkin(slot);
        }
    }
}

impl ActorPool {
    /// A pool for `factory`'s model on `system`, leasing from `resources`. Fails at
    /// once if the configuration is invalid or one actor's request can never fit.
    pub fn new(
        name: impl Into<String>,
        factory: Arc<dyn ModelFactory>,
        config: PoolConfig,
        resources: Arc<NodeResources>,
        system: Arc<ActorSystem>,
    ) -> Result<Arc<Self>> {
        let name = name.into();
        config.validate(&name)?;
        resources.check(config.resources)?;
        let inner = Arc::new(PoolInner {
            output_type: factory.output_type(),
            name,
            factory,
            config,
            resources,
            system,
            state: Mutex::new(PoolState::default()),
            next_actor: AtomicU64::new(1),
            builds: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            devices: Mutex::new(VecDeque::new()),
        });
        let every = (inner.config.idle_timeout / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let reaper = IdleReaper {
            pool: Arc::downgrade(&inner),
            every,
        };
        inner.system.spawn(async move {
            reaper.start();
        })?;
        Ok(Arc::new(Self { inner }))
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// The GPU devices of its latest actors, e.g. `m actor 2: GPU 5`.
    pub fn actor_devices(&self) -> Vec<String> {
        let kept = self.inner.devices.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().cloned().collect()
    }
}

impl PoolInner {
    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stats(&self) -> ModelPoolStats {
        let st = self.state();
        ModelPoolStats {
            actors: st.live - st.starting,
            actors_peak: st.actors_peak,
            queue_depth: st.waiters.len(),
            queue_depth_peak: st.queue_peak,
            builds: self.builds.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            replaced_actors: self.replaced.load(Ordering::Relaxed),
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
        }
    }

    async fn checkout(self: &Arc<Self>) -> Result<Lent> {
        let rx = {
            let mut st = self.state();
            self.ensure_min(&mut st);
            // The most recently used actor: the others stay idle long enough to be reaped.
            if let Some(slot) = st.idle.pop_back() {
                return Ok(Lent {
                    slot: Some(slot),
                    pool: self.clone(),
                });
            }
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            st.queue_peak = st.queue_peak.max(st.waiters.len());
            self.grow(&mut st);
            rx
        };
        let slot = rx
            .await
            .map_err(|_| ActorError::System(format!("model {}: the pool stopped", self.name)))??;
        Ok(Lent {
            slot: Some(slot),
            pool: self.clone(),
        })
    }

    /// Starts an actor for each waiting batch that no starting actor will serve.
    fn grow(self: &Arc<Self>, st: &mut PoolState) {
        while st.waiters.len() > st.starting && st.live < self.config.max_actors {
            self.start_one(st);
        }
    }

    fn ensure_min(self: &Arc<Self>, st: &mut PoolState) {
        while st.live < self.config.min_actors {
            self.start_one(st);
        }
    }

    fn start_one(self: &Arc<Self>, st: &mut PoolState) {
        st.live += 1;
        st.starting += 1;
        let me = self.clone();
        let spawned = self.system.spawn(async move {
            let result = me.start_actor().await;
            me.started(result);
        });
        if let Err(e) = spawned {
            st.live -= 1;
            st.starting -= 1;
            fail_waiters(st, &e);
        }
    }

    /// Leases resources (waiting if others hold them), starts the actor's thread and
    /// builds the model there. Runs on the actor system's thread.
    async fn start_actor(self: &Arc<Self>) -> Result<ActorSlot> {
        let lease = self.resources.acquire(self.config.resources).await?;
        let id = ActorId(self.next_actor.fetch_add(1, Ordering::Relaxed));
        let ctx = ActorContext {
            model: self.name.clone(),
            actor: id,
            gpus: lease.gpus.iter().map(|(d, _)| *d).collect(),
            gpu_ids: lease
                .gpus
                .iter()
                .map(|(d, _)| self.resources.gpu_id(*d))
                .collect(),
            cpus: lease.request.cpus,
        };
        let devices = ctx.cuda_visible_devices();
        let factory = self.factory.clone();
        let addr = SyncArbiter::start(1, move || ModelActor::new(factory.clone(), ctx.clone()));
        let slot = ActorSlot {
            id,
            addr,
            lease: Some(lease),
            resources: self.resources.clone(),
            idle_since: Instant::now(),
        };
        let build_error = |message: String| ActorError::Build {
            model: self.name.clone(),
            actor: id.0,
            message,
        };
        match slot.addr.send(Build).await {
            Ok(Ok(())) => {
                self.builds.fetch_add(1, Ordering::Relaxed);
                log::debug!("model {}: actor {id} built", self.name);
                if !devices.is_empty() {
                    log::info!("model {}: actor {id} holds GPU {devices}", self.name);
                    let mut kept = self.devices.lock().unwrap_or_else(|p| p.into_inner());
                    if kept.len() == DEVICES_KEPT {
                        kept.pop_front();
                    }
                    kept.push_back(format!("{} actor {id}: GPU {devices}", self.name));
                }
                Ok(slot)
            }
            Ok(Err(message)) => Err(build_error(message)),
            Err(e) => Err(build_error(format!(
                "the actor stopped while building: {e}"
            ))),
        }
    }

    fn started(self: &Arc<Self>, result: Result<ActorSlot>) {
        let mut st = self.state();
        st.starting -= 1;
        match result {
            Ok(slot) => {
                st.actors_peak = st.actors_peak.max(st.live - st.starting);
                hand_over(&mut st, slot);
            }
            Err(e) => {
                st.live -= 1;
                log::warn!("{e}");
                // Live actors will serve the waiting batches; with none, they fail.
                if st.live == 0 {
                    fail_waiters(&mut st, &e);
                }
            }
        }
    }

    fn checkin(&self, slot: ActorSlot) {
        let mut st = self.state();
        hand_over(&mut st, slot);
    }

    /// Stops an actor whose model can no longer be trusted and starts another if
    /// batches are waiting.
    fn discard(self: &Arc<Self>, slot: ActorSlot) {
        log::warn!("model {}: replacing actor {}", self.name, slot.id);
        let mut st = self.state();
        drop(slot);
        st.live -= 1;
        self.replaced.fetch_add(1, Ordering::Relaxed);
        self.grow(&mut st);
    }

    /// Stops actors idle longer than the timeout, keeping `min_actors`.
    fn reap_idle(&self) {
        let mut st = self.state();
        while st.live > self.config.min_actors
            && st
                .idle
                .front()
                .is_some_and(|s| s.idle_since.elapsed() >= self.config.idle_timeout)
        {
            if let Some(slot) = st.idle.pop_front() {
                log::debug!("model {}: actor {} idle, stopping it", self.name, slot.id);
                drop(slot);
                st.live -= 1;
            }
        }
    }

    async fn run_batch(self: &Arc<Self>, inputs: Vec<ArrayRef>, rows: usize) -> Result<ArrayRef> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let lent = self.checkout().await?;
            let (id, outcome) = match &lent.slot {
                Some(slot) => (slot.id, slot.addr.send(Infer(inputs.clone())).await),
                None => return Err(ActorError::System("lent an empty actor slot".into())),
            };
            let cause = match outcome {
                Ok(Ok((out, busy))) => {
                    self.busy_nanos
                        .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
                    match self.check_output(&out, rows) {
                        Ok(()) => {
                            self.batches.fetch_add(1, Ordering::Relaxed);
                            return Ok(out);
                        }
                        Err(msg) => msg,
                    }
                }
                Ok(Err(ActorFailure::Failed(msg))) => msg,
                Ok(Err(ActorFailure::Panicked(msg))) => {
                    lent.discard();
                    format!("actor {id} panicked: {msg}")
                }
                Err(e) => {
                    lent.discard();
                    format!("actor {id} was lost: {e}")
                }
            };
            self.failed_attempts.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "model {}: batch of {rows} rows failed (attempt {attempts}): {cause}",
                self.name
            );
            if attempts > self.config.max_retries {
                let failed = ActorError::BatchFailed {
                    model: self.name.clone(),
                    rows,
                    attempts,
                    max_retries: self.config.max_retries,
                    cause,
                };
                return match self.config.on_error {
                    OnError::Null => Ok(new_null_array(&self.output_type, rows)),
                    OnError::Raise => Err(failed),
                    // Every row of the batch is given up on; the morsel
                    // operator drops (and records) them.
                    OnError::Skip | OnError::Record => {
                        let message = failed.to_string();
                        for row in 0..rows {
                            let reported = row_failures::report(RowFailure {
                                function: "model",
                                row,
                                source: None,
                                class: RowErrorClass::Model,
                                message: message.clone(),
                                record: self.config.on_error == OnError::Record,
                            });
                            if reported.is_err() {
                                return Err(failed);
                            }
                        }
                        Ok(new_null_array(&self.output_type, rows))
                    }
                };
            }
        }
    }

    fn check_output(&self, out: &ArrayRef, rows: usize) -> std::result::Result<(), String> {
        if out.len() != rows {
            return Err(format!("returned {} rows for {rows}", out.len()));
        }
        if out.data_type() != &self.output_type {
            return Err(format!(
                "returned {} instead of its declared {}",
                out.data_type(),
                self.output_type
            ));
        }
        Ok(())
    }
}

/// Gives `slot` to the first batch still waiting, or makes it idle.
fn hand_over(st: &mut PoolState, mut slot: ActorSlot) {
    while let Some(w) = st.waiters.pop_front() {
        match w.send(Ok(slot)) {
            Ok(()) => return,
            // That batch was cancelled: try the next.
            Err(Ok(back)) => slot = back,
            Err(Err(_)) => return,
        }
    }
    slot.idle_since = Instant::now();
    st.idle.push_back(slot);
}

fn fail_waiters(st: &mut PoolState, e: &ActorError) {
    for w in st.waiters.drain(..) {
        let _ = w.send(Err(e.clone()));
    }
}

/// Stops idle actors of one pool on a timer; ends with the pool.
struct IdleReaper {
    pool: Weak<PoolInner>,
    every: Duration,
}

impl Actor for IdleReaper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.every, |act, ctx| match act.pool.upgrade() {
            Some(pool) => pool.reap_idle(),
            None => ctx.stop(),
        });
    }
}

#[async_trait]
impl ModelPool for ActorPool {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn output_type(&self) -> DataType {
        self.inner.output_type.clone()
    }

    fn batch_size(&self) -> usize {
        self.inner.config.batch_size
    }

    fn max_actors(&self) -> usize {
        self.inner.config.max_actors
    }

    async fn infer(
        &self,
        inputs: Vec<ArrayRef>,
        rows: usize,
    ) -> std::result::Result<ArrayRef, DataFusionError> {
        let external = |e: ActorError| DataFusionError::External(Box::new(e));
        if rows == 0 {
            return Ok(new_empty_array(&self.inner.output_type));
        }
        let size = self.inner.config.batch_size;
        let batches = (0..rows).step_by(size).map(|start| {
            let len = size.min(rows - start);
            let slice = inputs.iter().map(|a| a.slice(start, len)).collect();
            self.inner.run_batch(slice, len)
        });
        let outs = futures::future::try_join_all(batches)
            .await
            .map_err(external)?;
        if outs.len() == 1 {
            return Ok(outs
                .into_iter()
                .next()
                .unwrap_or_else(|| new_empty_array(&self.inner.output_type)));
        }
        let refs: Vec<&dyn Array> = outs.iter().map(|a| a.as_ref()).collect();
        arrow::compute::concat(&refs).map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
    }

    fn stats(&self) -> ModelPoolStats {
        self.inner.stats()
    }
}
