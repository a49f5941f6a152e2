//! The composite engine: one Terraform resource that owns several AWS objects
//! ("children"), created, observed, updated and deleted as a dependency graph.
//!
//! A composite describes its children as [`Node`]s of a [`Graph`]. A node
//! states its desired configuration as a [`Spec`] (field → value) and
//! reports what exists in AWS as a spec of the same shape ([`Node::observe`]).
//! The engine ([`run`]) compares the desired, the recorded and the observed
//! spec of every child, and everything follows from that comparison:
//!
//! - **drift**: a field whose observed value differs from the desired one
//!   (`service.desired_count = 3 outside Terraform (configuration: 2)`);
//! - **updates**: a node's update receives the spec AWS has now (observed,
//!   or recorded at the last apply) and sends only what differs; a changed
//!   field the node lists in [`Node::replaced_by`] makes a new object;
//! - **import**: the composite rebuilds its configuration from observed specs;
//! - **outputs**: observed fields the desired spec does not name (a load
//!   balancer's DNS name).
//!
//! The record (child key → [`Identity`]) lives in state as the `children`
//! map. Identities replaced by an update stay recorded as
//! `<key>.superseded.<n>` until the whole apply has succeeded and they are
//! deleted, so state never forgets an object that still exists.
//!
//! Ownership: every child carries `cxflow:owner` (and `cxflow:child` where
//! names are not unique). An object found under a child's name is only taken
//! over when its creation lease ([`lease`]) says an interrupted create of
//! this composite left it; an object another state recorded is refused.

pub mod composite;
mod graph;
pub mod identity;
pub mod lease;
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

pub use graph::{Graph, GraphError};
pub use lease::{Claim, LEASE_TAG, Lease};
pub use run::{Action, Outcome, PlanSummary, Refreshed, RunOpts, apply, destroy, field_drift, plan, refresh, tags_json};

/// A child's configuration, field by field. References to other children
/// appear as `"<key>"` in both the desired and the observed spec.
pub type Spec = serde_json::Map<String, serde_json::Value>;

/// Build a [`Spec`] from a `json!` object.
pub fn spec(v: serde_json::Value) -> Spec {
    match v {
        serde_json::Value::Object(m) => m,
        _ => Spec::new(),
    }
}

/// The tag every child carries; its value names the composite that owns it.
pub const OWNER_TAG: &str = "cxflow:owner";
/// Which child of its composite an object is (for kinds without unique names).
pub const CHILD_TAG: &str = "cxflow:child";

/// Tags of an object as AWS reports them.
pub type Tags = BTreeMap<String, String>;

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
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A child's identity: the primary ID or ARN, plus named parts for further
/// AWS objects the child owns (a NAT gateway's Elastic IP, the hosted zone of
/// a record). Recorded as `<key>` and `<key>.<part>` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    pub id: String,
    pub parts: BTreeMap<String, String>,
}

impl Identity {
    pub fn new(id: impl Into<String>) -> Identity {
        Identity { id: id.into(), parts: BTreeMap::new() }
    }
    pub fn with(mut self, part: &str, v: impl Into<String>) -> Identity {
        self.parts.insert(part.to_string(), v.into());
        self
    }
    pub fn part(&self, name: &str) -> Option<&str> {
        self.parts.get(name).map(String::as_str)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// What a node's `find` saw under the name (or tags) its object would have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Nothing: create it.
    None,
    /// An object and its tags: the engine decides from the ownership tag and
    /// the creation lease whether it may be taken over.
    Tagged(Identity, Tags),
    /// An object whose ownership follows from a dependency this composite
    /// owns (the HTTPS listener of our load balancer).
    Derived(Identity),
    /// Not ours, whatever its tags (what it is, for the message).
    Foreign(String),
}

/// The result of creating or updating a child.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Made {
    pub id: Identity,
    /// Values learnt on the way (a load balancer's DNS name), shown as outputs.
    pub outputs: BTreeMap<String, String>,
}

impl Made {
    pub fn id(id: impl Into<String>) -> Made {
        Made { id: Identity::new(id), outputs: BTreeMap::new() }
    }
    pub fn identity(id: Identity) -> Made {
        Made { id, outputs: BTreeMap::new() }
    }
    pub fn with(mut self, k: &str, v: impl Into<String>) -> Made {
        self.outputs.insert(k.to_string(), v.into());
        self
    }
}

