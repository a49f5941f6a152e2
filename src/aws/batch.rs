//! Coalescing reads across concurrent Terraform operations.
//!
//! Terraform refreshes up to `-parallelism` resources at once through one
//! provider process, and every composite reads its children concurrently, so
//! reads of the same kind arrive within a few milliseconds of each other.
//! A [`Coalescer`] gathers the keys asked for in one group (the ECS cluster of
//! a DescribeServices call, say) during a short window and answers them all
//! from one batched call: the first caller of a group waits the window (or
//! until the batch is full), takes the keys gathered so far and fetches them;
//! the others wait for its answer.
//!
//! One call per group is in flight at a time: a batch whose window has
//! passed while the group's previous call is still out stays open, and keys
//! keep joining it until that call returns. So under a steady stream of reads
//! (Terraform starts the next resource as each one finishes, so refreshes do
//! not arrive in waves) batches grow with the load instead of with the
//! window, and a lone read pays only the window.
//!
//! A batch never changes what a read returns, only how many calls it takes:
//! a key the batched call does not return is absent (`None`), as a single
//! read would report it; an error of the batched call is every member's
//! error. A caller whose leader went away (its operation was cancelled)
//! fetches its own key alone.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::AwsError;

/// The answer of one batched call: every key it found.
type Answer<K, V> = Arc<Result<HashMap<K, V>, AwsError>>;

struct Batch<K, V> {
    id: u64,
    keys: Mutex<Vec<K>>,
    full: Notify,
    answer: watch::Receiver<Option<Answer<K, V>>>,
}

/// Gathers keys per group for `window`, at most `max` per call.
pub struct Coalescer<K, V> {
    window: Duration,
    max: usize,
    open: Mutex<HashMap<String, Arc<Batch<K, V>>>>,
    /// Held by the group's call in flight.
    flight: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// Takes the open batch out of the map when the leader leaves, answered or not.
struct Close<'a, K, V> {
    c: &'a Coalescer<K, V>,
    group: &'a str,
    id: u64,
}

impl<K, V> Drop for Close<'_, K, V> {
    fn drop(&mut self) {
        let mut open = self.c.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.get(self.group).is_some_and(|b| b.id == self.id) {
            open.remove(self.group);
        }
    }
}

enum Role<K, V> {
    Leader(Arc<Batch<K, V>>, watch::Sender<Option<Answer<K, V>>>),
    Member(Arc<Batch<K, V>>),
}

impl<K: Clone + Eq + Hash, V: Clone> Coalescer<K, V> {
    pub fn new(window: Duration, max: usize) -> Coalescer<K, V> {
        Coalescer { window, max: max.max(1), open: Mutex::new(HashMap::new()), flight: Mutex::new(HashMap::new()), next_id: Default::default() }
    }

    /// How many keys are waiting in `group`'s open batch (for tests and for
    /// callers that pick a strategy by batch size).
    pub fn waiting(&self, group: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(group).map(|b| b.keys.lock().unwrap_or_else(|e| e.into_inner()).len()).unwrap_or(0)
    }

