//! Running a graph: apply (claim check, create/adopt/update, clean-up,
//! lease release), destroy, refresh (observe and diff) and plan.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::{Claim, Cx, Found, Graph, Identity, LEASE_TAG, Lease, Made, Node, NodeError, NodeErrorKind, OWNER_TAG, Owner, Record, Spec, Tags, checked, entry_key};
use crate::framework::{Diagnostic, Diags};

/// Finds (reads) run wider than writes.
const FIND_PARALLEL: usize = 16;
/// An operation deadline far enough away to mean "no limit" (an `Instant` cannot hold every duration).
const FAR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Options for one engine run.
#[derive(Clone, Debug)]
pub struct RunOpts {
    /// Terraform's StopProvider: checked between steps and passed to every wait.
    pub cancel: CancellationToken,
    /// When the whole operation must be over (waits use the time left).
    pub deadline: Instant,
    /// How many children may be worked on at once.
    pub max_parallel: usize,
    /// The composite, for messages about objects it does not own.
    pub owner: Owner,
    /// The command that imports the composite, for those messages.
    pub import_hint: String,
    /// The lease this run tags what it creates with.
    pub lease: Lease,
}

impl RunOpts {
    pub fn new(owner: Owner, cancel: CancellationToken, timeout: Duration) -> RunOpts {
        let now = Instant::now();
        let deadline = now.checked_add(timeout.min(FAR)).unwrap_or(now);
        RunOpts { cancel, deadline, max_parallel: 8, owner, import_hint: String::new(), lease: Lease::new(timeout.min(FAR)) }
    }
    pub fn import_hint(mut self, hint: impl Into<String>) -> RunOpts {
        self.import_hint = hint.into();
        self
    }
    fn cx(&self, deps: BTreeMap<String, Identity>) -> Cx<'_> {
        Cx { deps, cancel: &self.cancel, deadline: self.deadline, lease: &self.lease }
    }
}

/// What the engine did to a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    /// Took over an object an interrupted create of this composite left (then updated it).
    Adopt,
    Update,
    /// Made a new object in place of the old one (which is deleted once all is done).
    Replace,
    /// Nothing to do.
    Keep,
    Delete,
    /// Deleted an identity superseded by a replacement.
    Retire,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Adopt => "adopt",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Delete | Action::Retire => "delete",
        }
    }
}

/// The result of a run: the record of what exists now (always truthful, also
/// after a failure), what was done, and any errors.
#[derive(Debug, Default)]
pub struct Outcome {
    pub record: Record,
    /// Outputs of children created or updated in this run.
    pub outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// What each child touched in this run now is (its desired spec, or what
    /// was observed when it was adopted), for the next run's base.
    pub known: BTreeMap<String, Spec>,
    /// (entry, action) in the order the actions finished.
    pub actions: Vec<(String, Action)>,
    /// Wanted children an apply stopped before finishing (failed, or never
    /// reached): their desired configuration may not be in place.
    pub unfinished: BTreeSet<String>,
    pub diags: Diags,
    /// Outbound calls the children of this run made, as counted by [`crate::calls`].
    pub calls: u32,
    /// The longest chain of those calls that had to run one after another:
    /// each child's calls in sequence, children after their dependencies,
    /// then the release of the creation leases. Times a per-call latency,
    /// it is the least time the run could take.
    pub critical_path_calls: u32,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        !self.diags.has_errors()
    }
    /// The action taken for `key` (the last one), if any.
    pub fn action(&self, key: &str) -> Option<Action> {
        self.actions.iter().rev().find(|(k, _)| k == key).map(|(_, a)| *a)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Pending,
    Running,
    Done,
    Failed,
}

type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// What a child's work in an apply came to, with the calls it made.
type Worked = ((usize, Action, Res), u32);
/// A find, with the calls it made.
type Looked = (usize, (Result<Found, NodeError>, u32));
/// A release, with the calls it made.
type Released = (usize, (Result<(), NodeError>, u32));
/// An observation of the `n`th recorded entry.
type Seen = (usize, Result<Option<Spec>, NodeError>);

/// What the user may rely on after an interrupted apply. Terraform marks a
/// resource whose first create failed as tainted, so its next apply replaces
/// it (deleting the recorded children first); an update continues.
const RECORDED_SO_FAR: &str = "Children created so far are recorded in state, and `terraform destroy` removes them. After a failed first create Terraform marks the resource tainted and the next apply replaces it; after a failed update the next apply continues from there.";