/// Why a child operation failed.
#[derive(Clone, Debug)]
pub enum NodeErrorKind {
    Aws(AwsError),
    /// An object under our name that this composite may not take over.
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
    pub id: Option<Box<Identity>>,
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
    /// AWS answered without the identity of the object it made.
    pub fn no_identity(operation: &str) -> NodeError {
        NodeError::other(format!("{operation} answered without the identity of what it created"))
    }
    /// The object exists even though the operation failed.
    pub fn with_id(mut self, id: impl Into<String>) -> NodeError {
        let id = id.into();
        if !id.is_empty() {
            self.id = Some(Box::new(Identity::new(id)));
        }
        self
    }
    pub fn with_identity(mut self, id: Identity) -> NodeError {
        self.id = Some(Box::new(id));
        self
    }
    pub fn is_not_found(&self) -> bool {
        matches!(&self.kind, NodeErrorKind::Aws(e) if e.is_not_found())
    }
    /// The create found its name taken (perhaps by its own earlier attempt whose answer was lost).
    pub fn is_already_exists(&self) -> bool {
        matches!(&self.kind, NodeErrorKind::Aws(e) if e.is_already_exists())
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
    /// Identities of this node's dependencies that exist.
    pub deps: BTreeMap<String, Identity>,
    pub cancel: &'a CancellationToken,
    pub deadline: Instant,
    /// The running apply's creation lease (tag every object a create makes with it).
    pub lease: &'a Lease,
}

impl Cx<'_> {
    /// The identity of dependency `key`; an error when it does not exist (a composite bug).
    pub fn dep(&self, key: &str) -> Result<&str, NodeError> {
        self.dep_identity(key).map(|i| i.id.as_str())
    }
    pub fn dep_identity(&self, key: &str) -> Result<&Identity, NodeError> {
        self.deps.get(key).ok_or_else(|| NodeError::other(format!("internal error: dependency {key} has no identity")))
    }
    /// Time left before the operation's deadline (zero when past).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
    pub fn check_cancel(&self) -> Result<(), NodeError> {
        if self.cancel.is_cancelled() { Err(NodeError::cancelled()) } else { Ok(()) }
    }
    /// `(LEASE_TAG, value)`: the tag a create adds to what it makes.
    pub fn lease_tag(&self) -> (String, String) {
        self.lease.journal();
        (LEASE_TAG.to_string(), self.lease.tag_value())
    }
    /// `(LEASE_TAG, value)`: the tag a release leaves (the lease, marked recorded).
    pub fn recorded_tag(&self) -> (String, String) {
        // Journaled too: an apply that only adopts and releases, then dies before
        // Terraform saves its state, must still recognise these marks as its own.
        self.lease.journal();
        (LEASE_TAG.to_string(), self.lease.recorded_value())
    }
}

