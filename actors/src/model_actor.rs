//! [`ModelActor`]: an actix actor on its own thread that holds one loaded model.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Handler, Message, SyncContext};
use arrow::array::ArrayRef;

use crate::model::{ActorContext, Model, ModelFactory};

/// Why an actor did not answer a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ActorFailure {
    /// The model returned an error; the actor is still usable.
    Failed(String),
    /// The model panicked; its state is suspect, so the actor must be replaced.
    Panicked(String),
}

/// Loads the model. Sent once, right after the actor starts.
pub(crate) struct Build;

impl Message for Build {
    type Result = Result<(), String>;
}

/// One batch of model input.
pub(crate) struct Infer(pub Vec<ArrayRef>);

/// The output column and the time spent inside the model.
pub(crate) type InferOutput = Result<(ArrayRef, Duration), ActorFailure>;

impl Message for Infer {
    type Result = InferOutput;
}

/// Runs in a one-thread `SyncArbiter`: blocking inference never touches an async
/// runtime, and the model is built on the thread that will use it.
pub(crate) struct ModelActor {
    factory: Arc<dyn ModelFactory>,
    ctx: ActorContext,
    model: Option<Box<dyn Model>>,
}

impl ModelActor {
    pub(crate) fn new(factory: Arc<dyn ModelFactory>, ctx: ActorContext) -> Self {
        Self {
            factory,
            ctx,
            model: None,
        }
    }
}

impl Actor for ModelActor {
    type Context = SyncContext<Self>;
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".into())
}

impl Handler<Build> for ModelActor {
    type Result = Result<(), String>;

    fn handle(&mut self, _msg: Build, _ctx: &mut Self::Context) -> Self::Result {
        let factory = self.factory.clone();
        let ctx = self.ctx.clone();
        match catch_unwind(AssertUnwindSafe(|| factory.build(&ctx))) {
            Ok(Ok(model)) => {
                self.model = Some(model);
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(p) => Err(format!("panicked: {}", panic_message(p))),
        }
    }
}

impl Handler<Infer> for ModelActor {
    type Result = InferOutput;

    fn handle(&mut self, msg: Infer, _ctx: &mut Self::Context) -> Self::Result {
        let Some(model) = self.model.as_mut() else {
            return Err(ActorFailure::Failed("the model was not built".into()));
        };
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| model.process(&msg.0))) {
            Ok(Ok(out)) => Ok((out, started.elapsed())),
            Ok(Err(e)) => Err(ActorFailure::Failed(e.to_string())),
            Err(p) => {
                // Drop the model now: nothing may use it after a panic.
                self.model = None;
                Err(ActorFailure::Panicked(panic_message(p)))
            }
        }
    }
}
