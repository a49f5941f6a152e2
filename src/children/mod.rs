//! AWS child kinds for composites: each type implements the engine's `Node`
//! for one kind of AWS object. Composite resources assemble them into graphs;
//! a kind written once serves every composite that needs it.

pub mod ecs;
pub mod edge;
pub mod iam;
pub mod lb;
pub mod logs;
pub mod network;
pub mod platform;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aws::wait::WaitError;
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, NodeError, OWNER_TAG, Owner};

/// Which child of which composite an object is: every child is tagged with
/// its owner and, for kinds without a unique name, its key.
pub const CHILD_TAG: &str = "cxflow:child";

/// What every child of one composite shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub owner: Owner,
    /// Provider default tags and the resource's tags (ownership tag added per child).
    pub tags: BTreeMap<String, String>,
    pub region: String,
}

impl Common {
    pub fn new(aws: &Aws, owner: Owner, own_tags: &BTreeMap<String, String>) -> Arc<Common> {
        Arc::new(Common { owner, tags: aws.merged_tags(own_tags), region: aws.region.clone() })
    }
    /// Tags for child `key`: merged tags, the ownership tag and the child key.
    pub fn tags_for(&self, key: &str, name: Option<&str>) -> BTreeMap<String, String> {
        let mut t = self.tags.clone();
        t.insert(OWNER_TAG.to_string(), self.owner.tag_value().to_string());
        t.insert(CHILD_TAG.to_string(), key.to_string());
        if let Some(n) = name {
            t.entry("Name".to_string()).or_insert_with(|| n.to_string());
        }
        t
    }
    pub fn partition(&self) -> &'static str {
        crate::engine::names::partition(&self.region)
    }
}

/// A value a child needs: known when the graph is built, or the identity of
/// another child, known once that child exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Lit(String),
    Dep(String),
}

impl Ref {
    pub fn dep(key: impl Into<String>) -> Ref {
        Ref::Dep(key.into())
    }
    pub fn lit(v: impl Into<String>) -> Ref {
        Ref::Lit(v.into())
    }
    pub fn resolve(&self, cx: &Cx<'_>) -> Result<String, NodeError> {
        match self {
            Ref::Lit(v) => Ok(v.clone()),
            Ref::Dep(k) => cx.dep(k).map(|s| s.split('|').next().unwrap_or(s).to_string()),
        }
    }
    /// The dependency key, when this refers to another child.
    pub fn key(&self) -> Option<&str> {
        match self {
            Ref::Dep(k) => Some(k),
            Ref::Lit(_) => None,
        }
    }
    /// For specs: a literal as itself, a dependency as `<key>`.
    pub fn spec(&self) -> String {
        match self {
            Ref::Lit(v) => v.clone(),
            Ref::Dep(k) => format!("<{k}>"),
        }
    }
}

/// Map a wait outcome onto a node error.
pub fn wait_err(what: &str, e: WaitError<NodeError>) -> NodeError {
    match e {
        WaitError::Timeout { waited, last } => NodeError::timeout(what, waited, last),
        WaitError::Cancelled => NodeError::cancelled(),
        WaitError::Failed(e) => e,
    }
}

/// The account id: from configure's STS check, or asked once.
pub async fn account_id(aws: &Aws) -> Result<String, NodeError> {
    if let Some(a) = aws.account_id.get() {
        return Ok(a.clone());
    }
    let out = aws.sts().get_caller_identity().send().await.map_err(|e| aws_err("sts:GetCallerIdentity", e))?;
    let a = out.account().unwrap_or_default().to_string();
    let _ = aws.account_id.set(a.clone());
    Ok(a)
}

/// Tags to set and keys to remove to go from `current` to `desired` (leaving `aws:*` alone).
pub fn tag_diff(current: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> (BTreeMap<String, String>, Vec<String>) {
    let add = desired.iter().filter(|(k, v)| current.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let remove = current.keys().filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:")).cloned().collect();
    (add, remove)
}