fn stop_reason(opts: &RunOpts) -> Option<Diagnostic> {
    if opts.cancel.is_cancelled() {
        return Some(Diagnostic::error("Operation cancelled", format!("Terraform asked the provider to stop. {RECORDED_SO_FAR}")));
    }
    if Instant::now() >= opts.deadline {
        return Some(Diagnostic::error(
            "Operation timed out",
            format!("The time allowed for this operation (see the `timeouts` block) ran out before every child was done. {RECORDED_SO_FAR}"),
        ));
    }
    None
}

/// How an object a node found may be treated.
enum Verdict {
    Absent,
    /// Ours to take over: left by an interrupted create, or by this very apply.
    Adopt(Identity),
    /// Someone else's (why).
    Conflict(String),
}

fn judge(found: Found, owner: &Owner, lease: &Lease, what: &str) -> Verdict {
    match found {
        Found::None => Verdict::Absent,
        Found::Derived(id) => Verdict::Adopt(id),
        Found::Foreign(why) => Verdict::Conflict(why),
        Found::Tagged(id, tags) => match tags.get(OWNER_TAG) {
            None => Verdict::Conflict(format!("{what} exists but has no {OWNER_TAG} tag")),
            Some(o) if o != owner.tag_value() => Verdict::Conflict(format!("{what} exists and belongs to {o} (tag {OWNER_TAG})")),
            Some(_) => match lease.judge(tags.get(LEASE_TAG).map(String::as_str)) {
                Claim::Mine | Claim::Abandoned => Verdict::Adopt(id),
                Claim::Live(why) => Verdict::Conflict(format!("{what} is being created by {owner} elsewhere: {why}")),
                Claim::Recorded => Verdict::Conflict(format!("{what} belongs to a {owner} that another Terraform state has recorded")),
            },
        },
    }
}

fn conflict_diag(what: &str, why: &str, opts: &RunOpts) -> Diagnostic {
    let mut detail = format!("{why}. This resource will not take it over or change it.");
    if !opts.import_hint.is_empty() {
        detail.push_str(&format!(
            " If that deployment is the one this configuration should manage, bring it under this state with `{}` (and remove it from the other state)",
            opts.import_hint
        ));
        detail.push_str("; otherwise choose another name.");
    } else {
        detail.push_str(" Choose another name, or delete the existing object.");
    }
    Diagnostic::error(format!("{what} already exists"), detail)
}

fn node_diag<E: ?Sized + Sync>(node: &dyn Node<E>, action: Action, e: &NodeError, opts: &RunOpts) -> Diagnostic {
    match &e.kind {
        NodeErrorKind::Conflict(why) => conflict_diag(&node.describe(), why, opts),
        _ => {
            let mut detail = e.to_string();
            if matches!(action, Action::Create | Action::Adopt | Action::Update | Action::Replace) {
                detail.push_str(&format!(". {RECORDED_SO_FAR}"));
            }
            Diagnostic::error(format!("Could not {} {}", action.verb(), node.describe()), detail)
        }
    }
}

/// Identities of node `i`'s dependencies, from the record.
fn dep_ids<E: ?Sized + Sync>(graph: &Graph<E>, i: usize, record: &Record) -> BTreeMap<String, Identity> {
    graph.deps[i]
        .iter()
        .filter_map(|&d| {
            let k = graph.nodes[d].key();
            record.get(k).map(|id| (k.to_string(), id))
        })
        .collect()
}

