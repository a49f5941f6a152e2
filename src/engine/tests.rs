//! Scheduling tests with plain in-process children: a shared "world" map plays
//! the cloud, so these test the engine's own logic (order, parallelism,
//! partial failure, adoption, clean-up), not any AWS behaviour.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::*;

#[derive(Default)]
struct World {
    /// id → key of every object that exists.
    objects: Mutex<BTreeMap<String, String>>,
    /// Objects that exist before the run under a node's name: key → (id, ours).
    preexisting: Mutex<BTreeMap<String, (String, bool)>>,
    /// Keys whose object differs from the configuration.
    drifted: Mutex<BTreeSet<String>>,
    events: Mutex<Vec<String>>,
    inflight: AtomicUsize,
    max_inflight: AtomicUsize,
    serial: AtomicUsize,
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
    spec: serde_json::Value,
    ms: u64,
    fail_create: bool,
    /// Fail after the object exists (like a steady-state wait that times out).
    fail_after_create: bool,
    replaces: bool,
    planned: bool,
    cancel_on_create: Option<CancellationToken>,
    /// AWS calls a create makes (counted through `crate::calls`).
    calls: u32,
}

fn t(key: &'static str, deps: &[&'static str]) -> T {
    T {
        key,
        deps: deps.to_vec(),
        wanted: true,
        spec: json!({"v": 1}),
        ms: 20,
        fail_create: false,
        fail_after_create: false,
        replaces: false,
        planned: false,
        cancel_on_create: None,
        calls: 1,
    }
}

