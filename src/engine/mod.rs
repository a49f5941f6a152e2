//! The composite engine: one Terraform resource that owns several AWS objects
//! ("children"), created, refreshed, updated and deleted as a dependency graph.
//!
//! A composite resource describes its children as [`Node`]s in a [`Graph`]:
//! each node has a key (`"log_group"`, `"service"`, ...), the keys it depends
//! on, and async operations (adopt, create, read, update, delete). The engine
//! ([`run`]) schedules them:
//!
//! - **apply** creates and updates wanted children in dependency order, running
//!   independent ones in parallel. The first failure stops scheduling; work in
//!   flight finishes and the [`Record`] of everything that now exists comes back
//!   with the error, so the resource can hand Terraform partial state.
//!   Before creating a child the engine asks the node to *adopt* an existing
//!   object carrying our ownership tag (a crash between an AWS call and the
//!   state write leaves such objects behind); an object with the same name but
//!   without our tag is an error suggesting `terraform import`.
//! - **destroy** deletes in reverse dependency order.
//! - **refresh** reads every recorded child: deleted ones leave the record,
//!   changed ones are reported as drift, so `terraform plan` shows a change and
//!   the next apply repairs only those children.
//! - **plan** predicts which children an apply creates, updates, deletes or
//!   gives a new identity, so the resource can plan computed attributes.
//!
//! The record (child key → identity, e.g. an ARN) lives in state as a
//! `map(string)` attribute. Identities replaced by an update (a new task
//! definition revision) stay in the record as `<key>.superseded.<n>` until the
//! whole apply has succeeded and they are deleted, so state never forgets an
//! object that still exists.

pub mod composite;
mod graph;
pub mod names;
mod run;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::aws::AwsError;
use crate::framework::Value;

pub use graph::{Graph, GraphError};
pub use run::{Action, Outcome, PlanSummary, Refreshed, RunOpts, apply, destroy, plan, refresh};

/// The tag every child carries; its value names the composite that owns it.
pub const OWNER_TAG: &str = "cxflow:owner";

/// The composite owning a set of children: `<resource type>/<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    pub fn new(resource_type: &str, name: &str) -> Owner {
        Owner(format!("{resource_type}/{name}"))
    }
    /// The value of the `cxflow:owner` tag.
    pub fn tag_value(&self) -> &str {
        &self.0
    }
    /// Tags for a child: provider default tags, then the resource's own tags,
    /// then the ownership tag (which nothing can override).
    pub fn child_tags(&self, default_tags: &BTreeMap<String, String>, own: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut t = default_tags.clone();
        t.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        t.insert(OWNER_TAG.to_string(), self.0.clone());
        t
    }
    /// Classify an existing object found by name from its tags.
    pub fn check<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Ownership {
        for (k, v) in tags {
            if k == OWNER_TAG {
                return if v == self.0 { Ownership::Ours } else { Ownership::Other(v.to_string()) };
            }
        }
        Ownership::Untagged
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    Ours,
    /// Tagged as owned by another composite (the tag's value).
    Other(String),
    Untagged,
}

impl Ownership {
    /// The usual adopt decision for an object found under our name.
    pub fn into_found(self, id: impl Into<String>, what: &str) -> Found {
        match self {
            Ownership::Ours => Found::Owned(id.into()),
            Ownership::Other(o) => Found::Foreign(format!("{what} exists and belongs to {o} (tag {OWNER_TAG})")),
            Ownership::Untagged => Found::Foreign(format!("{what} exists but has no {OWNER_TAG} tag")),
        }
    }
}

/// What `adopt` found under the name a child would be created with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing: create it.
    None,
    /// An object carrying our ownership tag: take it over (identity).
    Owned(String),
    /// An object someone else owns: refuse (description for the message).
    Foreign(String),
}

/// The result of creating or updating a child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Made {
    /// Identity recorded in state (ARN, ID or name).
    pub id: String,
    /// Values learnt on the way (kept for the current run only; only identities persist).
    pub outputs: BTreeMap<String, String>,
}

impl Made {
    pub fn id(id: impl Into<String>) -> Made {
        Made { id: id.into(), outputs: BTreeMap::new() }
    }
    pub fn with(mut self, k: &str, v: impl Into<String>) -> Made {
        self.outputs.insert(k.to_string(), v.into());
        self
    }
}

/// What `read` found for a recorded child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// It no longer exists.
    Gone,
    /// It exists and matches the desired configuration.
    InSync,
    /// It exists but differs (a short reason, shown in the plan).
    Drifted(String),
}

/// Why a child operation failed.
#[derive(Clone, Debug)]
pub enum NodeErrorKind {
    Aws(AwsError),
    /// An object under our name that we do not own.
    Conflict(String),
    Timeout {
        what: String,
        waited: Duration,
        last: String,
    },
    Cancelled,
    /// Anything else, already phrased for a person.
    Other(String),
}

/// A failed child operation. `id` is set when the object exists despite the
/// failure (created, then a wait for it failed): the engine records it.
#[derive(Clone, Debug)]
pub struct NodeError {
    pub kind: NodeErrorKind,
    pub id: Option<String>,
}

impl NodeError {
    pub fn other(msg: impl Into<String>) -> NodeError {
        NodeError { kind: NodeErrorKind::Other(msg.into()), id: None }
    }
    pub fn cancelled() -> NodeError {
        NodeError { kind: NodeErrorKind::Cancelled, id: None }
    }
    pub fn timeout(what: impl Into<String>, waited: Duration, last: impl Into<String>) -> NodeError {
        NodeError { kind: NodeErrorKind::Timeout { what: what.into(), waited, last: last.into() }, id: None }
    }
    /// The object exists even though the operation failed.
    pub fn with_id(mut self, id: impl Into<String>) -> NodeError {
        self.id = Some(id.into());
        self
    }
    pub fn is_not_found(&self) -> bool {
        matches!(&self.kind, NodeErrorKind::Aws(e) if e.is_not_found())
    }
}

