//! A spawned task owned by a value: dropping the value aborts the task.

/// Owns a spawned task and aborts it when dropped, so a task never outlives
/// whatever started it (a caller that went away, a listener, a job's relay).
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// The owned task's handle, to await its end.
    pub fn handle(&mut self) -> &mut tokio::task::JoinHandle<T> {
        &mut self.0
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::AbortOnDrop;

    #[tokio::test]
    async fn dropping_the_owner_aborts_the_task() {
        let (_keep, mut never) = tokio::sync::oneshot::channel::<()>();
        let owner = AbortOnDrop(tokio::spawn(async move {
            let _ = (&mut never).await;
        }));
        let abort = owner.0.abort_handle();
        assert!(!abort.is_finished());
        drop(owner);
        // Aborting is asynchronous: the runtime finishes the task on its next poll.
        while !abort.is_finished() {
            tokio::task::yield_now().await;
        }
    }
}