impl T {
    fn boxed(self) -> Box<dyn Node<World>> {
        Box::new(self)
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
    fn spec(&self) -> serde_json::Value {
        self.spec.clone()
    }
    fn planned_identity(&self) -> Option<String> {
        self.planned.then(|| format!("{}-fixed", self.key))
    }
    fn update_replaces(&self) -> bool {
        self.replaces
    }
    async fn adopt(&self, w: &World, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(match w.preexisting.lock().unwrap().get(self.key) {
            None => Found::None,
            Some((id, true)) => Found::Owned(id.clone()),
            Some((_, false)) => Found::Foreign(format!("an object named {} exists but has no {OWNER_TAG} tag", self.key)),
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
        w.objects.lock().unwrap().insert(id.clone(), self.key.to_string());
        if self.fail_after_create {
            return Err(NodeError::timeout(format!("{} to settle", self.key), Duration::from_millis(self.ms), "still settling").with_id(id));
        }
        Ok(Made::id(id).with("serial", "x"))
    }
    async fn read(&self, w: &World, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        if !w.exists(id) {
            return Ok(Observed::Gone);
        }
        Ok(if w.drifted.lock().unwrap().contains(self.key) { Observed::Drifted(format!("{} changed", self.key)) } else { Observed::InSync })
    }
    async fn update(&self, w: &World, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        w.busy(self.key, "update", self.ms).await;
        w.drifted.lock().unwrap().remove(self.key);
        if self.replaces {
            let new = format!("{}-{}", self.key, w.serial.fetch_add(1, Ordering::SeqCst));
            w.objects.lock().unwrap().insert(new.clone(), self.key.to_string());
            return Ok(Made::id(new));
        }
        Ok(Made::id(id))
    }
    async fn delete(&self, w: &World, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        w.busy(id, "delete", self.ms).await;
        w.objects.lock().unwrap().remove(id);
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

#[tokio::test]
async fn independent_children_run_in_parallel_and_dependents_wait() {
    let w = World::default();
    let g = graph(vec![t("a", &[]), t("b", &[]), t("c", &[]), t("d", &["a", "b", "c"])]);
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(w.max_inflight.load(Ordering::SeqCst), 3, "a, b and c should overlap: {:?}", w.events());
    for dep in ["a", "b", "c"] {
        assert!(w.pos(&format!("end create {dep}")) < w.pos("start create d"));
    }
    assert_eq!(out.record.live_keys().collect::<Vec<_>>(), vec!["a", "b", "c", "d"]);
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
    let out = apply(&w, &g, None, Record::new(), &none(), &o).await;
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
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
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
    // a -> b -> c weighs 3+2+1 = 6; a -> x weighs 3+10 = 13; y stands alone with 12.
    let g = graph(vec![with(t("a", &[]), 3), with(t("b", &["a"]), 2), with(t("c", &["b"]), 1), with(t("x", &["a"]), 10), with(t("y", &[]), 12)]);
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    assert!(out.ok());
    assert_eq!(out.calls, 28);
    assert_eq!(out.critical_path_calls, 13);
    // Nothing to do: no calls, no chain.
    let again = apply(&w, &g, Some(&g), out.record, &none(), &opts()).await;
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
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    assert!(!out.ok());
    // a and slow (in flight when b failed) exist and are recorded; c and after_slow never started.
    assert_eq!(out.record.live_keys().collect::<Vec<_>>(), vec!["a", "slow"]);
    assert_eq!(w.count(), 2);
    assert_eq!(out.unfinished, ["b", "c", "after_slow"].iter().map(|s| s.to_string()).collect());
    assert!(!w.events().iter().any(|e| e.contains("create c") || e.contains("after_slow")), "{:?}", w.events());
    let msg = out.diags.to_string();
    assert!(msg.contains("Could not create test child b") && msg.contains("b refused"), "{msg}");
    assert!(msg.contains("recorded in state"), "{msg}");
}

#[tokio::test]
async fn a_child_that_exists_despite_failing_is_recorded() {
    let w = World::default();
    let mut svc = t("svc", &["a"]);
    svc.fail_after_create = true;
    let g = graph(vec![t("a", &[]), svc]);
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    assert!(!out.ok());
    assert!(out.diags.to_string().contains("gave up waiting for svc to settle"));
    assert!(out.record.get("svc").is_some_and(|id| w.exists(id)));
}

#[tokio::test]
async fn destroy_runs_in_reverse_dependency_order() {
    let w = World::default();
    let g = graph(vec![t("a", &[]), t("b", &["a"]), t("c", &["b"]), t("d", &[])]);
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    let rec = out.record.clone();
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
        fn spec(&self) -> serde_json::Value {
            json!(null)
        }
        async fn create(&self, _w: &World, _cx: &Cx<'_>) -> Result<Made, NodeError> {
            Ok(Made::id("stubborn-1"))
        }
        async fn read(&self, _w: &World, _id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
            Ok(Observed::InSync)
        }
        async fn update(&self, _w: &World, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
            Ok(Made::id(id))
        }
        async fn delete(&self, _w: &World, _id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
            Err(NodeError::other("still in use"))
        }
    }
    let w = World::default();
    let g: Graph<World> = Graph::new(vec![t("a", &[]).boxed(), Box::new(Stubborn)]).unwrap();
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    let out = destroy(&w, &g, out.record, &opts()).await;
    assert!(!out.ok());
    assert!(out.diags.to_string().contains("Could not delete stubborn child: still in use"), "{}", out.diags);
    // a was not deleted because its dependent could not be.
    assert_eq!(out.record.live_keys().collect::<Vec<_>>(), vec!["a", "stubborn"]);
    assert_eq!(w.count(), 1);
}

#[tokio::test]
async fn adopts_owned_objects_and_refuses_foreign_ones() {
    let w = World::default();
    w.preexisting.lock().unwrap().insert("a".into(), ("a-old".into(), true));
    w.objects.lock().unwrap().insert("a-old".into(), "a".into());
    let g = graph(vec![t("a", &[]), t("b", &["a"])]);
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.action("a"), Some(Action::Adopt));
    assert_eq!(out.record.get("a"), Some("a-old"));
    assert_eq!(w.count(), 2, "adoption must not duplicate");

    let w = World::default();
    w.preexisting.lock().unwrap().insert("b".into(), ("b-theirs".into(), false));
    let out = apply(&w, &g, None, Record::new(), &none(), &opts()).await;
    assert!(!out.ok());
    let msg = out.diags.to_string();
    assert!(msg.contains("test child b already exists"), "{msg}");
    assert!(msg.contains("cxflow:owner = \"test_composite/c1\"") && msg.contains("terraform import test_composite.x c1"), "{msg}");
    assert_eq!(out.record.live_keys().collect::<Vec<_>>(), vec!["a"]);
}

#[tokio::test]
async fn spec_changes_update_only_what_changed_and_superseded_identities_are_retired() {
    let w = World::default();
    let mut td = t("td", &["log"]);
    td.replaces = true;
    let nodes = vec![t("log", &[]), td.clone(), t("svc", &["td"]), t("sg", &[])];
    let g1 = graph(nodes.clone());
    let out = apply(&w, &g1, None, Record::new(), &none(), &opts()).await;
    let first = out.record.clone();

    let mut td2 = td.clone();
    td2.spec = json!({"image": "v2"});
    let g2 = graph(vec![t("log", &[]), td2, t("svc", &["td"]), t("sg", &[])]);
    let p = plan(&g2, Some(&g1), &first, &none());
    assert_eq!(p.update, ["svc", "td"].iter().map(|s| s.to_string()).collect());
    assert!(p.new_identity.contains("td") && p.create.is_empty() && p.changes_record());

    let out = apply(&w, &g2, Some(&g1), first.clone(), &none(), &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.action("log"), Some(Action::Keep));
    assert_eq!(out.action("sg"), Some(Action::Keep));
    assert_eq!(out.action("td"), Some(Action::Update));
    assert_eq!(out.action("svc"), Some(Action::Update), "a dependency with a new identity updates its dependents");
    assert_ne!(out.record.get("td"), first.get("td"));
    assert_eq!(out.record.get("svc"), first.get("svc"));
    let old = first.get("td").unwrap();
    assert!(!w.exists(old), "the superseded revision is deleted after success");
    assert_eq!(out.action("td.superseded.1"), Some(Action::Retire));
    assert!(!out.record.has_superseded());
    // The old one is deleted only after the dependent moved to the new one.
    assert!(w.pos("end update svc") < w.pos(&format!("start delete {old}")));

    // No change at all: nothing is touched.
    let p = plan(&g2, Some(&g2), &out.record, &none());
    assert!(p.is_noop(), "{p:?}");
}

#[tokio::test]
async fn superseded_identity_survives_a_failed_apply() {
    let w = World::default();
    let mut td = t("td", &[]);
    td.replaces = true;
    let g1 = graph(vec![td.clone(), t("svc", &["td"])]);
    let first = apply(&w, &g1, None, Record::new(), &none(), &opts()).await.record;
    struct FailingUpdate;
    #[async_trait]
    impl Node<World> for FailingUpdate {
        fn key(&self) -> &str {
            "svc"
        }
        fn deps(&self) -> Vec<&str> {
            vec!["td"]
        }
        fn describe(&self) -> String {
            "service".into()
        }
        fn spec(&self) -> serde_json::Value {
            json!({"v": 1})
        }
        async fn create(&self, _w: &World, _cx: &Cx<'_>) -> Result<Made, NodeError> {
            unreachable!()
        }
        async fn read(&self, _w: &World, _id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
            Ok(Observed::InSync)
        }
        async fn update(&self, _w: &World, _id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
            Err(NodeError::other("deployment failed"))
        }
        async fn delete(&self, _w: &World, _id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
            Ok(())
        }
    }
    let mut td2 = td;
    td2.spec = json!({"image": "v2"});
    let g2: Graph<World> = Graph::new(vec![td2.boxed(), Box::new(FailingUpdate)]).unwrap();
    let out = apply(&w, &g2, Some(&g1), first.clone(), &none(), &opts()).await;
    assert!(!out.ok());
    // Both revisions exist and both are in the record.
    assert_eq!(out.record.as_map().get("td.superseded.1").map(String::as_str), first.get("td"));
    assert!(w.exists(first.get("td").unwrap()) && w.exists(out.record.get("td").unwrap()));
    // The next plan wants to delete the superseded one.
    let p = plan(&g2, Some(&g2), &out.record, &none());
    assert!(p.delete.contains("td.superseded.1"));
}

#[tokio::test]
async fn refresh_finds_deleted_and_drifted_children_and_apply_repairs_only_them() {
    let w = World::default();
    let mut log = t("log", &[]);
    log.planned = true;
    let g = graph(vec![log, t("td", &["log"]), t("svc", &["td"]), t("sg", &[])]);
    let first = apply(&w, &g, None, Record::new(), &none(), &opts()).await.record;

    // Out of band: the log group is deleted, the security group changed.
    w.objects.lock().unwrap().remove(first.get("log").unwrap());
    w.drifted.lock().unwrap().insert("sg".into());
    let r = refresh(&w, &g, first.clone(), &opts()).await;
    assert!(r.diags.is_empty());
    assert_eq!(r.record.get("log"), None);
    assert!(r.drift["log"].contains("deleted outside Terraform"));
    assert_eq!(r.drift["sg"], "sg changed");

    let drifted: BTreeSet<String> = r.drift.keys().cloned().collect();
    let p = plan(&g, Some(&g), &r.record, &drifted);
    assert_eq!(p.create, ["log".to_string()].into());
    assert_eq!(p.update, ["sg".to_string()].into(), "a recreated child with a known identity leaves its dependents alone");

    let out = apply(&w, &g, Some(&g), r.record, &drifted, &opts()).await;
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
    let first = apply(&w, &g1, None, Record::new(), &none(), &opts()).await.record;
    let mut tg = t("tg", &[]);
    tg.wanted = false;
    let mut rule = t("rule", &["tg"]);
    rule.wanted = false;
    let mut svc = t("svc", &["rule"]);
    svc.spec = json!({"lb": false});
    let g2 = graph(vec![tg, rule, svc]);
    let p = plan(&g2, Some(&g1), &first, &none());
    assert_eq!(p.delete, ["rule".to_string(), "tg".to_string()].into());
    let out = apply(&w, &g2, Some(&g1), first.clone(), &none(), &opts()).await;
    assert!(out.ok(), "{}", out.diags);
    assert_eq!(out.record.live_keys().collect::<Vec<_>>(), vec!["svc"]);
    assert!(w.pos("end update svc") < w.pos(&format!("start delete {}", first.get("rule").unwrap())));
    assert!(w.pos(&format!("end delete {}", first.get("rule").unwrap())) < w.pos(&format!("start delete {}", first.get("tg").unwrap())));
}

#[tokio::test]
async fn cancellation_stops_between_steps() {
    let w = World::default();
    let o = opts();
    let mut a = t("a", &[]);
    a.cancel_on_create = Some(o.cancel.clone());
    let g = graph(vec![a, t("b", &["a"])]);
    let out = apply(&w, &g, None, Record::new(), &none(), &o).await;
    assert!(!out.ok());
    assert!(out.diags.to_string().contains("Operation cancelled"));
    assert_eq!(out.record.live_keys().collect::<Vec<_>>(), vec!["a"], "the step in flight finishes and is recorded");
    assert_eq!(w.count(), 1);

    // Cancelled before anything: nothing happens.
    let w = World::default();
    let o = opts();
    o.cancel.cancel();
    let out = apply(&w, &graph(vec![t("a", &[])]), None, Record::new(), &none(), &o).await;
    assert!(!out.ok() && out.record.is_empty() && w.count() == 0);
}

#[tokio::test]
async fn deadline_stops_scheduling() {
    let w = World::default();
    let mut o = opts();
    o.deadline = std::time::Instant::now();
    let out = apply(&w, &graph(vec![t("a", &[])]), None, Record::new(), &none(), &o).await;
    assert!(out.diags.to_string().contains("timed out"));
    assert_eq!(w.count(), 0);
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
fn records_round_trip_and_track_superseded_entries() {
    let mut r = Record::new();
    r.set("td", "arn:1");
    r.push_superseded("td", "arn:0");
    r.push_superseded("td", "arn:-1");
    assert!(r.has_superseded());
    let back = Record::from_value(&r.to_value());
    assert_eq!(back, r);
    assert_eq!(back.live_keys().collect::<Vec<_>>(), vec!["td"]);
    let keys: Vec<&str> = back.entries().map(|(_, k, _)| k).collect();
    assert_eq!(keys, vec!["td", "td", "td"]);
    assert!(back.as_map().contains_key("td.superseded.2"));
}

#[test]
fn owner_tags_win_over_user_tags() {
    let o = Owner::new("cxflow_x", "c/s");
    let defaults: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
    let own: BTreeMap<String, String> = [("team".to_string(), "b".to_string()), (OWNER_TAG.to_string(), "evil".to_string())].into();
    let t = o.child_tags(&defaults, &own);
    assert_eq!(t["team"], "b");
    assert_eq!(t[OWNER_TAG], "cxflow_x/c/s");
    assert_eq!(o.check([(OWNER_TAG, "cxflow_x/c/s")]), Ownership::Ours);
    assert_eq!(o.check([("x", "y")]), Ownership::Untagged);
    assert!(matches!(o.check([(OWNER_TAG, "other")]).into_found("i", "thing"), Found::Foreign(m) if m.contains("belongs to other")));
}

#[test]
fn bounded_names_are_short_stable_and_clean() {
    let long = "a".repeat(300);
    let n = names::bounded(&long, "seed", "", 32, |c| c.is_ascii_alphanumeric() || c == '-');
    assert_eq!(n.len(), 32);
    assert_eq!(n, names::bounded(&long, "seed", "", 32, |c| c.is_ascii_alphanumeric() || c == '-'));
    assert_ne!(n, names::bounded(&long, "seed2", "", 32, |c| c.is_ascii_alphanumeric() || c == '-'));
    let n = names::bounded("my__svc_", "s", "-exec", 64, |c| c.is_ascii_alphanumeric() || c == '-');
    assert!(n.starts_with("my-svc-") && n.ends_with("-exec") && !n.contains("--"), "{n}");
    assert_eq!(names::partition("cn-north-1"), "aws-cn");
}