impl From<AwsError> for NodeError {
    fn from(e: AwsError) -> NodeError {
        NodeError { kind: NodeErrorKind::Aws(e), id: None }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeErrorKind::Aws(e) => write!(f, "{e}"),
            NodeErrorKind::Conflict(c) => write!(f, "{c}"),
            NodeErrorKind::Timeout { what, waited, last } => write!(f, "gave up waiting for {what} after {}s; last status: {last}", waited.as_secs()),
            NodeErrorKind::Cancelled => write!(f, "cancelled: Terraform asked the provider to stop"),
            NodeErrorKind::Other(m) => write!(f, "{m}"),
        }
    }
}

/// Context handed to every node operation.
pub struct Cx<'a> {
    /// Identities of this node's dependencies that exist (wanted ones only).
    pub deps: BTreeMap<String, String>,
    pub cancel: &'a CancellationToken,
    pub deadline: Instant,
}

impl Cx<'_> {
    /// The identity of dependency `key`; an error when it does not exist (a composite bug).
    pub fn dep(&self, key: &str) -> Result<&str, NodeError> {
        self.deps.get(key).map(String::as_str).ok_or_else(|| NodeError::other(format!("internal error: dependency {key} has no identity")))
    }
    /// Time left before the operation's deadline (zero when past).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
    pub fn check_cancel(&self) -> Result<(), NodeError> {
        if self.cancel.is_cancelled() { Err(NodeError::cancelled()) } else { Ok(()) }
    }
}

/// One child object of a composite. `E` is the environment the composite's
/// nodes share (for AWS composites, the `Aws` client holder).
///
/// Contracts: `create` and `update` return the child's identity; `update` may
/// return a new identity when the change needs a new object (set
/// [`Node::update_replaces`]); `delete` treats "already gone" as success;
/// `adopt` only looks (no changes) — the engine calls `update` on an adopted
/// object to bring it to the desired configuration.
#[async_trait]
pub trait Node<E: ?Sized + Sync>: Send + Sync {
    /// Key in the record: lowercase letters, digits and `_`.
    fn key(&self) -> &str;
    /// Keys of nodes that must exist before this one is created or updated.
    fn deps(&self) -> Vec<&str> {
        Vec::new()
    }
    /// Whether the composite's configuration wants this child. Unwanted nodes
    /// that still exist in the record are deleted (after the wanted ones are
    /// created or updated).
    fn wanted(&self) -> bool {
        true
    }
    /// What it is, for messages: "CloudWatch log group /x/y".
    fn describe(&self) -> String;
    /// The desired configuration, compared between the prior and the new
    /// graph: a difference means `update`.
    fn spec(&self) -> serde_json::Value;
    /// The identity a create will produce, when it is known in advance
    /// (deterministic names). Lets plans and dependents know a recreated
    /// child keeps its identity.
    fn planned_identity(&self) -> Option<String> {
        None
    }
    /// An update produces a new identity; the previous object is deleted once
    /// the whole apply has succeeded.
    fn update_replaces(&self) -> bool {
        false
    }

    async fn adopt(&self, _env: &E, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(Found::None)
    }
    async fn create(&self, env: &E, cx: &Cx<'_>) -> Result<Made, NodeError>;
    async fn read(&self, env: &E, id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError>;
    async fn update(&self, env: &E, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError>;
    async fn delete(&self, env: &E, id: &str, cx: &Cx<'_>) -> Result<(), NodeError>;
}

const SUPERSEDED: &str = ".superseded.";

/// Which children exist: key → identity, plus superseded identities waiting
/// for deletion under `<key>.superseded.<n>`. Stored in state as `map(string)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record(BTreeMap<String, String>);

impl Record {
    pub fn new() -> Record {
        Record(BTreeMap::new())
    }
    pub fn from_map(m: BTreeMap<String, String>) -> Record {
        Record(m)
    }
    /// Read from a state attribute (null or unknown means empty).
    pub fn from_value(v: &Value) -> Record {
        Record(v.entries().map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()).unwrap_or_default())
    }
    pub fn to_value(&self) -> Value {
        Value::Map(self.0.iter().map(|(k, v)| (k.clone(), Value::string(v))).collect())
    }
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
    /// The live identity of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    pub fn set(&mut self, key: &str, id: impl Into<String>) {
        self.0.insert(key.to_string(), id.into());
    }
    pub fn remove(&mut self, entry: &str) -> Option<String> {
        self.0.remove(entry)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Keep `id` as a superseded identity of `key`.
    pub fn push_superseded(&mut self, key: &str, id: impl Into<String>) {
        let mut n = 1;
        while self.0.contains_key(&format!("{key}{SUPERSEDED}{n}")) {
            n += 1;
        }
        self.0.insert(format!("{key}{SUPERSEDED}{n}"), id.into());
    }
    /// Every entry as (entry name, node key, identity), superseded ones included.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.0.iter().map(|(e, id)| (e.as_str(), entry_key(e), id.as_str()))
    }
    /// Whether any superseded identities wait for deletion.
    pub fn has_superseded(&self) -> bool {
        self.0.keys().any(|k| k.contains(SUPERSEDED))
    }
    pub fn live_keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().filter(|k| !k.contains(SUPERSEDED)).map(String::as_str)
    }
}

/// The node key an entry belongs to (`task_definition.superseded.1` → `task_definition`).
pub fn entry_key(entry: &str) -> &str {
    entry.split_once(SUPERSEDED).map(|(k, _)| k).unwrap_or(entry)
}
