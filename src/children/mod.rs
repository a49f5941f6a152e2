//! AWS child kinds for composites: each type implements the engine's `Node`
//! for one kind of AWS object, written once and shared by every composite.
//! A kind observes AWS as a spec of the same shape as its desired spec, so
//! the engine can diff them; its update sends only the fields that differ.

pub mod autoscaling;
pub mod cloudtrail;
pub mod codebuild;
pub mod codepipeline;
pub mod discovery;
pub mod ecs;
pub mod edge;
pub mod events;
pub mod iam;
pub mod lb;
pub mod logs;
pub mod network;
pub mod platform;
pub mod s3;
pub mod secrets;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::aws::wait::WaitError;
use crate::aws::{Aws, aws_err};
use crate::engine::composite::{Env, GraphCx};
use crate::engine::{CHILD_TAG, Cx, LEASE_TAG, NodeError, OWNER_TAG, Owner, Spec, Tags};

pub use crate::engine::tags_json;

#[async_trait::async_trait]
impl Env for Aws {
    fn default_tags(&self) -> Tags {
        self.default_tags.clone()
    }
    async fn scope(&self) -> Result<crate::engine::identity::Scope, crate::framework::Diags> {
        let account =
            account_id(self).await.map_err(|e| crate::framework::Diags::from(crate::framework::Diagnostic::error("Could not determine the AWS account", e.to_string())))?;
        Ok(crate::engine::identity::Scope { account, region: self.region.clone() })
    }
}

/// What every child of one composite shares.
#[derive(Debug, Clone)]
pub struct Common {
    pub owner: Owner,
    /// The composite's `tags_all` (ownership tags are added per child).
    pub tags: Tags,
    pub region: String,
    pub account: String,
}

impl Common {
    /// From a graph context; asks STS for the account once per process when configure did not.
    pub async fn new(g: &GraphCx<'_, Aws>) -> Result<Arc<Common>, crate::framework::Diags> {
        let scope = g.env.scope().await?;
        Ok(Arc::new(Common { owner: g.owner.clone(), tags: g.tags.clone(), region: scope.region, account: scope.account }))
    }
    /// Tags child `key` should carry: `tags_all`, the ownership and child-key
    /// tags, and a `Name` when the kind shows one.
    pub fn tags_for(&self, key: &str, name: Option<&str>) -> Tags {
        let mut t = self.tags.clone();
        t.insert(OWNER_TAG.to_string(), self.owner.tag_value().to_string());
        t.insert(CHILD_TAG.to_string(), key.to_string());
        if let Some(n) = name {
            t.entry("Name".to_string()).or_insert_with(|| n.to_string());
        }
        t
    }
    /// The tags a create puts on what it makes: [`Common::tags_for`] and the apply's lease.
    pub fn create_tags(&self, key: &str, name: Option<&str>, cx: &Cx<'_>) -> Tags {
        let mut t = self.tags_for(key, name);
        let (k, v) = cx.lease_tag();
        t.insert(k, v);
        t
    }
    pub fn partition(&self) -> &'static str {
        crate::engine::names::partition(&self.region)
    }
    /// `{account}`, `{partition}` and `{region}` in a policy or ARN template.
    pub fn fill(&self, s: &str) -> String {
        s.replace("{account}", &self.account).replace("{partition}", self.partition()).replace("{region}", &self.region)
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
            Ref::Dep(k) => cx.dep(k).map(str::to_string),
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
    /// An observed value in spec form: `<key>` when it is the dependency's identity.
    pub fn observed(&self, actual: &str, cx: &Cx<'_>) -> String {
        match self {
            Ref::Dep(k) if cx.dep(k).ok() == Some(actual) => format!("<{k}>"),
            _ => actual.to_string(),
        }
    }
}

/// Observed values in spec form: each becomes `<key>` when it is the
/// identity of one of `refs`' dependencies.
pub fn observed_refs(actual: &[String], refs: &[Ref], cx: &Cx<'_>) -> Vec<String> {
    let mut v: Vec<String> =
        actual.iter().map(|a| refs.iter().find_map(|r| matches!(r, Ref::Dep(_)).then(|| r.observed(a, cx)).filter(|s| s != a)).unwrap_or_else(|| a.clone())).collect();
    v.sort();
    v.dedup();
    v
}

/// Specs of a list of references, sorted.
pub fn ref_specs(refs: &[Ref]) -> Vec<String> {
    let mut v: Vec<String> = refs.iter().map(Ref::spec).collect();
    v.sort();
    v.dedup();
    v
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
    let a = out.account().filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("sts:GetCallerIdentity"))?.to_string();
    let _ = aws.account_id.set(a.clone());
    Ok(a)
}

/// Tags to set and keys to remove to go from `current` to `desired`
/// (leaving `aws:*` and the creation lease, which only a release changes, alone).
pub fn tag_diff(current: &Tags, desired: &Tags) -> (Tags, Vec<String>) {
    let add = desired.iter().filter(|(k, v)| current.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    let remove = current.keys().filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:") && *k != LEASE_TAG).cloned().collect();
    (add, remove)
}

/// Tags as AWS reports them, without AWS's own `aws:` tags.
pub fn user_visible(t: impl IntoIterator<Item = (String, String)>) -> Tags {
    t.into_iter().filter(|(k, _)| !k.starts_with("aws:")).collect()
}

/// The tags a spec holds (a `tags` object), if it has them.
pub fn spec_tags(s: &Spec) -> Option<Tags> {
    match s.get("tags")? {
        serde_json::Value::Object(m) => Some(m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()),
        _ => None,
    }
}

/// Tags found on an object, as the engine's `Found::Tagged` wants them.
pub fn found_tags(t: &Tags) -> Tags {
    t.clone()
}

/// The lease tag's key, for kinds that remove it by key.
pub fn lease_key() -> Vec<String> {
    vec![LEASE_TAG.to_string()]
}

/// A field of a spec as a string.
pub fn spec_str<'a>(s: &'a Spec, field: &str) -> Option<&'a str> {
    s.get(field).and_then(|v| v.as_str())
}

/// A `BTreeMap<String,String>` as a JSON object.
pub fn map_json(m: &BTreeMap<String, String>) -> serde_json::Value {
    tags_json(m)
}

/// `desired` plus the lease tag `current` carries: for services whose tag
/// update replaces the whole set (S3, CodeBuild), so an update never drops
/// a lease that only a release may change.
pub fn keeping_lease(mut desired: Tags, current: &Tags) -> Tags {
    if let Some(l) = current.get(LEASE_TAG) {
        desired.insert(LEASE_TAG.to_string(), l.clone());
    }
    desired
}

/// An SDK builder's result: a missing required member is a bug in the kind, not an AWS error.
pub fn built<T>(r: Result<T, aws_smithy_types::error::operation::BuildError>) -> Result<T, NodeError> {
    r.map_err(|e| NodeError::other(format!("internal error building an AWS request: {e}")))
}
