//! Load balancer children of a service: an IP target group, and the listener
//! rule (ALB) or the TCP listener (NLB) that forwards to it. Also the ELBv2
//! tag helpers the edge kinds share.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types as elb;
use serde_json::json;

use super::network::{VpcOf, vpc_of_subnet};
use super::{Common, Ref, spec_tags, tag_diff, tags_json, user_visible, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{CHILD_TAG, Cx, Found, Identity, Made, Node, NodeError, OWNER_TAG, Spec, Tags, spec};

pub fn elb_tags(t: &Tags) -> Vec<elb::Tag> {
    t.iter().map(|(k, v)| elb::Tag::builder().key(k).value(v).build()).collect()
}

/// Tags of up to 20 ELBv2 resources in one call: ARN → tags.
pub async fn elb_tags_of_many(aws: &Aws, arns: &[String]) -> Result<BTreeMap<String, Tags>, AwsError> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let d = aws.elbv2().describe_tags().set_resource_arns(Some(chunk.to_vec())).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTags", e))?;
        for t in d.tag_descriptions() {
            let tags = user_visible(t.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))));
            out.insert(t.resource_arn().unwrap_or_default().to_string(), tags);
        }
    }
    Ok(out)
}

pub async fn elb_tags_of(aws: &Aws, arn: &str) -> Result<Tags, AwsError> {
    Ok(elb_tags_of_many(aws, &[arn.to_string()]).await?.remove(arn).unwrap_or_default())
}

/// CreateLoadBalancer and CreateTargetGroup answer a repeat of the same name
/// and settings with the object that exists (AWS documents it as
/// idempotent), tags unchanged. What a create got back is only new if it
/// carries this apply's lease; anything else is reported as the name being
/// taken, so the engine judges the existing object's ownership.
pub async fn elb_created_by_this_apply(aws: &Aws, arn: &str, operation: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
    let tags = elb_tags_of(aws, arn).await.map_err(|e| NodeError::from(e).with_id(arn))?;
    if tags.get(crate::engine::LEASE_TAG) == Some(&cx.lease_tag().1) {
        return Ok(());
    }
    Err(NodeError::from(AwsError {
        operation: operation.to_string(),
        code: Some(
            if operation.ends_with("TargetGroup") {
                "DuplicateTargetGroupName"
            } else if operation.ends_with("Listener") {
                "DuplicateListener"
            } else {
                "DuplicateLoadBalancerName"
            }
            .to_string(),
        ),
        message: format!("{arn} existed before this create (the same name and settings)"),
        unreachable: false,
    }))
}

/// Bring an ELBv2 resource's tags from `current` (read when unknown) to `desired`.
pub async fn elb_retag(aws: &Aws, arn: &str, current: Option<Tags>, desired: &Tags) -> Result<(), NodeError> {
    let current = match current {
        Some(c) => c,
        None => elb_tags_of(aws, arn).await?,
    };
    let (add, remove) = tag_diff(&current, desired);
    if !add.is_empty() {
        aws.elbv2().add_tags().resource_arns(arn).set_tags(Some(elb_tags(&add))).send().await.map_err(|e| aws_err("elasticloadbalancing:AddTags", e))?;
    }
    if !remove.is_empty() {
        aws.elbv2().remove_tags().resource_arns(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("elasticloadbalancing:RemoveTags", e))?;
    }
    Ok(())
}