/// What AWS has for a child, as far as we know without asking: the spec the
/// last apply set (from the prior configuration's graph) overlaid with what
/// the last refresh observed.
fn base_of<E: ?Sized + Sync>(key: &str, prior: Option<&Graph<E>>, known: &BTreeMap<String, Spec>) -> Option<Spec> {
    let mut base = prior.and_then(|p| p.node(key)).filter(|n| n.wanted()).map(|n| n.spec());
    if let Some(obs) = known.get(key) {
        let b = base.get_or_insert_with(Spec::new);
        for (k, v) in obs {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// [`relink`] on a spec: `current` maps dependency keys to the identities
/// they have now.
fn relink_spec(base: &mut Spec, desired: &Spec, current: &BTreeMap<String, String>) {
    if current.is_empty() {
        return;
    }
    for (k, d) in desired {
        if let Some(b) = base.get_mut(k) {
            relink(b, d, current);
        }
    }
}

/// `base` with references to children that got a new identity in this run
/// written as their previous identity: the fields naming them then differ
/// from the desired spec, and an update sends them (and knows what to
/// remove, a rule naming the old security group, say).
fn rebase(v: &mut serde_json::Value, replaced: &BTreeMap<String, String>) {
    match v {
        serde_json::Value::String(s) => {
            for (k, old) in replaced {
                let r = format!("<{k}>");
                if s.contains(&r) {
                    *s = s.replace(&r, old);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| rebase(x, replaced)),
        serde_json::Value::Object(m) => m.values_mut().for_each(|x| rebase(x, replaced)),
        _ => {}
    }
}

/// The inverse of `rebase`: where the desired spec names a dependency
/// (`<dep>`, also inside longer strings such as policy documents) and the
/// base holds exactly that with the dependency's current identity written
/// out (it was observed while the dependency was missing from the record,
/// e.g. deleted out of band and recreated under the same name), the base
/// names the dependency again. Literals the desired spec itself holds are
/// left alone.
fn relink(base: &mut serde_json::Value, desired: &serde_json::Value, current: &BTreeMap<String, String>) {
    use serde_json::Value;
    match (base, desired) {
        (Value::Object(b), Value::Object(d)) => {
            for (k, dv) in d {
                if let Some(bv) = b.get_mut(k) {
                    relink(bv, dv, current);
                }
            }
        }
        (Value::Array(b), Value::Array(d)) if b.len() == d.len() => b.iter_mut().zip(d).for_each(|(bv, dv)| relink(bv, dv, current)),
        (Value::String(b), Value::String(d)) if d.contains('<') => {
            let mut written = Value::String(d.clone());
            rebase(&mut written, current);
            if written.as_str() == Some(b.as_str()) {
                *b = d.clone();
            }
        }
        _ => {}
    }
}

/// Drop a released creation lease from an observed spec's tags: it is the
/// provider's own bookkeeping, not drift. A lease that was never released
/// stays (the next apply releases it).
fn strip_recorded(s: &mut Spec) {
    if let Some(serde_json::Value::Object(t)) = s.get_mut("tags") {
        if t.get(LEASE_TAG).and_then(|v| v.as_str()).is_some_and(Lease::is_recorded) {
            t.remove(LEASE_TAG);
        }
    }
}

/// Whether a spec's tags carry a lease that was never released.
fn live_lease(s: &Spec) -> bool {
    s.get("tags").and_then(|t| t.get(LEASE_TAG)).and_then(|v| v.as_str()).is_some_and(|v| !Lease::is_recorded(v))
}

/// Fields of `desired` that differ from `base`, for fields `base` has.
fn differing(desired: &Spec, base: &Spec) -> Vec<String> {
    desired.iter().filter(|(k, v)| base.get(*k).is_some_and(|b| b != comparable(k, v, b))).map(|(k, _)| k.clone()).collect()
}

/// The desired value of `field` as it is compared with an observed one. An
/// object with no ownership tag at all is one import adopted (a service made
/// by hand, and the task definition it runs): its tags are whatever it was
/// made with, so they are not drift; the first apply that changes the object
/// writes the configuration's tags, ownership tags included (the tag update is
/// computed from the observed tags), and from then on they are compared.
fn comparable<'a>(field: &str, want: &'a serde_json::Value, have: &'a serde_json::Value) -> &'a serde_json::Value {
    match (want, have) {
        (serde_json::Value::Object(w), serde_json::Value::Object(h)) if field == "tags" && !h.contains_key(OWNER_TAG) && w.contains_key(OWNER_TAG) => have,
        _ => want,
    }
}

/// Whether going from `base` to the node's spec needs a new object.
fn needs_replacement<E: ?Sized + Sync>(node: &dyn Node<E>, base: &Spec) -> bool {
    let fields = node.replaced_by();
    let changed = differing(&node.spec(), base);
    changed.iter().any(|f| fields.contains(&f.as_str()) || (fields.contains(&"*") && f != "tags"))
}

/// Observed values that differ from the configuration, one message per
/// field: `service.desired_count = 3 outside Terraform (configuration: 2)`.
pub fn field_drift(key: &str, desired: &Spec, observed: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    for (field, want) in desired {
        let Some(have) = observed.get(field) else { continue };
        let want = comparable(field, want, have);
        if have == want {
            continue;
        }
        match (have, want) {
            (serde_json::Value::Object(h), serde_json::Value::Object(w)) => {
                let keys: BTreeSet<&String> = h.keys().chain(w.keys()).collect();
                for k in keys {
                    let (hv, wv) = (h.get(k), w.get(k));
                    if hv != wv {
                        out.push(format!("{key}.{field}[{k:?}] = {} outside Terraform (configuration: {})", show(hv), show(wv)));
                    }
                }
            }
            _ => out.push(format!("{key}.{field} = {} outside Terraform (configuration: {})", show(Some(have)), show(Some(want)))),
        }
    }
    out
}

fn show(v: Option<&serde_json::Value>) -> String {
    let s = match v {
        None => "absent".to_string(),
        Some(serde_json::Value::String(s)) if s.is_empty() => "\"\"".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    if s.chars().count() > 120 { format!("{}…", s.chars().take(117).collect::<String>()) } else { s }
}

type Res = Result<(Made, Action, Option<Spec>), NodeError>;

/// Create a child, or take over what an interrupted create of this composite
/// left under its name; a create whose name is taken (its own earlier
/// attempt whose answer was lost) looks again and adopts what it finds.
async fn create_or_adopt<E: ?Sized + Sync>(node: &dyn Node<E>, env: &E, found: Option<Found>, cx: &Cx<'_>, opts: &RunOpts) -> Res {
    let found = match found {
        Some(f) => f,
        None => node.find(env, cx).await?,
    };
    let verdict = judge(found, &opts.owner, &opts.lease, &node.describe());
    let id = match verdict {
        Verdict::Conflict(why) => return Err(NodeError { kind: NodeErrorKind::Conflict(why), id: None }),
        Verdict::Adopt(id) => id,
        Verdict::Absent => match node.create(env, cx).await {
            Ok(m) => return checked(m, &node.describe()).map(|m| (m, Action::Create, None)),
            Err(e) if e.is_already_exists() => match judge(node.find(env, cx).await?, &opts.owner, &opts.lease, &node.describe()) {
                Verdict::Adopt(id) => id,
                Verdict::Conflict(why) => return Err(NodeError { kind: NodeErrorKind::Conflict(why), id: None }),
                Verdict::Absent => return Err(e),
            },
            Err(e) => return Err(e),
        },
    };
    tracing::info!(target: "cxflow::engine", child = node.key(), id = id.id.as_str(), "adopting what an interrupted create of this resource left");
    let Some(observed) = node.observe(env, &id, cx).await.map_err(|e| e.with_identity(id.clone()))? else {
        let m = node.create(env, cx).await?;
        return checked(m, &node.describe()).map(|m| (m, Action::Create, None));
    };
    match node.update(env, &id, &observed, cx).await {
        Ok(m) => checked(m, &node.describe()).map(|m| (m, Action::Adopt, Some(observed))),
        Err(e) if e.id.is_none() => Err(e.with_identity(id)),
        Err(e) => Err(e),
    }
}

/// Bring a recorded child to its spec: in place, or with a new object when a
/// field it cannot change in place differs.
async fn converge<E: ?Sized + Sync>(node: &dyn Node<E>, env: &E, id: &Identity, base: Option<Spec>, cx: &Cx<'_>) -> Res {
    let base = match base {
        Some(b) => b,
        None => match node.observe(env, id, cx).await? {
            Some(b) => b,
            None => return node.create(env, cx).await.and_then(|m| checked(m, &node.describe())).map(|m| (m, Action::Create, None)),
        },
    };
    if needs_replacement(node, &base) {
        return node.create(env, cx).await.and_then(|m| checked(m, &node.describe())).map(|m| (m, Action::Replace, None));
    }
    node.update(env, id, &base, cx).await.and_then(|m| checked(m, &node.describe())).map(|m| (m, Action::Update, None))
}

/// Ask every child the record lacks whether its name is taken, before the
/// first write: an apply that would collide with another state's composite
/// fails having changed nothing. Returns what the finds saw (reused by the
/// apply) and the calls each made.
async fn claim_check<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, record: &Record, opts: &RunOpts) -> (BTreeMap<usize, Found>, Vec<u32>, Vec<(String, String)>) {
    let todo: Vec<usize> =
        graph.order.iter().copied().filter(|&i| graph.nodes[i].wanted() && !record.contains(graph.nodes[i].key()) && graph.nodes[i].find_deps().is_empty()).collect();
    let mut calls = vec![0u32; graph.len()];
    let mut found = BTreeMap::new();
    let mut conflicts = Vec::new();
    let results: Vec<Looked> = futures::stream::iter(todo)
        .map(|i| async move {
            let node = graph.nodes[i].as_ref();
            let cx = opts.cx(BTreeMap::new());
            (i, crate::calls::counted(node.find(env, &cx)).await)
        })
        .buffer_unordered(FIND_PARALLEL.max(opts.max_parallel))
        .collect()
        .await;
    for (i, (res, n)) in results {
        calls[i] = n;
        let node = graph.nodes[i].as_ref();
        match res {
            Ok(f) => {
                if let Verdict::Conflict(why) = judge(f.clone(), &opts.owner, &opts.lease, &node.describe()) {
                    conflicts.push((node.describe(), why));
                }
                found.insert(i, f);
            }
            // A failed look is retried by the apply itself, which reports it.
            Err(e) => tracing::warn!(target: "cxflow::engine", child = node.key(), error = %e, "could not check whether the name is taken"),
        }
    }
    conflicts.sort();
    (found, calls, conflicts)
}

/// Create or update every wanted child (dependencies first, independent ones
/// in parallel), then delete unwanted and superseded ones, then remove the
/// creation lease from everything this run created or adopted.
///
/// `prior` is the graph of the prior state (None on create); `known` what the
/// last refresh observed; `drifted` the children refresh found changed.
pub async fn apply<E: ?Sized + Sync>(
    env: &E,
    graph: &Graph<E>,
    prior: Option<&Graph<E>>,
    record: Record,
    known: &BTreeMap<String, Spec>,
    drifted: &BTreeSet<String>,
    opts: &RunOpts,
) -> Outcome {
    let mut out = Outcome { record, ..Default::default() };
    let n = graph.len();
    let (mut found, mut calls, conflicts) = claim_check(env, graph, &out.record, opts).await;
    if let Some((what, why)) = conflicts.first() {
        let mut why = why.clone();
        if conflicts.len() > 1 {
            why.push_str(&format!(" ({} more of its objects exist: {})", conflicts.len() - 1, conflicts[1..].iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", ")));
        }
        out.diags.push(conflict_diag(what, &why, opts));
        out.unfinished = graph.wanted_keys().into_iter().map(str::to_string).collect();
        return out;
    }
    let mut st = vec![St::Pending; n];
    let mut changed = vec![false; n];
    // Key → the identity it had before this run gave it a new one.
    let mut replaced: BTreeMap<String, String> = BTreeMap::new();
    // Recorded children that still carry a lease an earlier apply failed to release.
    let mut unreleased: BTreeSet<usize> = BTreeSet::new();
    let mut leased: Vec<usize> = Vec::new();
    let mut stopped = false;
    let mut futs: FuturesUnordered<Fut<'_, Worked>> = FuturesUnordered::new();
    for (i, s) in st.iter_mut().enumerate() {
        if !graph.nodes[i].wanted() {
            *s = St::Done;
        }
    }

    loop {
        if !stopped {
            if let Some(d) = stop_reason(opts) {
                tracing::warn!(target: "cxflow::engine", owner = opts.owner.tag_value(), reason = d.summary.as_str(), "stopping before the remaining children");
                out.diags.push(d);
                stopped = true;
            }
        }
        let mut progressed = !stopped;
        while progressed {
            progressed = false;
            for &i in &graph.order {
                if st[i] != St::Pending || futs.len() >= opts.max_parallel.max(1) || graph.deps[i].iter().any(|&d| st[d] != St::Done) {
                    continue;
                }
                let node = graph.nodes[i].as_ref();
                let key = node.key().to_string();
                let existing = out.record.get(&key);
                let mut base = base_of(&key, prior, known);
                if let Some(b) = base.as_mut() {
                    let now: BTreeMap<String, String> = graph.deps[i]
                        .iter()
                        .filter(|&&d| !replaced.contains_key(graph.nodes[d].key()))
                        .filter_map(|&d| out.record.get(graph.nodes[d].key()).map(|id| (graph.nodes[d].key().to_string(), id.id.clone())))
                        .collect();
                    relink_spec(b, &node.spec(), &now);
                    let olds: BTreeMap<String, String> =
                        graph.deps[i].iter().filter_map(|&d| replaced.get(graph.nodes[d].key()).map(|o| (graph.nodes[d].key().to_string(), o.clone()))).collect();
                    if !olds.is_empty() {
                        let mut v = serde_json::Value::Object(std::mem::take(b));
                        rebase(&mut v, &olds);
                        if let serde_json::Value::Object(m) = v {
                            *b = m;
                        }
                    }
                }
                let action = match &existing {
                    None => Action::Create,
                    Some(_) => {
                        let dep_changed = graph.deps[i].iter().any(|&d| changed[d]);
                        let spec_changed = match (prior.and_then(|p| p.node(&key)), &base) {
                            (Some(old), Some(b)) => !old.wanted() || old.spec() != node.spec() || !differing(&node.spec(), b).is_empty(),
                            _ => true,
                        };
                        if dep_changed || drifted.contains(&key) || spec_changed { Action::Update } else { Action::Keep }
                    }
                };
                if action == Action::Keep {
                    st[i] = St::Done;
                    out.actions.push((key, Action::Keep));
                    progressed = true;
                    continue;
                }
                st[i] = St::Running;
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = key.as_str(), action = action.verb(), "starting");
                // A lease an earlier apply failed to release: seen in the observed tags,
                // or, for kinds whose observation has no tags, known from the child being
                // left unfinished (release is one idempotent tagging call).
                if base.as_ref().is_some_and(live_lease) || (drifted.contains(&key) && base.as_ref().is_none_or(|b| !b.contains_key("tags"))) {
                    unreleased.insert(i);
                }
                let cx = opts.cx(dep_ids(graph, i, &out.record));
                let pre = found.remove(&i);
                futs.push(Box::pin(crate::calls::counted(async move {
                    let r = match existing {
                        Some(id) => converge(node, env, &id, base, &cx).await,
                        None => create_or_adopt(node, env, pre, &cx, opts).await,
                    };
                    (i, action, r)
                })));
            }
        }
        let Some(((i, action, res), made_calls)) = futs.next().await else { break };
        calls[i] += made_calls;
        let node = graph.nodes[i].as_ref();
        let key = node.key().to_string();
        let prev = out.record.get(&key);
        let new_id = match &res {
            Ok((m, _, _)) => Some(m.id.clone()),
            Err(e) => e.id.as_deref().cloned(),
        };
        if let Some(id) = &new_id {
            if let Some(old) = prev.as_ref().filter(|o| *o != id) {
                out.record.push_superseded(&key, old);
            }
            changed[i] = match &prev {
                Some(p) => p != id,
                None => node.planned_identity().as_ref() != Some(id),
            };
            if let Some(p) = prev.as_ref().filter(|p| *p != id) {
                replaced.insert(key.clone(), p.id.clone());
            }
            out.record.set(&key, id);
            // What this run created or adopted carries a lease until the state is recorded.
            let created = match &res {
                Ok((_, a, _)) => matches!(a, Action::Create | Action::Adopt | Action::Replace),
                Err(_) => prev.as_ref() != Some(id),
            };
            if created || unreleased.contains(&i) {
                leased.push(i);
            }
        }
        match res {
            Ok((made, done_as, _observed)) => {
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = key.as_str(), action = done_as.verb(), id = made.id.id.as_str(), calls = calls[i], "done");
                out.outputs.insert(key.clone(), made.outputs);
                out.known.insert(key.clone(), node.spec());
                out.actions.push((key, done_as));
                st[i] = St::Done;
            }
            Err(e) => {
                tracing::warn!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = key.as_str(), action = action.verb(), error = %e, "failed");
                out.diags.push(node_diag(node, action, &e, opts));
                st[i] = St::Failed;
                stopped = true;
            }
        }
    }

    out.unfinished = (0..n).filter(|&i| st[i] != St::Done).map(|i| graph.nodes[i].key().to_string()).collect();
    if !stopped && out.unfinished.is_empty() {
        // Everything wanted is in place: delete what is superseded or no longer wanted.
        let doomed: Vec<String> =
            out.record.entries().into_iter().filter(|(entry, key, _)| graph.idx(key).is_some_and(|i| entry != key || !graph.nodes[i].wanted())).map(|(e, _, _)| e).collect();
        if !doomed.is_empty() {
            delete_entries(env, graph, &mut out, doomed, opts).await;
        }
    }
    let released = release(env, graph, &mut out, &leased, opts).await;
    out.calls = calls.iter().sum::<u32>() + released;
    out.critical_path_calls = graph.longest_weighted_chain(&calls) + u32::from(released > 0);
    tracing::info!(
        target: "cxflow::engine",
        owner = opts.owner.tag_value(),
        calls = out.calls,
        critical_path_calls = out.critical_path_calls,
        unfinished = out.unfinished.len(),
        "children applied"
    );
    out
}

/// Remove the creation lease from the children `leased` (those still
/// recorded): from now on they are recorded in a state and no other apply
/// takes them over. Returns the calls made.
async fn release<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, out: &mut Outcome, leased: &[usize], opts: &RunOpts) -> u32 {
    let todo: Vec<(usize, Identity)> = leased.iter().filter_map(|&i| out.record.get(graph.nodes[i].key()).map(|id| (i, id))).collect();
    let record = out.record.clone();
    let todo_len = todo.len();
    // A cancelled or timed-out apply still releases: its state is recorded all the same.
    let cancel = CancellationToken::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let results: Vec<Released> = futures::stream::iter(todo)
        .map(|(i, id)| {
            let deps = dep_ids(graph, i, &record);
            let cancel = &cancel;
            async move {
                let cx = Cx { deps, cancel, deadline, lease: &opts.lease };
                (i, crate::calls::counted(graph.nodes[i].release(env, &id, &cx)).await)
            }
        })
        // All at once: the critical path counts the release as one round of calls, and each
        // release is one tagging call (the process-wide in-flight bound, aws::inflight, keeps
        // a large composite from opening a connection per child).
        .buffer_unordered(todo_len.max(1))
        .collect()
        .await;
    let mut calls = 0;
    for (i, (res, n)) in results {
        calls += n;
        if let Err(e) = res {
            let node = graph.nodes[i].as_ref();
            tracing::warn!(target: "cxflow::engine", child = node.key(), error = %e, "could not remove the creation lease");
            out.diags.push(Diagnostic::error(
                format!("Could not release {}", node.describe()),
                format!("Removing its creation lease tag ({LEASE_TAG}) failed: {e}. Until it is removed, another state could take the object over; the next apply retries."),
            ));
            out.unfinished.insert(node.key().to_string());
        }
    }
    calls
}

