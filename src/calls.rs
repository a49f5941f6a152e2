//! Counting outbound calls per piece of work.
//!
//! The engine runs each child's create or update inside [`counted`]; the AWS
//! layer calls [`record`] once per request attempt (an SDK interceptor). The
//! engine then knows how many round trips each child needed and can weigh its
//! dependency graph with them: the longest chain of dependent AWS calls is the
//! least time an apply can take when every call costs the same latency.
//!
//! It sits at the crate root because neither layer should know the other: the
//! AWS layer knows nothing of children, the engine nothing of AWS.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

tokio::task_local! {
    static CALLS: Arc<AtomicU32>;
}

/// Count one outbound call against the innermost [`counted`] scope, if any.
pub fn record() {
    let _ = CALLS.try_with(|c| c.fetch_add(1, Ordering::Relaxed));
}

/// Run `fut`, returning its output and the number of calls it recorded.
/// The calls count towards the enclosing scope too.
pub async fn counted<F: Future>(fut: F) -> (F::Output, u32) {
    let counter = Arc::new(AtomicU32::new(0));
    let out = CALLS.scope(counter.clone(), fut).await;
    let n = counter.load(Ordering::Relaxed);
    let _ = CALLS.try_with(|outer| outer.fetch_add(n, Ordering::Relaxed));
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inner_scopes_count_towards_outer_ones() {
        record(); // outside any scope: ignored
        let ((inner, n_inner), n_outer) = counted(async {
            record();
            let inner = counted(async {
                record();
                record();
            })
            .await;
            record();
            inner
        })
        .await;
        assert_eq!(inner, ());
        assert_eq!(n_inner, 2);
        assert_eq!(n_outer, 4, "the inner scope's calls count in the outer one too");
    }

    #[tokio::test]
    async fn interleaved_scopes_do_not_mix() {
        let a = counted(async {
            for _ in 0..3 {
                record();
                tokio::task::yield_now().await;
            }
        });
        let b = counted(async {
            for _ in 0..5 {
                record();
                tokio::task::yield_now().await;
            }
        });
        let ((_, na), (_, nb)) = tokio::join!(a, b);
        assert_eq!((na, nb), (3, 5));
    }
}
