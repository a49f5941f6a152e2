//! Polling with a deadline and progress logs, for waits the SDK has no waiter for
//! (and to log progress at INFO while waiting).

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub enum Poll<T> {
    Done(T),
    Pending(String),
}

#[derive(Debug)]
pub enum WaitError<E> {
    Timeout { waited: Duration, last: String },
    Cancelled,
    Failed(E),
}

/// Call `check` until it reports `Done`, an error, the deadline passes or the
/// token is cancelled. Backs off from `first` doubling to `max` between polls.
pub async fn until<T, E, F, Fut>(what: &str, timeout: Duration, cancel: &CancellationToken, first: Duration, max: Duration, mut check: F) -> Result<T, WaitError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
{
    let start = Instant::now();
    let mut delay = first;
    let mut last_log = Instant::now();
    loop {
        match check().await {
            Ok(Poll::Done(v)) => return Ok(v),
            Ok(Poll::Pending(status)) => {
                if start.elapsed() >= timeout {
                    return Err(WaitError::Timeout { waited: start.elapsed(), last: status });
                }
                if last_log.elapsed() >= Duration::from_secs(5) || start.elapsed() < delay {
                    tracing::info!(target: "cxflow::aws::wait", waiting_for = what, status = status.as_str(), elapsed_s = start.elapsed().as_secs(), "still waiting");
                    last_log = Instant::now();
                }
            }
            Err(e) => return Err(WaitError::Failed(e)),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Err(WaitError::Cancelled),
        }
        delay = (delay * 2).min(max);
    }
}
