//! Running a graph: apply (create/adopt/update, then clean-up), destroy,
//! refresh and plan.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::{Cx, Found, Graph, Made, Node, NodeError, NodeErrorKind, OWNER_TAG, Observed, Owner, Record, entry_key};
use crate::framework::{Diagnostic, Diags};

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
}

impl RunOpts {
    pub fn new(owner: Owner, cancel: CancellationToken, timeout: Duration) -> RunOpts {
        RunOpts { cancel, deadline: Instant::now() + timeout, max_parallel: 8, owner, import_hint: String::new() }
    }
    pub fn import_hint(mut self, hint: impl Into<String>) -> RunOpts {
        self.import_hint = hint.into();
        self
    }
    fn cx(&self, deps: BTreeMap<String, String>) -> Cx<'_> {
        Cx { deps, cancel: &self.cancel, deadline: self.deadline }
    }
}

/// What the engine did to a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    /// Took over an existing object carrying our ownership tag (then updated it).
    Adopt,
    Update,
    /// Nothing to do.
    Keep,
    Delete,
    /// Deleted an identity superseded by an update.
    Retire,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Adopt => "adopt",
            Action::Update => "update",
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
    /// (entry, action) in the order the actions finished.
    pub actions: Vec<(String, Action)>,
    /// Wanted children an apply stopped before finishing (failed, or never
    /// reached): their desired configuration may not be in place. Composites
    /// record them as drift so the next plan retries them.
    pub unfinished: BTreeSet<String>,
    pub diags: Diags,
    /// Outbound calls the creates and updates of this run made, as counted
    /// by [`crate::calls`] (the AWS clients count each request attempt).
    pub calls: u32,
    /// The longest chain of those calls that had to run one after another:
    /// each child's calls in sequence, children after their dependencies.
    /// Times a per-call latency, it is the least time the run could take.
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

fn stop_reason(opts: &RunOpts) -> Option<Diagnostic> {
    if opts.cancel.is_cancelled() {
        return Some(Diagnostic::error(
            "Operation cancelled",
            "Terraform asked the provider to stop. Children created so far are recorded in state; the next apply continues from there.",
        ));
    }
    if Instant::now() >= opts.deadline {
        return Some(Diagnostic::error(
            "Operation timed out",
            "The time allowed for this operation (see the `timeouts` block) ran out before every child was done. Children created so far are recorded in state; the next apply continues from there.",
        ));
    }
    None
}

fn node_diag<E: ?Sized + Sync>(node: &dyn Node<E>, action: Action, e: &NodeError, opts: &RunOpts) -> Diagnostic {
    match &e.kind {
        NodeErrorKind::Conflict(what) => {
            let mut detail = format!(
                "{what}. This resource did not create it, so it will not take it over. If it belongs to this resource, tag it {OWNER_TAG} = \"{}\" and apply again",
                opts.owner
            );
            if !opts.import_hint.is_empty() {
                detail.push_str(&format!(", or bring the existing deployment under Terraform with `{}`", opts.import_hint));
            }
            detail.push_str("; otherwise delete or rename the existing object.");
            Diagnostic::error(format!("{} already exists", node.describe()), detail)
        }
        _ => {
            let mut detail = e.to_string();
            if matches!(action, Action::Create | Action::Adopt | Action::Update) {
                detail.push_str(". Children created so far are recorded in state; the next apply continues from there, and `terraform destroy` removes them.");
            }
            Diagnostic::error(format!("Could not {} {}", action.verb(), node.describe()), detail)
        }
    }
}

/// Identities of node `i`'s wanted dependencies, from the record.
fn dep_ids<E: ?Sized + Sync>(graph: &Graph<E>, i: usize, record: &Record) -> BTreeMap<String, String> {
    graph.deps[i]
        .iter()
        .filter_map(|&d| {
            let k = graph.nodes[d].key();
            record.get(k).map(|id| (k.to_string(), id.to_string()))
        })
        .collect()
}

fn spec_changed<E: ?Sized + Sync>(node: &dyn Node<E>, prior: Option<&Graph<E>>) -> bool {
    match prior.and_then(|p| p.node(node.key())) {
        Some(old) => old.spec() != node.spec() || !old.wanted(),
        None => true,
    }
}