/// Delete every recorded child, dependents first.
pub async fn destroy<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, record: Record, opts: &RunOpts) -> Outcome {
    let mut out = Outcome { record, ..Default::default() };
    let mut doomed = Vec::new();
    for (entry, key, _) in out.record.entries() {
        if graph.idx(&key).is_some() {
            doomed.push(entry);
        } else {
            out.diags.push(Diagnostic::error(
                "Unknown child in state",
                format!("State records a child {key:?} that this provider version does not know how to delete; it was left in place. Use the provider version that created it to destroy."),
            ));
        }
    }
    delete_entries(env, graph, &mut out, doomed, opts).await;
    out
}

/// Delete the given record entries: an entry waits while another entry in the
/// set belongs to a node that depends on its node.
async fn delete_entries<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, out: &mut Outcome, entries: Vec<String>, opts: &RunOpts) {
    let idx: Vec<usize> = entries.iter().map(|e| graph.idx(entry_key(e)).expect("entry of a known node")).collect();
    let m = entries.len();
    let mut st = vec![St::Pending; m];
    let mut stopped = false;
    let mut futs: FuturesUnordered<Fut<'_, (usize, Result<(), NodeError>)>> = FuturesUnordered::new();
    loop {
        if !stopped {
            if let Some(d) = stop_reason(opts) {
                out.diags.push(d);
                stopped = true;
            }
        }
        if !stopped {
            for a in 0..m {
                if st[a] != St::Pending || futs.len() >= opts.max_parallel.max(1) {
                    continue;
                }
                // Blocked while a not-yet-deleted entry's node depends on ours.
                let blocked = (0..m).any(|b| b != a && st[b] != St::Done && idx[b] != idx[a] && graph.depends_on(idx[b], idx[a]));
                if blocked {
                    continue;
                }
                let Some(id) = out.record.identity(&entries[a]) else {
                    st[a] = St::Done;
                    continue;
                };
                st[a] = St::Running;
                let node = graph.nodes[idx[a]].as_ref();
                let cx = opts.cx(dep_ids(graph, idx[a], &out.record));
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = entries[a].as_str(), id = id.id.as_str(), "deleting");
                futs.push(Box::pin(async move { (a, node.delete(env, &id, &cx).await) }));
            }
        }
        let Some((a, res)) = futs.next().await else { break };
        let node = graph.nodes[idx[a]].as_ref();
        let action = if entries[a] != node.key() { Action::Retire } else { Action::Delete };
        match res {
            Ok(()) => {
                out.record.remove(&entries[a]);
                out.actions.push((entries[a].clone(), action));
                st[a] = St::Done;
            }
            Err(e) => {
                tracing::warn!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = entries[a].as_str(), error = %e, "delete failed");
                out.diags.push(node_diag(node, action, &e, opts));
                st[a] = St::Failed;
                stopped = true;
            }
        }
    }
}