/// One child object of a composite. `E` is the environment the composite's
/// nodes share (for AWS composites, the `Aws` client holder).
///
/// Contracts: `create` tags what it makes with the lease (`cx.lease_tag()`)
/// and returns its identity; `observe` reports the object as a spec of the
/// same shape as `spec()` (fields AWS does not report are left out) or None
/// when it is gone; `update` converges from `base` (what AWS has) to `spec()`
/// sending only what differs, and removes the lease tag if present; `delete`
/// treats "already gone" as done and deletes every AWS object the child
/// made; `find` only looks.
#[async_trait]
pub trait Node<E: ?Sized + Sync>: Send + Sync {
    /// Key in the record: lowercase letters, digits and `_`.
    fn key(&self) -> &str;
    /// Keys of nodes that must exist before this one is created or updated.
    fn deps(&self) -> Vec<&str> {
        Vec::new()
    }
    /// Whether the composite's configuration wants this child. Unwanted
    /// nodes that still exist in the record are deleted.
    fn wanted(&self) -> bool {
        true
    }
    /// What it is, for messages: "CloudWatch log group /x/y".
    fn describe(&self) -> String;
    /// The desired configuration, field by field.
    fn spec(&self) -> Spec;
    /// Fields whose change needs a new object (`"*"`: any field but `tags`).
    fn replaced_by(&self) -> &'static [&'static str] {
        &[]
    }
    /// The identity a create will produce, when it is known in advance.
    fn planned_identity(&self) -> Option<Identity> {
        None
    }
    /// The dependencies whose identities `find` needs (none: it can run in
    /// the check before an apply's first write).
    fn find_deps(&self) -> Vec<&str> {
        Vec::new()
    }
    /// Read an identity recorded by an older provider version (`a|b` forms):
    /// the record entries it stands for today (this child's and others').
    fn legacy_identity(&self, _recorded: &str) -> Vec<(String, Identity)> {
        Vec::new()
    }

    async fn find(&self, _env: &E, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(Found::None)
    }
    async fn create(&self, env: &E, cx: &Cx<'_>) -> Result<Made, NodeError>;
    async fn observe(&self, env: &E, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError>;
    async fn update(&self, env: &E, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError>;
    async fn delete(&self, env: &E, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError>;
    /// Mark the creation lease recorded (`cx.recorded_tag()`): the composite's state is being saved.
    async fn release(&self, _env: &E, _id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        Ok(())
    }
}

const SUPERSEDED: &str = "superseded";

/// Which children exist: key → identity (parts as `<key>.<part>`), plus
/// superseded identities waiting for deletion under `<key>.superseded.<n>`.
/// Stored in state as `map(string)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record(BTreeMap<String, String>);

/// Whether a record entry names an object (`key`, `key.superseded.n`)
/// rather than a part of one (`key.eip`, `key.superseded.n.eip`).
fn is_base(entry: &str) -> bool {
    let segs: Vec<&str> = entry.split('.').collect();
    segs.len() == 1 || (segs.len() == 3 && segs[1] == SUPERSEDED)
}

impl Record {
    pub fn new() -> Record {
        Record(BTreeMap::new())
    }
    pub fn from_map(m: BTreeMap<String, String>) -> Record {
        Record(m)
    }
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }
    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
    /// The identity recorded under base entry `base` (`key` or `key.superseded.n`).
    pub fn identity(&self, base: &str) -> Option<Identity> {
        let id = self.0.get(base)?;
        let prefix = format!("{base}.");
        let parts = self.0.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).filter_map(|(k, v)| {
            let part = &k[prefix.len()..];
            (!part.starts_with(SUPERSEDED) && !part.contains('.')).then(|| (part.to_string(), v.clone()))
        });
        Some(Identity { id: id.clone(), parts: parts.collect() })
    }
    /// The live identity of `key`.
    pub fn get(&self, key: &str) -> Option<Identity> {
        self.identity(key)
    }
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
    /// Record `id` under `base`, replacing whatever was there.
    pub fn set(&mut self, base: &str, id: &Identity) {
        self.remove(base);
        self.0.insert(base.to_string(), id.id.clone());
        for (p, v) in &id.parts {
            self.0.insert(format!("{base}.{p}"), v.clone());
        }
    }
    /// Forget `base` and its parts; returns the identity it had.
    pub fn remove(&mut self, base: &str) -> Option<Identity> {
        let id = self.identity(base)?;
        self.0.remove(base);
        for p in id.parts.keys() {
            self.0.remove(&format!("{base}.{p}"));
        }
        Some(id)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Keep `id` as a superseded identity of `key`.
    pub fn push_superseded(&mut self, key: &str, id: &Identity) {
        let mut n = 1;
        while self.0.contains_key(&format!("{key}.{SUPERSEDED}.{n}")) {
            n += 1;
        }
        self.set(&format!("{key}.{SUPERSEDED}.{n}"), id);
    }
    /// Every base entry as (entry, node key, identity), superseded ones included.
    pub fn entries(&self) -> Vec<(String, String, Identity)> {
        self.0.keys().filter(|e| is_base(e)).filter_map(|e| self.identity(e).map(|id| (e.clone(), entry_key(e).to_string(), id))).collect()
    }
    /// Whether any superseded identities wait for deletion.
    pub fn has_superseded(&self) -> bool {
        self.0.keys().any(|k| k.split('.').nth(1) == Some(SUPERSEDED))
    }
    pub fn live_keys(&self) -> Vec<String> {
        self.0.keys().filter(|k| !k.contains('.')).cloned().collect()
    }
}

/// The node key an entry belongs to (`task_definition.superseded.1` → `task_definition`).
pub fn entry_key(entry: &str) -> &str {
    entry.split('.').next().unwrap_or(entry)
}

/// An identity is never empty: a node that would record one has a bug or
/// AWS answered oddly, and recording it would orphan the object.
pub fn checked(m: Made, what: &str) -> Result<Made, NodeError> {
    if m.id.id.is_empty() { Err(NodeError::other(format!("AWS did not report the identity of {what}; nothing was recorded"))) } else { Ok(m) }
}

#[cfg(test)]
mod record_tests {
    use super::*;

    #[test]
    fn identities_with_parts_and_superseded_entries() {
        let mut r = Record::new();
        r.set("nat_0", &Identity::new("nat-1").with("eip", "eipalloc-1"));
        r.set("task_definition", &Identity::new("arn:td:2"));
        r.push_superseded("task_definition", &Identity::new("arn:td:1"));
        r.push_superseded("nat_0", &Identity::new("nat-0").with("eip", "eipalloc-0"));
        assert_eq!(r.get("nat_0"), Some(Identity::new("nat-1").with("eip", "eipalloc-1")));
        assert_eq!(r.identity("nat_0.superseded.1"), Some(Identity::new("nat-0").with("eip", "eipalloc-0")));
        let entries: Vec<(String, String)> = r.entries().into_iter().map(|(e, k, _)| (e, k)).collect();
        assert_eq!(
            entries,
            [
                ("nat_0".to_string(), "nat_0".to_string()),
                ("nat_0.superseded.1".to_string(), "nat_0".to_string()),
                ("task_definition".to_string(), "task_definition".to_string()),
                ("task_definition.superseded.1".to_string(), "task_definition".to_string()),
            ]
        );
        assert!(r.has_superseded());
        assert_eq!(r.live_keys(), ["nat_0", "task_definition"]);
        r.remove("nat_0.superseded.1");
        assert!(!r.as_map().keys().any(|k| k.starts_with("nat_0.superseded")), "parts go with their entry: {r:?}");
        r.set("nat_0", &Identity::new("nat-2"));
        assert_eq!(r.get("nat_0"), Some(Identity::new("nat-2")), "old parts are dropped");
    }

    #[test]
    fn empty_identities_are_refused() {
        assert!(checked(Made::id(""), "a role").is_err());
        assert!(checked(Made::id("arn:x"), "a role").is_ok());
    }
}