/// Create or update every wanted child (dependencies first, independent ones
/// in parallel), then delete unwanted and superseded ones.
///
/// `prior` is the graph built from the prior state's configuration (None on
/// create): a child whose `spec` differs is updated. Children in `drifted`
/// (from [`refresh`]) are updated too, as are children whose dependency got a
/// new identity in this run.
pub async fn apply<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, prior: Option<&Graph<E>>, record: Record, drifted: &BTreeSet<String>, opts: &RunOpts) -> Outcome {
    let mut out = Outcome { record, ..Default::default() };
    let n = graph.len();
    let mut st = vec![St::Pending; n];
    let mut changed = vec![false; n];
    let mut stopped = false;
    let mut calls = vec![0u32; n];
    type Res = Result<(Made, Option<String>, Action), NodeError>;
    let mut futs: FuturesUnordered<Fut<'_, ((usize, Action, Res), u32)>> = FuturesUnordered::new();
    for i in 0..n {
        if !graph.nodes[i].wanted() {
            st[i] = St::Done;
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
        // Schedule every node whose dependencies are done.
        let mut progressed = !stopped;
        while progressed {
            progressed = false;
            for &i in &graph.order {
                if st[i] != St::Pending || futs.len() >= opts.max_parallel.max(1) {
                    continue;
                }
                if graph.deps[i].iter().any(|&d| st[d] != St::Done) {
                    continue;
                }
                let node = graph.nodes[i].as_ref();
                let key = node.key().to_string();
                let existing = out.record.get(&key).map(str::to_string);
                let action = match &existing {
                    None => Action::Create,
                    Some(_) => {
                        let dep_changed = graph.deps[i].iter().any(|&d| changed[d]);
                        if dep_changed || drifted.contains(&key) || spec_changed(node, prior) { Action::Update } else { Action::Keep }
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
                let cx = opts.cx(dep_ids(graph, i, &out.record));
                futs.push(Box::pin(crate::calls::counted(async move {
                    let r = match (&action, existing) {
                        (Action::Update, Some(id)) => node.update(env, &id, &cx).await.map(|m| (m, None, Action::Update)),
                        _ => match node.adopt(env, &cx).await {
                            Ok(Found::None) => node.create(env, &cx).await.map(|m| (m, None, Action::Create)),
                            Ok(Found::Owned(id)) => {
                                tracing::info!(target: "cxflow::engine", child = node.key(), id = id.as_str(), "adopting an existing object that carries our ownership tag");
                                match node.update(env, &id, &cx).await {
                                    Ok(m) => Ok((m, Some(id), Action::Adopt)),
                                    Err(e) if e.id.is_none() => Err(e.with_id(id)),
                                    Err(e) => Err(e),
                                }
                            }
                            Ok(Found::Foreign(what)) => Err(NodeError { kind: NodeErrorKind::Conflict(what), id: None }),
                            Err(e) => Err(e),
                        },
                    };
                    (i, action, r)
                })));
            }
        }
        let Some(((i, action, res), made_calls)) = futs.next().await else { break };
        calls[i] = made_calls;
        let node = graph.nodes[i].as_ref();
        let key = node.key().to_string();
        let prev = out.record.get(&key).map(str::to_string);
        let (new_id, adopted) = match &res {
            Ok((m, adopted, _)) => (Some(m.id.clone()), adopted.clone()),
            Err(e) => (e.id.clone(), None),
        };
        if let Some(id) = &new_id {
            // The identity a previous object had, which this one replaces.
            let replaced = prev.clone().or(adopted);
            if let Some(old) = replaced.filter(|o| o != id) {
                out.record.push_superseded(&key, old);
            }
            changed[i] = match &prev {
                Some(p) => p != id,
                None => node.planned_identity().as_deref() != Some(id.as_str()),
            };
            out.record.set(&key, id.clone());
        }
        match res {
            Ok((made, _, done_as)) => {
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = key.as_str(), action = done_as.verb(), id = made.id.as_str(), "done");
                out.outputs.insert(key.clone(), made.outputs);
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
    out.calls = calls.iter().sum();
    out.critical_path_calls = graph.longest_weighted_chain(&calls);
    tracing::info!(
        target: "cxflow::engine",
        owner = opts.owner.tag_value(),
        calls = out.calls,
        critical_path_calls = out.critical_path_calls,
        unfinished = out.unfinished.len(),
        "children applied"
    );
    if stopped || !out.unfinished.is_empty() {
        return out;
    }
    // Everything wanted is in place: delete what is superseded or no longer wanted.
    let doomed: Vec<String> =
        out.record.entries().filter(|(entry, key, _)| graph.idx(key).is_some_and(|i| *entry != *key || !graph.nodes[i].wanted())).map(|(e, _, _)| e.to_string()).collect();
    if !doomed.is_empty() {
        delete_entries(env, graph, &mut out, doomed, opts).await;
    }
    out
}

/// Delete every recorded child, dependents first.
pub async fn destroy<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, record: Record, opts: &RunOpts) -> Outcome {
    let mut out = Outcome { record, ..Default::default() };
    let mut doomed = Vec::new();
    for (entry, key, _) in out.record.entries() {
        if graph.idx(key).is_some() {
            doomed.push(entry.to_string());
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
                st[a] = St::Running;
                let node = graph.nodes[idx[a]].as_ref();
                let id = out.record.as_map().get(&entries[a]).cloned().unwrap_or_default();
                let cx = opts.cx(dep_ids(graph, idx[a], &out.record));
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = entries[a].as_str(), id = id.as_str(), "deleting");
                futs.push(Box::pin(async move { (a, node.delete(env, &id, &cx).await) }));
            }
        }
        let Some((a, res)) = futs.next().await else { break };
        let node = graph.nodes[idx[a]].as_ref();
        let retire = entries[a] != node.key();
        let action = if retire { Action::Retire } else { Action::Delete };
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
    /// Wanted children that are gone or differ from the configuration: key → reason.
    pub drift: BTreeMap<String, String>,
    pub diags: Diags,
}

/// Read every recorded child (in parallel).
pub async fn refresh<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, record: Record, opts: &RunOpts) -> Refreshed {
    let mut out = Refreshed { record: record.clone(), ..Default::default() };
    let todo: Vec<(String, usize, String)> = record.entries().filter_map(|(e, k, id)| graph.idx(k).map(|i| (e.to_string(), i, id.to_string()))).collect();
    let mut results = Vec::new();
    {
        let mut futs: FuturesUnordered<Fut<'_, (usize, Result<Observed, NodeError>)>> = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while next < todo.len() && futs.len() < opts.max_parallel.max(1) {
                let (_, i, id) = &todo[next];
                let node = graph.nodes[*i].as_ref();
                let cx = opts.cx(dep_ids(graph, *i, &record));
                let t = next;
                futs.push(Box::pin(async move { (t, node.read(env, id, &cx).await) }));
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
        let live_wanted = entry == node.key() && node.wanted();
        match res {
            Ok(Observed::InSync) => {}
            Ok(Observed::Gone) => {
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = entry.as_str(), id = id.as_str(), "child no longer exists");
                out.record.remove(entry);
                if live_wanted {
                    out.drift.insert(entry.clone(), "deleted outside Terraform; apply recreates it".to_string());
                }
            }
            Ok(Observed::Drifted(why)) => {
                tracing::info!(target: "cxflow::engine", owner = opts.owner.tag_value(), child = entry.as_str(), drift = why.as_str(), "child differs from configuration");
                if live_wanted {
                    out.drift.insert(entry.clone(), why);
                }
            }
            Err(e) => out.diags.push(node_diag_read(node, &e)),
        }
    }
    out
}

fn node_diag_read<E: ?Sized + Sync>(node: &dyn Node<E>, e: &NodeError) -> Diagnostic {
    Diagnostic::error(format!("Could not read {}", node.describe()), e.to_string())
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
pub fn plan<E: ?Sized + Sync>(graph: &Graph<E>, prior: Option<&Graph<E>>, record: &Record, drifted: &BTreeSet<String>) -> PlanSummary {
    let mut s = PlanSummary::default();
    for &i in &graph.order {
        let node = graph.nodes[i].as_ref();
        let key = node.key();
        if !node.wanted() {
            continue;
        }
        let dep_changes = graph.deps[i].iter().any(|&d| s.new_identity.contains(graph.nodes[d].key()));
        match record.get(key) {
            None => {
                s.create.insert(key.to_string());
                if node.planned_identity().is_none() {
                    s.new_identity.insert(key.to_string());
                }
            }
            Some(_) => {
                if dep_changes || drifted.contains(key) || spec_changed(node, prior) {
                    s.update.insert(key.to_string());
                    if node.update_replaces() {
                        s.new_identity.insert(key.to_string());
                    }
                }
            }
        }
    }
    for (entry, key, _) in record.entries() {
        if let Some(i) = graph.idx(key) {
            if entry != key || !graph.nodes[i].wanted() {
                s.delete.insert(entry.to_string());
            }
        }
    }
    s
}