/// The result of [`refresh`].
#[derive(Debug, Default)]
pub struct Refreshed {
    /// The record without children that no longer exist.
    pub record: Record,
    /// Wanted children that are gone or differ from the configuration: key → what differs.
    pub drift: BTreeMap<String, String>,
    /// What each live child looks like now.
    pub observed: BTreeMap<String, Spec>,
    pub diags: Diags,
}

/// Observe every recorded child (in parallel) and compare with its spec.
pub async fn refresh<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, record: Record, opts: &RunOpts) -> Refreshed {
    let mut out = Refreshed { record: record.clone(), ..Default::default() };
    let todo: Vec<(String, usize, Identity)> = record.entries().into_iter().filter_map(|(e, k, id)| graph.idx(&k).map(|i| (e, i, id))).collect();
    let mut results: Vec<Seen> = Vec::new();
    {
        let mut futs: FuturesUnordered<Fut<'_, Seen>> = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while next < todo.len() && futs.len() < opts.max_parallel.max(1) {
                let (_, i, id) = &todo[next];
                let node = graph.nodes[*i].as_ref();
                let cx = opts.cx(dep_ids(graph, *i, &record));
                let t = next;
                futs.push(Box::pin(async move { (t, node.observe(env, id, &cx).await) }));
                next += 1;
            }
            let Some(r) = futs.next().await else { break };
            results.push(r);
        }
    }
    results.sort_by_key(|(t, _)| *t);
    for (t, res) in results {
        let (entry, i, id) = &todo[t];
        let node = graph.nodes[*i].as_ref();
        let live = entry == node.key();
        match res {
            Ok(None) => {
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = entry.as_str(), id = id.id.as_str(), "child no longer exists");
                out.record.remove(entry);
                if live && node.wanted() {
                    out.drift.insert(entry.clone(), "deleted outside Terraform; apply recreates it".to_string());
                }
            }
            Ok(Some(mut obs)) if live => {
                strip_recorded(&mut obs);
                if node.wanted() {
                    let diffs = field_drift(entry, &node.spec(), &obs);
                    if !diffs.is_empty() {
                        tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = entry.as_str(), drift = ?diffs, "child differs from configuration");
                        out.drift.insert(entry.clone(), diffs.join("; "));
                    }
                }
                out.observed.insert(entry.clone(), obs);
            }
            Ok(Some(_)) => {}
            Err(e) => out.diags.push(Diagnostic::error(format!("Could not read {}", node.describe()), e.to_string())),
        }
    }
    out
}