/// Delete a listener; one already gone counts as deleted.
pub async fn delete_listener(aws: &Aws, arn: &str) -> Result<(), NodeError> {
    match aws.elbv2().delete_listener().listener_arn(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DeleteListener", e)) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Mark an ELBv2 resource's creation lease recorded.
pub async fn elb_release(aws: &Aws, arn: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
    let (k, v) = cx.recorded_tag();
    aws.elbv2().add_tags().resource_arns(arn).tags(elb::Tag::builder().key(k).value(v).build()).send().await.map_err(|e| aws_err("elasticloadbalancing:AddTags", e))?;
    Ok(())
}

// ------------------------------------------------------------------ target group

/// The target group's health check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthCheck {
    pub path: String,
    pub matcher: String,
    pub interval: i64,
    pub timeout: i64,
    pub healthy_threshold: i64,
    pub unhealthy_threshold: i64,
    /// `traffic-port` or a port number.
    pub port: String,
    /// `HTTP`, `HTTPS` or `TCP` (TCP checks have no path and no matcher).
    pub protocol: String,
}

impl HealthCheck {
    pub fn http(path: &str, matcher: &str) -> HealthCheck {
        HealthCheck {
            path: path.into(),
            matcher: matcher.into(),
            interval: 30,
            timeout: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            port: "traffic-port".into(),
            protocol: "HTTP".into(),
        }
    }
    /// A TCP connect check (network load balancers' default).
    pub fn tcp() -> HealthCheck {
        HealthCheck {
            path: String::new(),
            matcher: String::new(),
            interval: 30,
            timeout: 10,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            port: "traffic-port".into(),
            protocol: "TCP".into(),
        }
    }
    fn is_tcp(&self) -> bool {
        self.protocol == "TCP"
    }
}

/// The protocol target groups have unless a node says otherwise; it is left
/// out of specs, so target groups made before the protocol was a field read the same.
pub const DEFAULT_TG_PROTOCOL: &str = "HTTP";

pub struct TargetGroupNode {
    pub c: Arc<Common>,
    pub key: String,
    /// At most 32 characters.
    pub name: String,
    pub port: i64,
    /// `HTTP` (behind an ALB listener rule) or `TCP` (behind an NLB listener).
    pub protocol: String,
    pub vpc: VpcOf,
    pub health: HealthCheck,
    /// Target group attributes (`deregistration_delay.timeout_seconds`, `stickiness.*`).
    pub attributes: BTreeMap<String, String>,
    /// False when the composite does not want the group (no load balancer): a recorded one is deleted.
    pub wanted: bool,
}

impl TargetGroupNode {
    async fn get(aws: &Aws, arn: &str) -> Result<Option<elb::TargetGroup>, NodeError> {
        Ok(aws.read_target_group(arn).await?)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn vpc_id(&self, aws: &Aws, cx: &Cx<'_>) -> Result<String, NodeError> {
        match &self.vpc {
            VpcOf::Vpc(r) => r.resolve(cx),
            VpcOf::Subnet(s) => vpc_of_subnet(aws, s).await,
        }
    }
    fn health_json(h: &HealthCheck) -> serde_json::Value {
        serde_json::to_value(h).unwrap_or_default()
    }
    fn observed_health(tg: &elb::TargetGroup) -> serde_json::Value {
        json!({
            "path": tg.health_check_path().unwrap_or_default(), "matcher": tg.matcher().and_then(|m| m.http_code()).unwrap_or_default(),
            "interval": tg.health_check_interval_seconds().unwrap_or(30), "timeout": tg.health_check_timeout_seconds().unwrap_or(5),
            "healthy_threshold": tg.healthy_threshold_count().unwrap_or(5), "unhealthy_threshold": tg.unhealthy_threshold_count().unwrap_or(2),
            "port": tg.health_check_port().unwrap_or("traffic-port"), "protocol": tg.health_check_protocol().map(|p| p.as_str()).unwrap_or("HTTP"),
        })
    }
    async fn set_attributes(&self, aws: &Aws, arn: &str) -> Result<(), NodeError> {
        if self.attributes.is_empty() {
            return Ok(());
        }
        let attrs: Vec<elb::TargetGroupAttribute> = self.attributes.iter().map(|(k, v)| elb::TargetGroupAttribute::builder().key(k).value(v).build()).collect();
        aws.elbv2()
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .set_attributes(Some(attrs))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:ModifyTargetGroupAttributes", e))?;
        Ok(())
    }
    /// Delete the rules and NLB listeners this composite owns that still
    /// forward to the group (one created by an apply whose answer was lost is in no record).
    async fn delete_owned_rules(&self, aws: &Aws, arn: &str) -> Result<(), NodeError> {
        let Some(tg) = Self::get(aws, arn).await? else { return Ok(()) };
        for lb in tg.load_balancer_arns() {
            let listeners = aws.elbv2().describe_listeners().load_balancer_arn(lb).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeListeners", e))?;
            // NLB listeners only (TCP): an application load balancer's listener is never swept.
            let forwarding: Vec<String> = listeners
                .listeners()
                .iter()
                .filter(|l| l.protocol() == Some(&elb::ProtocolEnum::Tcp) && listener_forward_target(l).as_deref() == Some(arn))
                .filter_map(|l| l.listener_arn().map(str::to_string))
                .collect();
            for (la, tags) in elb_tags_of_many(aws, &forwarding).await? {
                if tags.get(OWNER_TAG).map(String::as_str) == Some(self.c.owner.tag_value()) {
                    tracing::warn!(target: "cxflow::children::lb", listener = la.as_str(), "deleting an owned listener no record knew, so the target group can go");
                    delete_listener(aws, &la).await?;
                }
            }
            for l in listeners.listeners() {
                let Some(la) = l.listener_arn() else { continue };
                // Only application load balancer listeners have rules.
                if forwarding.iter().any(|f| f == la) || !matches!(l.protocol(), Some(elb::ProtocolEnum::Http | elb::ProtocolEnum::Https)) {
                    continue;
                }
                let rules = aws.elbv2().describe_rules().listener_arn(la).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeRules", e))?;
                let pointing: Vec<String> = rules.rules().iter().filter(|r| forward_target(r).as_deref() == Some(arn)).filter_map(|r| r.rule_arn().map(str::to_string)).collect();
                for (rule, tags) in elb_tags_of_many(aws, &pointing).await? {
                    if tags.get(OWNER_TAG).map(String::as_str) == Some(self.c.owner.tag_value()) {
                        tracing::warn!(target: "cxflow::children::lb", rule = rule.as_str(), "deleting an owned listener rule no record knew, so the target group can go");
                        aws.elbv2().delete_rule().rule_arn(&rule).send().await.map_err(|e| aws_err("elasticloadbalancing:DeleteRule", e))?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Node<Aws> for TargetGroupNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn deps(&self) -> Vec<&str> {
        match &self.vpc {
            VpcOf::Vpc(r) => r.key().into_iter().collect(),
            VpcOf::Subnet(_) => Vec::new(),
        }
    }
    fn describe(&self) -> String {
        format!("target group {}", self.name)
    }
    fn spec(&self) -> Spec {
        let mut s = spec(
            json!({"name": self.name, "port": self.port, "health_check": Self::health_json(&self.health), "attributes": self.attributes, "tags": tags_json(&self.wanted_tags())}),
        );
        if let VpcOf::Vpc(r) = &self.vpc {
            s.insert("vpc".into(), json!(r.spec()));
        }
        if self.protocol != DEFAULT_TG_PROTOCOL {
            s.insert("protocol".into(), json!(self.protocol));
        }
        s
    }
    /// A new name, port, protocol or VPC needs a new target group.
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name", "port", "protocol", "vpc"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = match aws.elbv2().describe_target_groups().names(&self.name).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTargetGroups", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(Found::None),
            Err(e) => return Err(e.into()),
        };
        let Some(arn) = out.target_groups().first().and_then(|t| t.target_group_arn()) else { return Ok(Found::None) };
        Ok(Found::Tagged(Identity::new(arn), elb_tags_of(aws, arn).await?))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = self.vpc_id(aws, cx).await?;
        let h = &self.health;
        let out = aws
            .elbv2()
            .create_target_group()
            .name(&self.name)
            .protocol(elb::ProtocolEnum::from(self.protocol.as_str()))
            .port(self.port as i32)
            .vpc_id(vpc)
            .target_type(elb::TargetTypeEnum::Ip)
            .health_check_protocol(elb::ProtocolEnum::from(h.protocol.as_str()))
            .set_health_check_path((!h.is_tcp()).then(|| h.path.clone()))
            .health_check_port(&h.port)
            .health_check_interval_seconds(h.interval as i32)
            .health_check_timeout_seconds(h.timeout as i32)
            .healthy_threshold_count(h.healthy_threshold as i32)
            .unhealthy_threshold_count(h.unhealthy_threshold as i32)
            .set_matcher((!h.is_tcp() && !h.matcher.is_empty()).then(|| elb::Matcher::builder().http_code(&h.matcher).build()))
            .set_tags(Some(elb_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateTargetGroup", e))?;
        let arn = out.target_groups().first().and_then(|t| t.target_group_arn()).ok_or_else(|| NodeError::no_identity("elasticloadbalancing:CreateTargetGroup"))?.to_string();
        elb_created_by_this_apply(aws, &arn, "elasticloadbalancing:CreateTargetGroup", cx).await?;
        self.set_attributes(aws, &arn).await.map_err(|e| e.with_id(&arn))?;
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(tg) = Self::get(aws, &id.id).await? else { return Ok(None) };
        let mut s = spec(json!({"name": tg.target_group_name(), "port": tg.port(), "health_check": Self::observed_health(&tg)}));
        if let (VpcOf::Vpc(r), Some(v)) = (&self.vpc, tg.vpc_id()) {
            s.insert("vpc".into(), json!(r.observed(v, cx)));
        }
        if let Some(p) = tg.protocol().map(|p| p.as_str()).filter(|p| *p != DEFAULT_TG_PROTOCOL) {
            s.insert("protocol".into(), json!(p));
        }
        if !self.attributes.is_empty() {
            let a = aws
                .elbv2()
                .describe_target_group_attributes()
                .target_group_arn(&id.id)
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:DescribeTargetGroupAttributes", e))?;
            let have: BTreeMap<String, String> =
                a.attributes().iter().filter_map(|x| Some((x.key()?.to_string(), x.value()?.to_string()))).filter(|(k, _)| self.attributes.contains_key(k)).collect();
            s.insert("attributes".into(), json!(have));
        }
        Ok(Some(s))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let arn = id.id.as_str();
        if base.get("health_check") != Some(&Self::health_json(&self.health)) {
            let h = &self.health;
            aws.elbv2()
                .modify_target_group()
                .target_group_arn(arn)
                .health_check_protocol(elb::ProtocolEnum::from(h.protocol.as_str()))
                .set_health_check_path((!h.is_tcp()).then(|| h.path.clone()))
                .health_check_port(&h.port)
                .health_check_interval_seconds(h.interval as i32)
                .health_check_timeout_seconds(h.timeout as i32)
                .healthy_threshold_count(h.healthy_threshold as i32)
                .unhealthy_threshold_count(h.unhealthy_threshold as i32)
                .set_matcher((!h.is_tcp() && !h.matcher.is_empty()).then(|| elb::Matcher::builder().http_code(&h.matcher).build()))
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:ModifyTargetGroup", e))?;
        }
        if base.get("attributes") != Some(&json!(self.attributes)) {
            self.set_attributes(aws, arn).await?;
        }
        elb_retag(aws, arn, spec_tags(base), &self.wanted_tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let arn = id.id.as_str();
        let swept = std::sync::atomic::AtomicBool::new(false);
        until(&format!("target group {arn} to be deletable"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || async {
            match aws.elbv2().delete_target_group().target_group_arn(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DeleteTargetGroup", e)) {
                Ok(_) => Ok(Poll::Done(())),
                Err(e) if e.is_not_found() => Ok(Poll::Done(())),
                Err(e) if e.is_code(&["ResourceInUse"]) => {
                    if !swept.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        self.delete_owned_rules(aws, arn).await?;
                    }
                    Ok(Poll::Pending("still in use by a listener rule or listener".to_string()))
                }
                Err(e) => Err(NodeError::from(e)),
            }
        })
        .await
        .map_err(|e| wait_err("target group deletion", e))
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        elb_release(aws, &id.id, cx).await
    }
}

/// A target group's protocol and the load balancers it is attached to (None when it is gone): for import.
pub async fn target_group_summary(aws: &Aws, arn: &str) -> Result<Option<(String, Vec<String>)>, NodeError> {
    Ok(TargetGroupNode::get(aws, arn).await?.map(|tg| (tg.protocol().map(|p| p.as_str().to_string()).unwrap_or_default(), tg.load_balancer_arns().to_vec())))
}

// ------------------------------------------------------------------ listener rule

/// What a listener rule matches. Values within one condition are alternatives;
/// conditions all have to match.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Conditions {
    pub host_headers: Vec<String>,
    pub path_patterns: Vec<String>,
    /// Header name → accepted values.
    pub http_headers: BTreeMap<String, Vec<String>>,
    pub source_ips: Vec<String>,
}

impl Conditions {
    fn normalized(mut self) -> Conditions {
        for v in [&mut self.host_headers, &mut self.path_patterns, &mut self.source_ips] {
            v.sort();
            v.dedup();
        }
        for v in self.http_headers.values_mut() {
            v.sort();
        }
        self
    }
    fn to_aws(&self) -> Vec<elb::RuleCondition> {
        let mut v = Vec::new();
        if !self.host_headers.is_empty() {
            v.push(
                elb::RuleCondition::builder()
                    .field("host-header")
                    .host_header_config(elb::HostHeaderConditionConfig::builder().set_values(Some(self.host_headers.clone())).build())
                    .build(),
            );
        }
        if !self.path_patterns.is_empty() {
            v.push(
                elb::RuleCondition::builder()
                    .field("path-pattern")
                    .path_pattern_config(elb::PathPatternConditionConfig::builder().set_values(Some(self.path_patterns.clone())).build())
                    .build(),
            );
        }
        for (name, values) in &self.http_headers {
            v.push(
                elb::RuleCondition::builder()
                    .field("http-header")
                    .http_header_config(elb::HttpHeaderConditionConfig::builder().http_header_name(name).set_values(Some(values.clone())).build())
                    .build(),
            );
        }
        if !self.source_ips.is_empty() {
            v.push(
                elb::RuleCondition::builder()
                    .field("source-ip")
                    .source_ip_config(elb::SourceIpConditionConfig::builder().set_values(Some(self.source_ips.clone())).build())
                    .build(),
            );
        }
        v
    }
    /// The conditions of a rule as AWS reports them.
    pub fn of(rule: &elb::Rule) -> Conditions {
        let mut c = Conditions::default();
        for cond in rule.conditions() {
            let plain = cond.values().to_vec();
            match cond.field() {
                Some("host-header") => c.host_headers.extend(cond.host_header_config().map(|h| h.values().to_vec()).filter(|v| !v.is_empty()).unwrap_or(plain)),
                Some("path-pattern") => c.path_patterns.extend(cond.path_pattern_config().map(|h| h.values().to_vec()).filter(|v| !v.is_empty()).unwrap_or(plain)),
                Some("source-ip") => c.source_ips.extend(cond.source_ip_config().map(|h| h.values().to_vec()).unwrap_or(plain)),
                Some("http-header") => {
                    if let Some(h) = cond.http_header_config() {
                        c.http_headers.entry(h.http_header_name().unwrap_or_default().to_string()).or_default().extend(h.values().to_vec());
                    }
                }
                _ => {}
            }
        }
        c.normalized()
    }
}

pub struct ListenerRuleNode {
    pub c: Arc<Common>,
    pub key: String,
    pub listener: Ref,
    pub target_group: Ref,
    pub priority: i64,
    pub conditions: Conditions,
    /// False when the composite does not want the rule (no load balancer): a recorded one is deleted.
    pub wanted: bool,
}

/// `...:listener-rule/app/lb/1/2/3` → `...:listener/app/lb/1/2`.
pub fn listener_of_rule(rule_arn: &str) -> String {
    let l = rule_arn.replacen(":listener-rule/", ":listener/", 1);
    l.rsplit_once('/').map(|(a, _)| a.to_string()).unwrap_or(l)
}

/// The target group a rule forwards to.
pub fn forward_target(rule: &elb::Rule) -> Option<String> {
    rule.actions().iter().find_map(|a| {
        a.target_group_arn().map(str::to_string).or_else(|| a.forward_config().and_then(|f| f.target_groups().first()).and_then(|t| t.target_group_arn()).map(str::to_string))
    })
}

fn forward(tg: &str) -> elb::Action {
    elb::Action::builder().r#type(elb::ActionTypeEnum::Forward).target_group_arn(tg).build()
}

impl ListenerRuleNode {
    async fn get(aws: &Aws, arn: &str) -> Result<Option<elb::Rule>, NodeError> {
        Ok(aws.read_rule(arn).await?)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    /// The rule (ours by its tags) that forwards to our target group, on any
    /// listener of the group's load balancers: for import, when the
    /// configuration does not name the listener yet.
    async fn find_by_target_group(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Ok(tg_arn) = self.target_group.resolve(cx) else { return Ok(Found::None) };
        let Some(tg) = TargetGroupNode::get(aws, &tg_arn).await? else { return Ok(Found::None) };
        for lb in tg.load_balancer_arns() {
            let listeners = aws.elbv2().describe_listeners().load_balancer_arn(lb).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeListeners", e))?;
            for l in listeners.listeners().iter().filter_map(|l| l.listener_arn()) {
                let rules = aws.elbv2().describe_rules().listener_arn(l).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeRules", e))?;
                let pointing: Vec<String> = rules
                    .rules()
                    .iter()
                    .filter(|r| r.is_default() != Some(true) && forward_target(r).as_deref() == Some(tg_arn.as_str()))
                    .filter_map(|r| r.rule_arn().map(str::to_string))
                    .collect();
                for (arn, tags) in elb_tags_of_many(aws, &pointing).await? {
                    if tags.get(CHILD_TAG).map(String::as_str) == Some(self.key.as_str()) {
                        return Ok(Found::Tagged(Identity::new(arn), tags));
                    }
                }
            }
        }
        Ok(Found::None)
    }
    fn conditions(&self) -> Conditions {
        self.conditions.clone().normalized()
    }
}

#[async_trait]
impl Node<Aws> for ListenerRuleNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        self.listener.key().into_iter().chain(self.target_group.key()).collect()
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        if self.wanted { format!("listener rule with priority {}", self.priority) } else { "listener rule".to_string() }
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "listener": self.listener.spec(), "priority": self.priority, "conditions": self.conditions(),
            "target_group": self.target_group.spec(), "tags": tags_json(&self.wanted_tags()),
        }))
    }
    /// Moving to another listener needs a new rule.
    fn replaced_by(&self) -> &'static [&'static str] {
        &["listener"]
    }
    fn find_deps(&self) -> Vec<&str> {
        match (&self.listener, self.target_group.key()) {
            (Ref::Dep(k), _) => vec![k.as_str()],
            // No listener named yet (import): found through the target group.
            (Ref::Lit(l), Some(tg)) if l.is_empty() => vec![tg],
            _ => Vec::new(),
        }
    }
    async fn find(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let listener = self.listener.resolve(cx)?;
        if listener.is_empty() {
            return self.find_by_target_group(aws, cx).await;
        }
        let out = match aws.elbv2().describe_rules().listener_arn(&listener).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeRules", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(Found::None),
            Err(e) => return Err(e.into()),
        };
        let rules: Vec<&elb::Rule> = out.rules().iter().filter(|r| r.is_default() != Some(true)).collect();
        let arns: Vec<String> = rules.iter().filter_map(|r| r.rule_arn().map(str::to_string)).collect();
        let tags = elb_tags_of_many(aws, &arns).await?;
        for (arn, t) in &tags {
            if t.get(OWNER_TAG).map(String::as_str) == Some(self.c.owner.tag_value()) && t.get(CHILD_TAG).map(String::as_str) == Some(self.key.as_str()) {
                return Ok(Found::Tagged(Identity::new(arn), t.clone()));
            }
        }
        Ok(match rules.iter().find(|r| r.priority() == Some(self.priority.to_string().as_str())) {
            Some(r) => Found::Tagged(Identity::new(r.rule_arn().unwrap_or_default()), tags.get(r.rule_arn().unwrap_or_default()).cloned().unwrap_or_default()),
            None => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .elbv2()
            .create_rule()
            .listener_arn(self.listener.resolve(cx)?)
            .priority(self.priority as i32)
            .set_conditions(Some(self.conditions().to_aws()))
            .actions(forward(&self.target_group.resolve(cx)?))
            .set_tags(Some(elb_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateRule", e))?;
        let arn = out.rules().first().and_then(|r| r.rule_arn()).ok_or_else(|| NodeError::no_identity("elasticloadbalancing:CreateRule"))?;
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(rule) = Self::get(aws, &id.id).await? else { return Ok(None) };
        let tg = forward_target(&rule).map(|t| self.target_group.observed(&t, cx));
        let listener = self.listener.observed(&listener_of_rule(&id.id), cx);
        Ok(Some(spec(json!({
            "listener": listener, "priority": rule.priority().and_then(|p| p.parse::<i64>().ok()), "conditions": Conditions::of(&rule), "target_group": tg,
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let arn = id.id.as_str();
        let s = self.spec();
        if base.get("conditions") != s.get("conditions") || base.get("target_group") != s.get("target_group") {
            aws.elbv2()
                .modify_rule()
                .rule_arn(arn)
                .set_conditions(Some(self.conditions().to_aws()))
                .actions(forward(&self.target_group.resolve(cx)?))
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:ModifyRule", e))?;
        }
        if base.get("priority") != s.get("priority") {
            aws.elbv2()
                .set_rule_priorities()
                .rule_priorities(elb::RulePriorityPair::builder().rule_arn(arn).priority(self.priority as i32).build())
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:SetRulePriorities", e))?;
        }
        elb_retag(aws, arn, spec_tags(base), &self.wanted_tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.elbv2().delete_rule().rule_arn(&id.id).send().await.map_err(|e| aws_err("elasticloadbalancing:DeleteRule", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        elb_release(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ NLB listener

/// The target group a listener's default action forwards to.
pub fn listener_forward_target(l: &elb::Listener) -> Option<String> {
    l.default_actions().iter().find_map(|a| {
        a.target_group_arn().map(str::to_string).or_else(|| a.forward_config().and_then(|f| f.target_groups().first()).and_then(|t| t.target_group_arn()).map(str::to_string))
    })
}

/// `...:loadbalancer/net/name/id` → `name`, for messages.
fn lb_name(arn: &str) -> &str {
    arn.split_once(":loadbalancer/").map(|(_, r)| r.split('/').nth(1).unwrap_or(r)).unwrap_or(arn)
}

/// A TCP listener this composite creates on a network load balancer it does
/// not own; its default action forwards everything to the composite's target
/// group. (An NLB listener has no rules, so sharing one is not possible: the
/// composite takes a port of its own.)
pub struct NlbListenerNode {
    pub c: Arc<Common>,
    pub key: String,
    /// The network load balancer's ARN (empty while import has not learnt it).
    pub load_balancer: String,
    pub port: i64,
    pub target_group: Ref,
    /// False when the composite does not want the listener: a recorded one is deleted.
    pub wanted: bool,
}

impl NlbListenerNode {
    async fn get(aws: &Aws, arn: &str) -> Result<Option<elb::Listener>, NodeError> {
        match aws.elbv2().describe_listeners().listener_arns(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeListeners", e)) {
            Ok(o) => Ok(o.listeners().first().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    fn port_taken(&self, arn: &str) -> String {
        format!(
            "port {} of load balancer {} already has a listener ({arn}) that this resource did not create (DuplicateListener): choose a free port for network_load_balancer.port",
            self.port,
            lb_name(&self.load_balancer)
        )
    }
}

#[async_trait]
impl Node<Aws> for NlbListenerNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        self.target_group.key().into_iter().collect()
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        if self.wanted { format!("TCP listener on port {} of load balancer {}", self.port, lb_name(&self.load_balancer)) } else { "TCP listener".to_string() }
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "load_balancer": self.load_balancer, "port": self.port, "protocol": "TCP",
            "target_group": self.target_group.spec(), "tags": tags_json(&self.wanted_tags()),
        }))
    }
    /// Another load balancer needs a new listener; the port changes in place.
    fn replaced_by(&self) -> &'static [&'static str] {
        &["load_balancer"]
    }
    /// Ours by its tags; any other listener on the port is someone else's.
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        if self.load_balancer.is_empty() {
            return Ok(Found::None);
        }
        let out = match aws.elbv2().describe_listeners().load_balancer_arn(&self.load_balancer).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeListeners", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(Found::None),
            Err(e) => return Err(e.into()),
        };
        let arns: Vec<String> = out.listeners().iter().filter_map(|l| l.listener_arn().map(str::to_string)).collect();
        let tags = elb_tags_of_many(aws, &arns).await?;
        for (arn, t) in &tags {
            if t.get(OWNER_TAG).map(String::as_str) == Some(self.c.owner.tag_value()) && t.get(CHILD_TAG).map(String::as_str) == Some(self.key.as_str()) {
                return Ok(Found::Tagged(Identity::new(arn), t.clone()));
            }
        }
        Ok(match out.listeners().iter().find(|l| l.port() == Some(self.port as i32)) {
            Some(l) => Found::Foreign(self.port_taken(l.listener_arn().unwrap_or_default())),
            None => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .elbv2()
            .create_listener()
            .load_balancer_arn(&self.load_balancer)
            .protocol(elb::ProtocolEnum::Tcp)
            .port(self.port as i32)
            .default_actions(forward(&self.target_group.resolve(cx)?))
            .set_tags(Some(elb_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateListener", e))?;
        let arn = out.listeners().first().and_then(|l| l.listener_arn()).ok_or_else(|| NodeError::no_identity("elasticloadbalancing:CreateListener"))?.to_string();
        // CreateListener answers a listener on the same port with the same settings with that listener.
        elb_created_by_this_apply(aws, &arn, "elasticloadbalancing:CreateListener", cx).await?;
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(l) = Self::get(aws, &id.id).await? else { return Ok(None) };
        let tg = listener_forward_target(&l).map(|t| self.target_group.observed(&t, cx));
        Ok(Some(spec(json!({
            "load_balancer": l.load_balancer_arn(), "port": l.port(), "protocol": l.protocol().map(|p| p.as_str()), "target_group": tg,
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let arn = id.id.as_str();
        let s = self.spec();
        if ["port", "protocol", "target_group"].iter().any(|k| base.get(*k) != s.get(*k)) {
            aws.elbv2()
                .modify_listener()
                .listener_arn(arn)
                .port(self.port as i32)
                .protocol(elb::ProtocolEnum::Tcp)
                .default_actions(forward(&self.target_group.resolve(cx)?))
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:ModifyListener", e))?;
        }
        elb_retag(aws, arn, spec_tags(base), &self.wanted_tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        delete_listener(aws, &id.id).await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        elb_release(aws, &id.id, cx).await
    }
}
