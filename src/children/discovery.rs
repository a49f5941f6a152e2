//! Cloud Map: an HTTP namespace (Service Connect's default namespace for a
//! cluster) and a service in a namespace (an ECS service's registry). Cloud
//! Map creates and deletes namespaces asynchronously: both wait for the
//! operation to finish.

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

async fn sd_tags_of(aws: &Aws, arn: &str) -> Result<Tags, NodeError> {
    let out = aws.servicediscovery().list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| aws_err("servicediscovery:ListTagsForResource", e))?;
    Ok(user_visible(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string()))))
}

/// Put the wanted tags on a Cloud Map object (`base` holds the current ones when observed).
async fn sd_retag(aws: &Aws, arn: &str, base: &Spec, wanted: &Tags) -> Result<(), NodeError> {
    let current = match spec_tags(base) {
        Some(t) => t,
        None => sd_tags_of(aws, arn).await?,
    };
    let (add, remove) = tag_diff(&current, wanted);
    if !add.is_empty() {
        aws.servicediscovery().tag_resource().resource_arn(arn).set_tags(Some(sd_tags(&add))).send().await.map_err(|e| aws_err("servicediscovery:TagResource", e))?;
    }
    if !remove.is_empty() {
        aws.servicediscovery().untag_resource().resource_arn(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("servicediscovery:UntagResource", e))?;
    }
    Ok(())
}

async fn sd_release(aws: &Aws, arn: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
    let (k, v) = cx.recorded_tag();
    aws.servicediscovery().tag_resource().resource_arn(arn).set_tags(Some(sd_tags(&[(k, v)].into()))).send().await.map_err(|e| aws_err("servicediscovery:TagResource", e))?;
    Ok(())
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
        Ok(Found::Tagged(Identity::new(&arn), sd_tags_of(aws, &arn).await?))
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
                Some(n) => Ok(Some(spec(json!({"name": n.name(), "description": n.description().unwrap_or_default(), "tags": tags_json(&sd_tags_of(aws, &id.id).await?)})))),
                None => Ok(None),
            },
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        sd_retag(aws, &id.id, base, &self.wanted_tags()).await?;
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
        sd_release(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ service

/// A Cloud Map service an ECS service registers its tasks in.
pub struct CloudMapServiceNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    /// `ns-…`
    pub namespace_id: String,
    /// (record type `A` or `SRV`, TTL); none: discovered through the API only (HTTP namespaces).
    pub dns: Option<(String, i64)>,
    pub description: String,
    /// False when the composite does not want it: a recorded one is deleted.
    pub wanted: bool,
}