/// What an apply would do, predicted without any AWS call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanSummary {
    pub create: BTreeSet<String>,
    pub update: BTreeSet<String>,
    /// Record entries to delete (unwanted children, superseded identities).
    pub delete: BTreeSet<String>,
    /// Children whose identity after the apply is not known now.
    pub new_identity: BTreeSet<String>,
}

impl PlanSummary {
    /// Whether the record (the `children` map) will differ after the apply.
    pub fn changes_record(&self) -> bool {
        !self.create.is_empty() || !self.delete.is_empty() || !self.new_identity.is_empty()
    }
    pub fn is_noop(&self) -> bool {
        !self.changes_record() && self.update.is_empty()
    }
    /// Whether `key` is created or updated.
    pub fn touches(&self, key: &str) -> bool {
        self.create.contains(key) || self.update.contains(key)
    }
}

/// Predict an apply (see [`apply`] for the rules).
pub fn plan<E: ?Sized + Sync>(graph: &Graph<E>, prior: Option<&Graph<E>>, record: &Record, known: &BTreeMap<String, Spec>, drifted: &BTreeSet<String>) -> PlanSummary {
    let mut s = PlanSummary::default();
    for &i in &graph.order {
        let node = graph.nodes[i].as_ref();
        let key = node.key();
        if !node.wanted() {
            continue;
        }
        let dep_changes = graph.deps[i].iter().any(|&d| s.new_identity.contains(graph.nodes[d].key()));
        if !record.contains(key) {
            s.create.insert(key.to_string());
            if node.planned_identity().is_none() {
                s.new_identity.insert(key.to_string());
            }
            continue;
        }
        let mut base = base_of(key, prior, known);
        // As apply does: a dependency's identity observed as a literal is the dependency.
        if let Some(b) = base.as_mut() {
            let now: BTreeMap<String, String> = graph.deps[i]
                .iter()
                .filter(|&&d| !s.new_identity.contains(graph.nodes[d].key()))
                .filter_map(|&d| record.get(graph.nodes[d].key()).map(|id| (graph.nodes[d].key().to_string(), id.id.clone())))
                .collect();
            relink_spec(b, &node.spec(), &now);
        }
        let spec_changed = match (prior.and_then(|p| p.node(key)), &base) {
            (Some(old), Some(b)) => !old.wanted() || old.spec() != node.spec() || !differing(&node.spec(), b).is_empty(),
            _ => true,
        };
        if dep_changes || drifted.contains(key) || spec_changed {
            s.update.insert(key.to_string());
            let replaced = match &base {
                Some(b) => needs_replacement(node, b),
                None => !node.replaced_by().is_empty(),
            };
            if replaced {
                s.new_identity.insert(key.to_string());
            }
        }
    }
    for (entry, key, _) in record.entries() {
        if let Some(i) = graph.idx(&key) {
            if entry != key || !graph.nodes[i].wanted() {
                s.delete.insert(entry);
            }
        }
    }
    s
}

/// Tags as a spec value.
pub fn tags_json(t: &Tags) -> serde_json::Value {
    serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect())
}
