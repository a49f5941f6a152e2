//! Cloud Map: an HTTP namespace (Service Connect's default namespace for a
//! cluster). Cloud Map creates and deletes namespaces asynchronously: both
//! wait for the operation to finish.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_servicediscovery::types as sd;
use serde_json::json;

use super::{Common, spec_tags, tag_diff, tags_json, user_visible, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

fn sd_tags(t: &Tags) -> Vec<sd::Tag> {
    t.iter().filter_map(|(k, v)| sd::Tag::builder().key(k).value(v).build().ok()).collect()
}

/// `ns-…` from a namespace ARN (`…:namespace/ns-…`).
pub fn namespace_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Wait for a Cloud Map operation; returns its targets (e.g. `NAMESPACE` → id).
async fn wait_operation(aws: &Aws, op: &str, what: &str, cx: &Cx<'_>) -> Result<std::collections::HashMap<sd::OperationTargetType, String>, NodeError> {
    until(what, cx.remaining(), cx.cancel, Duration::from_millis(500), Duration::from_secs(5), || async move {
        let o = aws.servicediscovery().get_operation().operation_id(op).send().await.map_err(|e| NodeError::from(aws_err("servicediscovery:GetOperation", e)))?;
        let Some(o) = o.operation() else { return Ok(Poll::Pending("unknown".into())) };
        match o.status() {
            Some(sd::OperationStatus::Success) => Ok(Poll::Done(o.targets().cloned().unwrap_or_default())),
            Some(sd::OperationStatus::Fail) => Err(NodeError::other(format!("{what} failed: {}", o.error_message().unwrap_or("no reason given")))),
            s => Ok(Poll::Pending(s.map(|s| s.as_str().to_string()).unwrap_or_else(|| "pending".into()))),
        }
    })
    .await
    .map_err(|e| wait_err(what, e))
}

pub struct HttpNamespaceNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub description: String,
}

impl HttpNamespaceNode {
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn tags(aws: &Aws, arn: &str) -> Result<Tags, NodeError> {
        let out = aws.servicediscovery().list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| aws_err("servicediscovery:ListTagsForResource", e))?;
        Ok(user_visible(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string()))))
    }
    async fn by_name(&self, aws: &Aws) -> Result<Option<sd::NamespaceSummary>, NodeError> {
        let filter = sd::NamespaceFilter::builder().name(sd::NamespaceFilterName::Type).values("HTTP").build().map_err(|e| NodeError::other(e.to_string()))?;
        let mut pages = aws.servicediscovery().list_namespaces().filters(filter).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("servicediscovery:ListNamespaces", e))?;
            if let Some(n) = page.namespaces().iter().find(|n| n.name() == Some(self.name.as_str())) {
                return Ok(Some(n.clone()));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Node<Aws> for HttpNamespaceNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn describe(&self) -> String {
        format!("Cloud Map namespace {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({"name": self.name, "description": self.description, "tags": tags_json(&self.wanted_tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Some(n) = self.by_name(aws).await? else { return Ok(Found::None) };
        let arn = n.arn().unwrap_or_default().to_string();
        Ok(Found::Tagged(Identity::new(&arn), Self::tags(aws, &arn).await?))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .servicediscovery()
            .create_http_namespace()
            .name(&self.name)
            .description(&self.description)
            // A retried create whose first answer was lost is the same request.
            .creator_request_id(crate::engine::names::short_hash(&format!("{}/{}", cx.lease.token, self.key)))
            .set_tags(Some(sd_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("servicediscovery:CreateHttpNamespace", e))?;
        let op = out.operation_id().ok_or_else(|| NodeError::no_identity("servicediscovery:CreateHttpNamespace"))?;
        let targets = wait_operation(aws, op, &format!("namespace {} to be created", self.name), cx).await?;
        let id = targets.get(&sd::OperationTargetType::Namespace).cloned().ok_or_else(|| NodeError::no_identity("servicediscovery:GetOperation"))?;
        let ns = aws.servicediscovery().get_namespace().id(&id).send().await.map_err(|e| NodeError::from(aws_err("servicediscovery:GetNamespace", e)))?;
        let arn = ns.namespace().and_then(|n| n.arn()).ok_or_else(|| NodeError::no_identity("servicediscovery:GetNamespace"))?;
        Ok(Made::id(arn).with("name", &self.name))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        match aws.servicediscovery().get_namespace().id(namespace_id(&id.id)).send().await.map_err(|e| aws_err("servicediscovery:GetNamespace", e)) {
            Ok(o) => match o.namespace() {
                // Tags are read too: an import must tell this resource's namespace from a user's.
                Some(n) => Ok(Some(spec(json!({"name": n.name(), "description": n.description().unwrap_or_default(), "tags": tags_json(&Self::tags(aws, &id.id).await?)})))),
                None => Ok(None),
            },
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let current = match spec_tags(base) {
            Some(t) => t,
            None => Self::tags(aws, &id.id).await?,
        };
        let (add, remove) = tag_diff(&current, &self.wanted_tags());
        if !add.is_empty() {
            aws.servicediscovery().tag_resource().resource_arn(&id.id).set_tags(Some(sd_tags(&add))).send().await.map_err(|e| aws_err("servicediscovery:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.servicediscovery().untag_resource().resource_arn(&id.id).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("servicediscovery:UntagResource", e))?;
        }
        Ok(Made::identity(id.clone()).with("name", &self.name))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let out = match aws.servicediscovery().delete_namespace().id(namespace_id(&id.id)).send().await.map_err(|e| aws_err("servicediscovery:DeleteNamespace", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if let Some(op) = out.operation_id() {
            wait_operation(aws, op, &format!("namespace {} to be deleted", self.name), cx).await?;
        }
        Ok(())
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.servicediscovery()
            .tag_resource()
            .resource_arn(&id.id)
            .set_tags(Some(sd_tags(&[(k, v)].into())))
            .send()
            .await
            .map_err(|e| aws_err("servicediscovery:TagResource", e))?;
        Ok(())
    }
}