/// `srv-…` from a Cloud Map service ARN (`…:service/srv-…`).
fn service_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// A Cloud Map service as import sees it: (namespace ID, name, DNS record type and TTL, tags).
pub async fn describe_service(aws: &Aws, arn: &str) -> Result<Option<(String, String, Option<(String, i64)>, Tags)>, NodeError> {
    let svc = match aws.servicediscovery().get_service().id(service_id(arn)).send().await.map_err(|e| aws_err("servicediscovery:GetService", e)) {
        Ok(o) => o.service().cloned(),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let Some(svc) = svc else { return Ok(None) };
    let dns = svc.dns_config().and_then(|d| d.dns_records().first()).map(|r| (r.r#type().as_str().to_string(), r.ttl()));
    Ok(Some((svc.namespace_id().unwrap_or_default().to_string(), svc.name().unwrap_or_default().to_string(), dns, sd_tags_of(aws, arn).await?)))
}

impl CloudMapServiceNode {
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    fn dns_json(&self) -> serde_json::Value {
        self.dns.as_ref().map(|(t, ttl)| json!({"type": t, "ttl": ttl})).unwrap_or(serde_json::Value::Null)
    }
    fn dns_config(&self) -> Result<Option<sd::DnsConfig>, NodeError> {
        let Some((t, ttl)) = &self.dns else { return Ok(None) };
        let bad = |e: aws_sdk_servicediscovery::error::BuildError| NodeError::other(format!("internal error building the DNS configuration: {e}"));
        let record = sd::DnsRecord::builder().r#type(sd::RecordType::from(t.as_str())).ttl(*ttl).build().map_err(bad)?;
        Ok(Some(sd::DnsConfig::builder().dns_records(record).routing_policy(sd::RoutingPolicy::Multivalue).build().map_err(bad)?))
    }
}

#[async_trait]
impl Node<Aws> for CloudMapServiceNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("Cloud Map service {} in namespace {}", self.name, self.namespace_id)
    }
    fn spec(&self) -> Spec {
        spec(json!({"name": self.name, "namespace": self.namespace_id, "dns": self.dns_json(), "description": self.description, "tags": tags_json(&self.wanted_tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name", "namespace", "dns"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let filter = sd::ServiceFilter::builder().name(sd::ServiceFilterName::NamespaceId).values(&self.namespace_id).build().map_err(|e| NodeError::other(e.to_string()))?;
        let mut pages = aws.servicediscovery().list_services().filters(filter).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_err("servicediscovery:ListServices", e))?;
            if let Some(arn) = page.services().iter().find(|s| s.name() == Some(self.name.as_str())).and_then(|s| s.arn()) {
                return Ok(Found::Tagged(Identity::new(arn), sd_tags_of(aws, arn).await?));
            }
        }
        Ok(Found::None)
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .servicediscovery()
            .create_service()
            .name(&self.name)
            .namespace_id(&self.namespace_id)
            .description(&self.description)
            .set_dns_config(self.dns_config()?)
            // A retried create whose first answer was lost is the same request.
            .creator_request_id(crate::engine::names::short_hash(&format!("{}/{}", cx.lease.token, self.key)))
            .set_tags(Some(sd_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("servicediscovery:CreateService", e))?;
        let arn = out.service().and_then(|s| s.arn()).ok_or_else(|| NodeError::no_identity("servicediscovery:CreateService"))?;
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let svc = match aws.servicediscovery().get_service().id(service_id(&id.id)).send().await.map_err(|e| aws_err("servicediscovery:GetService", e)) {
            Ok(o) => match o.service() {
                Some(s) => s.clone(),
                None => return Ok(None),
            },
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let dns = svc.dns_config().and_then(|d| d.dns_records().first()).map(|r| json!({"type": r.r#type().as_str(), "ttl": r.ttl()})).unwrap_or(serde_json::Value::Null);
        Ok(Some(spec(json!({
            "name": svc.name(), "namespace": svc.namespace_id(), "dns": dns, "description": svc.description().unwrap_or_default(),
            "tags": tags_json(&sd_tags_of(aws, &id.id).await?),
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        if base.get("description") != Some(&json!(self.description)) {
            let change = sd::ServiceChange::builder().description(&self.description).build();
            aws.servicediscovery().update_service().id(service_id(&id.id)).service(change).send().await.map_err(|e| aws_err("servicediscovery:UpdateService", e))?;
        }
        sd_retag(aws, &id.id, base, &self.wanted_tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let what = format!("Cloud Map service {} to be deletable", self.name);
        until(&what, cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || async {
            match aws.servicediscovery().delete_service().id(service_id(&id.id)).send().await.map_err(|e| aws_err("servicediscovery:DeleteService", e)) {
                Ok(_) => Ok(Poll::Done(())),
                Err(e) if e.is_not_found() => Ok(Poll::Done(())),
                // ECS deregisters the tasks as they stop.
                Err(e) if e.is_code(&["ResourceInUse"]) => Ok(Poll::Pending("instances are still registered".to_string())),
                Err(e) => Err(NodeError::from(e)),
            }
        })
        .await
        .map_err(|e| wait_err("Cloud Map service deletion", e))
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        sd_release(aws, &id.id, cx).await
    }
}
