//! Scheduling tests with plain in-process children: a shared "world" map plays
//! the cloud, so these test the engine's own logic (order, parallelism,
//! partial failure, ownership and leases, observation and minimal updates,
//! clean-up), not any AWS behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;

/// One object in the world: its child key, value of field `v`, and tags.
#[derive(Clone, Debug)]
struct Obj {
    v: i64,
    tags: Tags,
}

#[derive(Default)]
struct World {
    objects: Mutex<BTreeMap<String, Obj>>,
    events: Mutex<Vec<String>>,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
    serial: AtomicUsize,
    /// Creates answer "already exists" once after making the object (a lost answer).
    lose_first_answer: Mutex<BTreeSet<String>>,
}

impl World {
    fn log(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    fn pos(&self, e: &str) -> usize {
        self.events().iter().position(|x| x == e).unwrap_or_else(|| panic!("event {e:?} missing from {:?}", self.events()))
    }
    fn exists(&self, id: &str) -> bool {
        self.objects.lock().unwrap().contains_key(id)
    }
    fn count(&self) -> usize {
        self.objects.lock().unwrap().len()
    }
    fn put(&self, id: &str, v: i64, tags: Tags) {
        self.objects.lock().unwrap().insert(id.to_string(), Obj { v, tags });
    }
    fn set_v(&self, id: &str, v: i64) {
        self.objects.lock().unwrap().get_mut(id).unwrap().v = v;
    }
    fn tags(&self, id: &str) -> Tags {
        self.objects.lock().unwrap()[id].tags.clone()
    }
    async fn busy(&self, key: &str, what: &str, ms: u64) {
        let now = self.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_inflight.fetch_max(now, Ordering::SeqCst);
        self.log(format!("start {what} {key}"));
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.log(format!("end {what} {key}"));
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct T {
    key: &'static str,
    deps: Vec<&'static str>,
    wanted: bool,
    v: i64,
    ms: u64,
    fail_create: bool,
    /// Fail after the object exists (like a steady-state wait that times out).
    fail_after_create: bool,
    /// A change of `v` needs a new object.
    replaces: bool,
    planned: bool,
    fail_update: bool,
    cancel_on_create: Option<CancellationToken>,
    /// AWS calls a create makes (counted through `crate::calls`).
    calls: u32,
    /// Releases fail while set.
    fail_release: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The spec names the first dependency (`"dep": "<a>"`), as kinds name what they need.
    links: bool,
}

fn t(key: &'static str, deps: &[&'static str]) -> T {
    T {
        key,
        deps: deps.to_vec(),
        wanted: true,
        v: 1,
        ms: 20,
        fail_create: false,
        fail_after_create: false,
        replaces: false,
        planned: false,
        fail_update: false,
        cancel_on_create: None,
        calls: 1,
        fail_release: None,
        links: false,
    }
}

impl T {
    fn boxed(self) -> Box<dyn Node<World>> {
        Box::new(self)
    }
    fn owner_tags(&self) -> Tags {
        [(OWNER_TAG.to_string(), "test_composite/c1".to_string()), (CHILD_TAG.to_string(), self.key.to_string())].into()
    }
}

#[async_trait]
impl Node<World> for T {
    fn key(&self) -> &str {
        self.key
    }
    fn deps(&self) -> Vec<&str> {
        self.deps.clone()
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("test child {}", self.key)
    }
    fn spec(&self) -> Spec {
        let mut s = spec(json!({"v": self.v}));
        if let (true, Some(d)) = (self.links, self.deps.first()) {
            s.insert("dep".into(), json!(format!("<{d}>")));
        }
        s
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        if self.replaces { &["v"] } else { &[] }
    }
    fn planned_identity(&self) -> Option<Identity> {
        self.planned.then(|| Identity::new(format!("{}-fixed", self.key)))
    }
    async fn find(&self, w: &World, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let objs = w.objects.lock().unwrap();
        Ok(match objs.iter().find(|(_, o)| o.tags.get(CHILD_TAG).map(String::as_str) == Some(self.key)) {
            None => Found::None,
            Some((id, o)) => Found::Tagged(Identity::new(id), o.tags.clone()),
        })
    }
    async fn create(&self, w: &World, cx: &Cx<'_>) -> Result<Made, NodeError> {
        for d in &self.deps {
            let id = cx.dep(d)?;
            assert!(w.exists(id), "{} created before its dependency {d} exists", self.key);
        }
        for _ in 0..self.calls {
            crate::calls::record();
        }
        w.busy(self.key, "create", self.ms).await;
        if let Some(tok) = &self.cancel_on_create {
            tok.cancel();
        }
        if self.fail_create {
            return Err(NodeError::other(format!("{} refused", self.key)));
        }
        let id = if self.planned { format!("{}-fixed", self.key) } else { format!("{}-{}", self.key, w.serial.fetch_add(1, Ordering::SeqCst)) };
        let mut tags = self.owner_tags();
        let (k, v) = cx.lease_tag();
        tags.insert(k, v);
        w.put(&id, self.v, tags);
        if w.lose_first_answer.lock().unwrap().remove(self.key) {
            return Err(crate::aws::AwsError { operation: "test:Create".into(), code: Some("EntityAlreadyExists".into()), message: "exists".into(), unreachable: false }.into());
        }
        if self.fail_after_create {
            return Err(NodeError::timeout(format!("{} to settle", self.key), Duration::from_millis(self.ms), "still settling").with_id(id));
        }
        Ok(Made::id(id).with("serial", "x"))
    }
    async fn observe(&self, w: &World, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        Ok(w.objects.lock().unwrap().get(&id.id).map(|o| spec(json!({"v": o.v}))))
    }
    async fn update(&self, w: &World, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        w.busy(self.key, "update", self.ms).await;
        w.log(format!("base {} v={}", self.key, base.get("v").cloned().unwrap_or_default()));
        if self.fail_update {
            return Err(NodeError::other("deployment failed"));
        }
        if let Some(o) = w.objects.lock().unwrap().get_mut(&id.id) {
            o.v = self.v;
            o.tags.remove(LEASE_TAG);
        }
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, w: &World, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        w.busy(&id.id, "delete", self.ms).await;
        w.objects.lock().unwrap().remove(&id.id);
        Ok(())
    }
    async fn release(&self, w: &World, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        w.log(format!("release {}", self.key));
        crate::calls::record();
        if self.fail_release.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
            return Err(NodeError::other("tagging refused"));
        }
        if let Some(o) = w.objects.lock().unwrap().get_mut(&id.id) {
            let (k, v) = cx.recorded_tag();
            o.tags.insert(k, v);
        }
        Ok(())
    }
}

fn opts() -> RunOpts {
    RunOpts::new(Owner::new("test_composite", "c1"), CancellationToken::new(), Duration::from_secs(30)).import_hint("terraform import test_composite.x c1")
}

fn graph(nodes: Vec<T>) -> Graph<World> {
    Graph::new(nodes.into_iter().map(T::boxed).collect()).unwrap()
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

fn nothing() -> BTreeMap<String, Spec> {
    BTreeMap::new()
}

async fn create_all(w: &World, g: &Graph<World>) -> Outcome {
    apply(w, g, None, Record::new(), &nothing(), &none(), &opts()).await
}

fn id(r: &Record, key: &str) -> String {
    r.get(key).map(|i| i.id).unwrap_or_default()
}

#[tokio::test]
async fn independent_children_run_in_parallel_and_dependents_wait() {
    let w = World::default();
    let g = graph(vec![t("a", &[]), t("b", &[]), t("c", &[]), t("d", &["a", "b", "c"])]);
    let out = create_all(&w, &g).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(w.max_inflight.load(Ordering::SeqCst), 3, "a, b and c should overlap: {:?}", w.events());
    for dep in ["a", "b", "c"] {
        assert!(w.pos(&format!("end create {dep}")) < w.pos("start create d"));
    }
    assert_eq!(out.record.live_keys(), vec!["a", "b", "c", "d"]);
    assert_eq!(w.count(), 4);
    assert_eq!(out.action("d"), Some(Action::Create));
    assert_eq!(out.outputs["a"]["serial"], "x");
}

#[tokio::test]
async fn parallelism_is_bounded() {
    let w = World::default();
    let g = graph(vec![t("a", &[]), t("b", &[]), t("c", &[]), t("d", &[])]);
    let mut o = opts();
    o.max_parallel = 2;
    let out = apply(&w, &g, None, Record::new(), &nothing(), &none(), &o).await;
    assert!(out.ok());
    assert_eq!(w.max_inflight.load(Ordering::SeqCst), 2);
    assert_eq!(w.count(), 4);
}

#[tokio::test]
async fn chains_run_in_order_and_give_the_critical_path() {
    let w = World::default();
    let g = graph(vec![t("c", &["b"]), t("b", &["a"]), t("a", &[]), t("x", &["a"])]);
    assert_eq!(g.critical_path(), vec!["a", "b", "c"]);
    assert_eq!(g.critical_path_len(), 3);
    let out = create_all(&w, &g).await;
    assert!(out.ok());
    assert!(w.pos("end create a") < w.pos("start create b"));
    assert!(w.pos("end create b") < w.pos("start create c"));
}

#[tokio::test]
async fn apply_counts_calls_along_the_heaviest_dependent_chain() {
    let w = World::default();
    let with = |mut n: T, calls| {
        n.calls = calls;
        n
    };
    // a -> b -> c weighs 3+2+1 = 6; a -> x weighs 3+10 = 13; y stands alone with 12; then one round of
    // lease releases (one call each, in parallel).
    let g = graph(vec![with(t("a", &[]), 3), with(t("b", &["a"]), 2), with(t("c", &["b"]), 1), with(t("x", &["a"]), 10), with(t("y", &[]), 12)]);
    let out = create_all(&w, &g).await;
    assert!(out.ok());
    assert_eq!(out.calls, 28 + 5);
    assert_eq!(out.critical_path_calls, 13 + 1);
    // Nothing to do: no calls, no chain.
    let again = apply(&w, &g, Some(&g), out.record, &out.known, &none(), &opts()).await;
    assert_eq!((again.calls, again.critical_path_calls), (0, 0));
}

#[tokio::test]
async fn critical_path_ignores_unwanted_children() {
    let mut b = t("b", &["a"]);
    b.wanted = false;
    let g = graph(vec![t("a", &[]), b, t("c", &["b"])]);
    assert_eq!(g.critical_path_len(), 1);
}

#[tokio::test]
async fn first_failure_stops_scheduling_and_keeps_what_exists() {
    let w = World::default();
    let mut b = t("b", &[]);
    b.fail_create = true;
    b.ms = 5;
    let mut slow = t("slow", &[]);
    slow.ms = 80;
    let g = graph(vec![t("a", &[]), b, t("c", &["b"]), slow, t("after_slow", &["slow"])]);
    let out = create_all(&w, &g).await;
    assert!(!out.ok());
    // a and slow (in flight when b failed) exist and are recorded; c and after_slow never started.
    assert_eq!(out.record.live_keys(), vec!["a", "slow"]);
    assert_eq!(w.count(), 2);
    assert_eq!(out.unfinished, ["b", "c", "after_slow"].iter().map(|s| s.to_string()).collect());
    assert!(!w.events().iter().any(|e| e.contains("create c") || e.contains("after_slow")), "{:?}", w.events());
    let msg = out.diags.to_string();
    assert!(msg.contains("Could not create test child b") && msg.contains("b refused"), "{msg}");
    assert!(msg.contains("recorded in state"), "{msg}");
    // What exists is released all the same: its state is recorded.
    let recorded = |k: &str| w.tags(&id(&out.record, k)).get(LEASE_TAG).is_some_and(|v| Lease::is_recorded(v));
    assert!(recorded("a") && recorded("slow"));
}

#[tokio::test]
async fn a_child_that_exists_despite_failing_is_recorded_and_released() {
    let w = World::default();
    let mut svc = t("svc", &["a"]);
    svc.fail_after_create = true;
    let g = graph(vec![t("a", &[]), svc]);
    let out = create_all(&w, &g).await;
    assert!(!out.ok());
    assert!(out.diags.to_string().contains("gave up waiting for svc to settle"));
    let svc = id(&out.record, "svc");
    assert!(w.exists(&svc));
    assert!(w.tags(&svc).get(LEASE_TAG).is_some_and(|v| Lease::is_recorded(v)), "recorded, so no longer adoptable by another state");
}

/// A kind whose observation reports no tags cannot show a lease left live by a
/// failed release; the child is unfinished, and the next apply releases it.
#[tokio::test]
async fn a_failed_release_is_retried_by_the_next_apply() {
    let w = World::default();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut a = t("a", &[]);
    a.fail_release = Some(failing.clone());
    let g = graph(vec![a]);
    let first = create_all(&w, &g).await;
    assert!(!first.ok() && first.diags.to_string().contains("Could not release test child a"), "{}", first.diags);
    assert!(first.unfinished.contains("a"));
    let obj = id(&first.record, "a");
    assert!(w.tags(&obj).get(LEASE_TAG).is_some_and(|v| !Lease::is_recorded(v)), "the lease is still live");
    failing.store(false, Ordering::SeqCst);
    let drifted: BTreeSet<String> = ["a".to_string()].into();
    let o = opts();
    let again = apply(&w, &g, Some(&g), first.record.clone(), &nothing(), &drifted, &o).await;
    assert!(again.ok(), "{}", again.diags);
    assert_eq!(id(&again.record, "a"), obj, "the same object");
    assert_eq!(w.tags(&obj).get(LEASE_TAG), Some(&o.lease.recorded_value()), "released by the next apply");
}

/// A dependency deleted out of band and recreated under the same identity
/// was observed as a literal in its dependent's spec; plan, like apply, reads
/// it as the dependency and plans no update of the dependent.
#[test]
fn plan_reads_a_dependency_observed_as_a_literal_as_the_dependency() {
    let mut b = t("b", &["a"]);
    b.links = true;
    let g = graph(vec![t("a", &[]), b]);
    let mut record = Record::new();
    record.set("a", &Identity::new("a-1"));
    record.set("b", &Identity::new("b-1"));
    let known: BTreeMap<String, Spec> = [("b".to_string(), spec(json!({"v": 1, "dep": "a-1"})))].into();
    let p = plan(&g, Some(&g), &record, &known, &none());
    assert!(p.update.is_empty(), "no update: {:?}", p.update);
    let moved: BTreeMap<String, Spec> = [("b".to_string(), spec(json!({"v": 1, "dep": "a-0"})))].into();
    assert!(plan(&g, Some(&g), &record, &moved, &none()).update.contains("b"), "another identity is a change");
}

#[tokio::test]
async fn destroy_runs_in_reverse_dependency_order() {
    let w = World::default();
    let g = graph(vec![t("a", &[]), t("b", &["a"]), t("c", &["b"]), t("d", &[])]);
    let rec = create_all(&w, &g).await.record;
    let ids: BTreeMap<String, String> = rec.as_map().clone();
    let out = destroy(&w, &g, rec, &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert!(out.record.is_empty());
    assert_eq!(w.count(), 0);
    let del = |k: &str| w.pos(&format!("end delete {}", ids[k]));
    let start = |k: &str| w.pos(&format!("start delete {}", ids[k]));
    assert!(del("c") < start("b"));
    assert!(del("b") < start("a"));
}

#[tokio::test]
async fn destroy_failure_keeps_undeleted_children_in_the_record() {
    struct Stubborn;
    #[async_trait]
    impl Node<World> for Stubborn {
        fn key(&self) -> &str {
            "stubborn"
        }
        fn deps(&self) -> Vec<&str> {
            vec!["a"]
        }
        fn describe(&self) -> String {
            "stubborn child".into()
        }
        fn spec(&self) -> Spec {
            Spec::new()
        }
        async fn create(&self, _w: &World, _cx: &Cx<'_>) -> Result<Made, NodeError> {
            Ok(Made::id("stubborn-1"))
        }
        async fn observe(&self, _w: &World, _id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
            Ok(Some(Spec::new()))
        }
        async fn update(&self, _w: &World, id: &Identity, _base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
            Ok(Made::identity(id.clone()))
        }
        async fn delete(&self, _w: &World, _id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
            Err(NodeError::other("still in use"))
        }
    }
    let w = World::default();
    let g: Graph<World> = Graph::new(vec![t("a", &[]).boxed(), Box::new(Stubborn)]).unwrap();
    let rec = create_all(&w, &g).await.record;
    let out = destroy(&w, &g, rec, &opts()).await;
    assert!(!out.ok());
    assert!(out.diags.to_string().contains("Could not delete stubborn child: still in use"), "{}", out.diags);
    // a was not deleted because its dependent could not be.
    assert_eq!(out.record.live_keys(), vec!["a", "stubborn"]);
    assert_eq!(w.count(), 1);
}

#[tokio::test]
async fn an_interrupted_create_is_adopted_but_another_states_objects_are_not() {
    let g = graph(vec![t("a", &[]), t("b", &["a"])]);
    // A create whose process died: its lease names a process that no longer runs.
    let me = Lease::new(Duration::from_secs(600));
    let dead = Lease::parse(&format!("dead00/{}/{}/0/{}", me.host, u32::MAX - 3, me.expires)).unwrap();
    let w = World::default();
    let mut tags = t("a", &[]).owner_tags();
    tags.insert(LEASE_TAG.into(), dead.tag_value());
    w.put("a-old", 1, tags);
    let o = opts();
    let out = apply(&w, &g, None, Record::new(), &nothing(), &none(), &o).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.action("a"), Some(Action::Adopt));
    assert_eq!(id(&out.record, "a"), "a-old");
    assert_eq!(w.count(), 2, "adoption must not duplicate");
    assert_eq!(w.tags("a-old").get(LEASE_TAG), Some(&o.lease.recorded_value()), "adopted and recorded: released");

    // The same working directory (its journal knows the apply) takes them back after a
    // crash that came between the release and the state being saved...
    let again = create_all(&w, &g).await;
    assert!(again.ok() && again.action("a") == Some(Action::Adopt) && again.action("b") == Some(Action::Adopt), "{}", again.diags);
    // ...but another working directory (another state) refuses them, before any write.
    let _ = std::fs::remove_dir_all(".terraform/cxflow/leases");
    let before = w.count();
    let events = w.events().len();
    let out = create_all(&w, &g).await;
    assert!(!out.ok());
    let msg = out.diags.to_string();
    assert_eq!(out.diags.0.len(), 1, "one diagnostic: {msg}");
    assert!(msg.contains("test child a already exists") && msg.contains("another Terraform state has recorded"), "{msg}");
    assert!(msg.contains("terraform import test_composite.x c1") && msg.contains("1 more of its objects exist: test child b"), "{msg}");
    assert!(out.record.is_empty());
    assert_eq!(w.count(), before);
    assert!(!w.events()[events..].iter().any(|e| e.contains("create") || e.contains("update")), "no write at all: {:?}", &w.events()[events..]);
}

#[tokio::test]
async fn objects_without_our_tag_or_of_a_running_apply_are_refused() {
    let g = graph(vec![t("a", &[])]);
    let w = World::default();
    w.put("a-theirs", 1, [(CHILD_TAG.to_string(), "a".to_string())].into());
    let msg = create_all(&w, &g).await.diags.to_string();
    assert!(msg.contains("has no cxflow:owner tag"), "{msg}");

    // Another apply in this very process holds a live lease on it: a concurrent create.
    let w = World::default();
    let live = Lease::new(Duration::from_secs(600));
    let mut tags = t("a", &[]).owner_tags();
    tags.insert(LEASE_TAG.into(), live.tag_value());
    w.put("a-racing", 1, tags);
    let msg = create_all(&w, &g).await.diags.to_string();
    assert!(msg.contains("another terraform apply is creating it right now"), "{msg}");
    assert_eq!(w.count(), 1);
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_adopts_its_own_object() {
    let w = World::default();
    w.lose_first_answer.lock().unwrap().insert("a".into());
    let g = graph(vec![t("a", &[]), t("b", &["a"])]);
    let out = create_all(&w, &g).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.action("a"), Some(Action::Adopt), "the retry found this apply's own object");
    assert_eq!(w.count(), 2, "no duplicate");
}

#[tokio::test]
async fn spec_changes_update_only_what_changed_and_superseded_identities_are_retired() {
    let w = World::default();
    let mut td = t("td", &["log"]);
    td.replaces = true;
    let g1 = graph(vec![t("log", &[]), td.clone(), t("svc", &["td"]), t("sg", &[])]);
    let out = create_all(&w, &g1).await;
    let first = out.record.clone();

    let mut td2 = td.clone();
    td2.v = 2;
    let g2 = graph(vec![t("log", &[]), td2, t("svc", &["td"]), t("sg", &[])]);
    let p = plan(&g2, Some(&g1), &first, &out.known, &none());
    assert_eq!(p.update, ["svc", "td"].iter().map(|s| s.to_string()).collect());
    assert!(p.new_identity.contains("td") && p.create.is_empty() && p.changes_record());

    let out = apply(&w, &g2, Some(&g1), first.clone(), &out.known, &none(), &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.action("log"), Some(Action::Keep));
    assert_eq!(out.action("sg"), Some(Action::Keep));
    assert_eq!(out.action("td"), Some(Action::Replace));
    assert_eq!(out.action("svc"), Some(Action::Update), "a dependency with a new identity updates its dependents");
    assert_ne!(out.record.get("td"), first.get("td"));
    assert_eq!(out.record.get("svc"), first.get("svc"));
    let old = id(&first, "td");
    assert!(!w.exists(&old), "the superseded revision is deleted after success");
    assert_eq!(out.action("td.superseded.1"), Some(Action::Retire));
    assert!(!out.record.has_superseded());
    // The old one is deleted only after the dependent moved to the new one.
    assert!(w.pos("end update svc") < w.pos(&format!("start delete {old}")));

    // No change at all: nothing is touched.
    let p = plan(&g2, Some(&g2), &out.record, &out.known, &none());
    assert!(p.is_noop(), "{p:?}");
}

#[tokio::test]
async fn updates_start_from_what_was_observed() {
    let w = World::default();
    let g1 = graph(vec![t("svc", &[])]);
    let first = create_all(&w, &g1).await;
    // Out of band, v became 7; refresh sees it and reports the field.
    w.set_v(&id(&first.record, "svc"), 7);
    let r = refresh(&w, &g1, first.record.clone(), &opts()).await;
    assert_eq!(r.drift["svc"], "svc.v = 7 outside Terraform (configuration: 1)");
    let drifted: BTreeSet<String> = r.drift.keys().cloned().collect();
    let out = apply(&w, &g1, Some(&g1), r.record, &r.observed, &drifted, &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert!(w.events().contains(&"base svc v=7".to_string()), "the update knows what AWS has: {:?}", w.events());
    assert_eq!(w.objects.lock().unwrap()[&id(&out.record, "svc")].v, 1);
    assert!(refresh(&w, &g1, out.record, &opts()).await.drift.is_empty());
}

#[tokio::test]
async fn superseded_identity_survives_a_failed_apply() {
    let w = World::default();
    let mut td = t("td", &[]);
    td.replaces = true;
    let g1 = graph(vec![td.clone(), t("svc", &["td"])]);
    let first = create_all(&w, &g1).await;
    let mut td2 = td;
    td2.v = 2;
    let mut svc = t("svc", &["td"]);
    svc.fail_update = true;
    let g2 = graph(vec![td2, svc]);
    let out = apply(&w, &g2, Some(&g1), first.record.clone(), &first.known, &none(), &opts()).await;
    assert!(!out.ok());
    // Both revisions exist and both are in the record.
    assert_eq!(out.record.as_map().get("td.superseded.1"), first.record.as_map().get("td"));
    assert!(w.exists(&id(&first.record, "td")) && w.exists(&id(&out.record, "td")));
    // The next plan wants to delete the superseded one.
    let p = plan(&g2, Some(&g2), &out.record, &out.known, &none());
    assert!(p.delete.contains("td.superseded.1"));
}

#[tokio::test]
async fn refresh_finds_deleted_and_drifted_children_and_apply_repairs_only_them() {
    let w = World::default();
    let mut log = t("log", &[]);
    log.planned = true;
    let g = graph(vec![log, t("td", &["log"]), t("svc", &["td"]), t("sg", &[])]);
    let first = create_all(&w, &g).await.record;

    // Out of band: the log group is deleted, the security group changed.
    w.objects.lock().unwrap().remove(&id(&first, "log"));
    w.set_v(&id(&first, "sg"), 9);
    let r = refresh(&w, &g, first.clone(), &opts()).await;
    assert!(r.diags.is_empty());
    assert_eq!(r.record.get("log"), None);
    assert!(r.drift["log"].contains("deleted outside Terraform"));
    assert_eq!(r.drift["sg"], "sg.v = 9 outside Terraform (configuration: 1)");

    let drifted: BTreeSet<String> = r.drift.keys().cloned().collect();
    let p = plan(&g, Some(&g), &r.record, &r.observed, &drifted);
    assert_eq!(p.create, ["log".to_string()].into());
    assert_eq!(p.update, ["sg".to_string()].into(), "a recreated child with a known identity leaves its dependents alone");

    let out = apply(&w, &g, Some(&g), r.record, &r.observed, &drifted, &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.action("log"), Some(Action::Create));
    assert_eq!(out.action("sg"), Some(Action::Update));
    assert_eq!(out.action("td"), Some(Action::Keep));
    assert_eq!(out.action("svc"), Some(Action::Keep));
    assert_eq!(out.record, first);
    let r = refresh(&w, &g, out.record, &opts()).await;
    assert!(r.drift.is_empty());
}

#[tokio::test]
async fn unwanted_children_are_deleted_after_the_wanted_ones_are_updated() {
    let w = World::default();
    let g1 = graph(vec![t("tg", &[]), t("rule", &["tg"]), t("svc", &["rule"])]);
    let first = create_all(&w, &g1).await;
    let mut tg = t("tg", &[]);
    tg.wanted = false;
    let mut rule = t("rule", &["tg"]);
    rule.wanted = false;
    let mut svc = t("svc", &["rule"]);
    svc.v = 3;
    let g2 = graph(vec![tg, rule, svc]);
    let p = plan(&g2, Some(&g1), &first.record, &first.known, &none());
    assert_eq!(p.delete, ["rule".to_string(), "tg".to_string()].into());
    let out = apply(&w, &g2, Some(&g1), first.record.clone(), &first.known, &none(), &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.record.live_keys(), vec!["svc"]);
    assert!(w.pos("end update svc") < w.pos(&format!("start delete {}", id(&first.record, "rule"))));
    assert!(w.pos(&format!("end delete {}", id(&first.record, "rule"))) < w.pos(&format!("start delete {}", id(&first.record, "tg"))));
}

#[tokio::test]
async fn cancellation_stops_between_steps() {
    let w = World::default();
    let o = opts();
    let mut a = t("a", &[]);
    a.cancel_on_create = Some(o.cancel.clone());
    let g = graph(vec![a, t("b", &["a"])]);
    let out = apply(&w, &g, None, Record::new(), &nothing(), &none(), &o).await;
    assert!(!out.ok());
    assert!(out.diags.to_string().contains("Operation cancelled"));
    assert_eq!(out.record.live_keys(), vec!["a"], "the step in flight finishes and is recorded");
    assert_eq!(w.count(), 1);
    assert!(w.events().contains(&"release a".to_string()), "released although cancelled");

    // Cancelled before anything: nothing happens.
    let w = World::default();
    let o = opts();
    o.cancel.cancel();
    let out = apply(&w, &graph(vec![t("a", &[])]), None, Record::new(), &nothing(), &none(), &o).await;
    assert!(!out.ok() && out.record.is_empty() && w.count() == 0);
}

#[tokio::test]
async fn deadline_stops_scheduling_and_no_duration_overflows() {
    let w = World::default();
    let mut o = opts();
    o.deadline = std::time::Instant::now();
    let out = apply(&w, &graph(vec![t("a", &[])]), None, Record::new(), &nothing(), &none(), &o).await;
    assert!(out.diags.to_string().contains("timed out"));
    assert_eq!(w.count(), 0);
    // A limit no Instant can hold is capped, not a panic.
    let huge = RunOpts::new(Owner::new("x", "y"), CancellationToken::new(), Duration::from_secs(u64::MAX));
    assert!(huge.deadline > std::time::Instant::now());
}

#[test]
fn graphs_reject_cycles_unknown_dependencies_and_bad_keys() {
    let err = |nodes: Vec<T>| Graph::new(nodes.into_iter().map(T::boxed).collect()).err().unwrap();
    assert!(matches!(err(vec![t("a", &["b"]), t("b", &["a"])]), GraphError::Cycle(_)));
    assert_eq!(err(vec![t("a", &["zz"])]), GraphError::UnknownDependency { node: "a".into(), dep: "zz".into() });
    assert_eq!(err(vec![t("a", &[]), t("a", &[])]), GraphError::DuplicateKey("a".into()));
    assert_eq!(err(vec![t("A-b", &[])]), GraphError::BadKey("A-b".into()));
}

#[test]
fn an_object_without_the_ownership_tag_has_no_tag_drift() {
    // Adopted by import (made by hand): its own tags, none of ours, are not drift; everything else still is.
    let want = spec(json!({"desired_count": 2, "tags": {"Team": "a", "cxflow:owner": "o", "cxflow:child": "service"}}));
    let adopted = spec(json!({"desired_count": 3, "tags": {"Team": "b"}}));
    assert_eq!(field_drift("service", &want, &adopted), ["service.desired_count = 3 outside Terraform (configuration: 2)"]);
    // Once it carries the ownership tag, its tags are compared.
    let owned = spec(json!({"desired_count": 2, "tags": {"Team": "b", "cxflow:owner": "o", "cxflow:child": "service"}}));
    assert_eq!(field_drift("service", &want, &owned), ["service.tags[\"Team\"] = b outside Terraform (configuration: a)"]);
}

#[test]
fn drift_names_the_child_and_the_field() {
    let want = spec(json!({"desired_count": 2, "tags": {"Team": "a", "cxflow:owner": "o"}, "name": "x"}));
    let have = spec(json!({"desired_count": 3, "tags": {"Team": "b", "cxflow:owner": "o", "Extra": "1"}}));
    assert_eq!(
        field_drift("service", &want, &have),
        [
            "service.desired_count = 3 outside Terraform (configuration: 2)",
            "service.tags[\"Extra\"] = 1 outside Terraform (configuration: absent)",
            "service.tags[\"Team\"] = b outside Terraform (configuration: a)",
        ]
    );
}