    fn join(&self, group: &str, key: K) -> Role<K, V> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = open.get(group) {
            let mut keys = b.keys.lock().unwrap_or_else(|e| e.into_inner());
            if keys.len() < self.max {
                if !keys.contains(&key) {
                    keys.push(key);
                }
                if keys.len() >= self.max {
                    b.full.notify_one();
                }
                drop(keys);
                return Role::Member(b.clone());
            }
        }
        let (tx, rx) = watch::channel(None);
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let b = Arc::new(Batch { id, keys: Mutex::new(vec![key]), full: Notify::new(), answer: rx });
        open.insert(group.to_string(), b.clone());
        Role::Leader(b, tx)
    }

    /// `key` of `group`, read together with the other keys asked for within
    /// the window by one call of `fetch` (given at most `max` keys).
    pub async fn load<F, Fut>(&self, group: &str, key: K, fetch: F) -> Result<Option<V>, AwsError>
    where
        F: Fn(Vec<K>) -> Fut,
        Fut: Future<Output = Result<HashMap<K, V>, AwsError>>,
    {
        let pick = |a: &Answer<K, V>, key: &K| match a.as_ref() {
            Ok(m) => Ok(m.get(key).cloned()),
            Err(e) => Err(e.clone()),
        };
        match self.join(group, key.clone()) {
            Role::Leader(b, tx) => {
                let close = Close { c: self, group, id: b.id };
                if self.max > 1 {
                    let _ = tokio::time::timeout(self.window, b.full.notified()).await;
                }
                let gate = self.flight.lock().unwrap_or_else(|e| e.into_inner()).entry(group.to_string()).or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1))).clone();
                // Keys go on joining while the group's previous call is out (never closed: cannot fail).
                let _permit = gate.acquire_owned().await.ok();
                drop(close);
                let keys = std::mem::take(&mut *b.keys.lock().unwrap_or_else(|e| e.into_inner()));
                let answer: Answer<K, V> = Arc::new(fetch(keys).await);
                let _ = tx.send(Some(answer.clone()));
                pick(&answer, &key)
            }
            Role::Member(b) => {
                let mut rx = b.answer.clone();
                let answered = rx.wait_for(Option::is_some).await.ok().and_then(|a| a.clone());
                match answered {
                    Some(a) => pick(&a, &key),
                    // The leader's operation was cancelled before it answered.
                    None => fetch(vec![key.clone()]).await.map(|mut m| m.remove(&key)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn squares(calls: &AtomicUsize, keys: Vec<u32>) -> impl Future<Output = Result<HashMap<u32, u32>, AwsError>> + '_ {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(keys.into_iter().filter(|k| k % 7 != 0).map(|k| (k, k * k)).collect())
        }
    }

    #[tokio::test]
    async fn concurrent_reads_of_a_group_share_calls_of_at_most_max_keys() {
        let c = Coalescer::new(Duration::from_millis(50), 10);
        let calls = AtomicUsize::new(0);
        let reads = (1..=25u32).map(|k| c.load("cluster-a", k, |keys| squares(&calls, keys)));
        let got = futures::future::join_all(reads).await;
        for (k, r) in (1..=25u32).zip(got) {
            let want = (k % 7 != 0).then_some(k * k);
            assert_eq!(r.expect("no error"), want, "key {k}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3, "25 keys at 10 per call");
    }

    #[tokio::test]
    async fn groups_are_batched_apart_and_errors_reach_every_member() {
        let c: Coalescer<u32, u32> = Coalescer::new(Duration::from_millis(20), 10);
        let calls = AtomicUsize::new(0);
        let failing = |_keys: Vec<u32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(AwsError { operation: "ecs:DescribeServices".into(), code: Some("ThrottlingException".into()), message: "throttled".into(), unreachable: false }) }
        };
        let (a, b) =
            futures::future::join(futures::future::join_all((0..3u32).map(|k| c.load("a", k, failing))), futures::future::join_all((0..3u32).map(|k| c.load("b", k, failing))))
                .await;
        assert!(a.iter().chain(b.iter()).all(|r| r.as_ref().is_err_and(|e| e.to_string().contains("throttled"))));
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one call per group");
        assert_eq!(c.waiting("a"), 0);
    }

    #[tokio::test]
    async fn reads_arriving_while_a_call_is_out_join_the_next_call() {
        let c = Arc::new(Coalescer::new(Duration::from_millis(1), 10));
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = |calls: Arc<AtomicUsize>, keys: Vec<u32>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, AwsError>(keys.into_iter().map(|k| (k, k)).collect::<HashMap<_, _>>())
        };
        let mut reads = Vec::new();
        // One read, then six more spread over the first call's 100 ms: those six share the second call.
        for k in 0..7u32 {
            let (c, n) = (c.clone(), calls.clone());
            reads.push(tokio::spawn(async move { c.load("g", k, |keys| slow(n.clone(), keys)).await }));
            tokio::time::sleep(Duration::from_millis(if k == 0 { 20 } else { 10 })).await;
        }
        for (k, r) in reads.into_iter().enumerate() {
            assert_eq!(r.await.expect("joins").expect("no error"), Some(k as u32));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_member_whose_leader_is_cancelled_reads_alone() {
        let c = Arc::new(Coalescer::new(Duration::from_millis(200), 10));
        let calls = Arc::new(AtomicUsize::new(0));
        let (c1, n1) = (c.clone(), calls.clone());
        let leader = tokio::spawn(async move { c1.load("g", 1u32, |keys| squares(&n1, keys)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (c2, n2) = (c.clone(), calls.clone());
        let member = tokio::spawn(async move { c2.load("g", 2u32, |keys| squares(&n2, keys)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.waiting("g"), 2);
        leader.abort();
        assert_eq!(member.await.expect("joins").expect("no error"), Some(4));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "only the member's own read");
        assert_eq!(c.waiting("g"), 0, "the cancelled batch is closed");
    }
}
