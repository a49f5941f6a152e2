//! Load balancer children of a service: an IP target group and the listener
//! rule that forwards to it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types as elb;
use serde_json::json;

use super::{Common, Ref, tag_diff, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Made, Node, NodeError, OWNER_TAG, Observed};

pub fn elb_tags(t: &BTreeMap<String, String>) -> Vec<elb::Tag> {
    t.iter().map(|(k, v)| elb::Tag::builder().key(k).value(v).build()).collect()
}

pub async fn elb_tags_of(aws: &Aws, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = aws.elbv2().describe_tags().resource_arns(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTags", e))?;
    Ok(out.tag_descriptions().iter().flat_map(|d| d.tags()).filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect())
}

pub async fn reconcile_elb_tags(aws: &Aws, arn: &str, desired: &BTreeMap<String, String>) -> Result<(), NodeError> {
    let (add, remove) = tag_diff(&elb_tags_of(aws, arn).await?, desired);
    if !add.is_empty() {
        aws.elbv2().add_tags().resource_arns(arn).set_tags(Some(elb_tags(&add))).send().await.map_err(|e| aws_err("elasticloadbalancing:AddTags", e))?;
    }
    if !remove.is_empty() {
        aws.elbv2().remove_tags().resource_arns(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("elasticloadbalancing:RemoveTags", e))?;
    }
    Ok(())
}

// ------------------------------------------------------------------ target group

pub struct TargetGroupNode {
    pub c: Arc<Common>,
    pub key: String,
    /// At most 32 characters.
    pub name: String,
    pub port: i64,
    /// The VPC, or a subnet (`subnet-…`) whose VPC the group goes in.
    pub vpc: Ref,
    pub health_path: String,
    pub matcher: String,
    /// False when the composite does not want the group (e.g. no load balancer): a recorded one is deleted.
    pub wanted: bool,
}

impl TargetGroupNode {
    async fn get(aws: &Aws, arn: &str) -> Result<Option<elb::TargetGroup>, NodeError> {
        match aws.elbv2().describe_target_groups().target_group_arns(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTargetGroups", e)) {
            Ok(o) => Ok(o.target_groups().first().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn wanted_tags(&self) -> BTreeMap<String, String> {
        self.c.tags_for(&self.key, None)
    }
    async fn vpc_id(&self, aws: &Aws, cx: &Cx<'_>) -> Result<String, NodeError> {
        let v = self.vpc.resolve(cx)?;
        if v.starts_with("subnet-") { super::network::vpc_of_subnet(aws, &v).await } else { Ok(v) }
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
        self.vpc.key().into_iter().collect()
    }
    fn describe(&self) -> String {
        format!("target group {}", self.name)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"name": self.name, "port": self.port, "vpc": self.vpc.spec(), "path": self.health_path, "matcher": self.matcher, "tags": self.wanted_tags()})
    }
    /// A new port or VPC needs a new target group.
    fn update_replaces(&self) -> bool {
        true
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = match aws.elbv2().describe_target_groups().names(&self.name).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTargetGroups", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(Found::None),
            Err(e) => return Err(e.into()),
        };
        let Some(arn) = out.target_groups().first().and_then(|t| t.target_group_arn()) else { return Ok(Found::None) };
        let tags = elb_tags_of(aws, arn).await?;
        Ok(self.c.owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_found(arn, &self.describe()))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = self.vpc_id(aws, cx).await?;
        let out = aws
            .elbv2()
            .create_target_group()
            .name(&self.name)
            .protocol(elb::ProtocolEnum::Http)
            .port(self.port as i32)
            .vpc_id(vpc)
            .target_type(elb::TargetTypeEnum::Ip)
            .health_check_protocol(elb::ProtocolEnum::Http)
            .health_check_path(&self.health_path)
            .matcher(elb::Matcher::builder().http_code(&self.matcher).build())
            .set_tags(Some(elb_tags(&self.wanted_tags())))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateTargetGroup", e))?;
        let arn = out.target_groups().first().and_then(|t| t.target_group_arn()).ok_or_else(|| NodeError::other("CreateTargetGroup returned no target group"))?;
        Ok(Made::id(arn))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let Some(tg) = Self::get(aws, id).await? else { return Ok(Observed::Gone) };
        let (path, matcher) = (tg.health_check_path().unwrap_or_default(), tg.matcher().and_then(|m| m.http_code()).unwrap_or_default());
        Ok(if path != self.health_path || matcher != self.matcher {
            Observed::Drifted(format!("health check is {path} ({matcher}), configuration says {} ({})", self.health_path, self.matcher))
        } else {
            Observed::InSync
        })
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let tg = Self::get(aws, id).await?;
        let same = tg.as_ref().is_some_and(|t| t.target_group_name() == Some(self.name.as_str()) && t.port() == Some(self.port as i32));
        if !same {
            // Another name or port (or it is gone): a new group; the old one is deleted after the switch.
            return self.create(aws, cx).await;
        }
        aws.elbv2()
            .modify_target_group()
            .target_group_arn(id)
            .health_check_path(&self.health_path)
            .matcher(elb::Matcher::builder().http_code(&self.matcher).build())
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:ModifyTargetGroup", e))?;
        reconcile_elb_tags(aws, id, &self.wanted_tags()).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        until(&format!("target group {id} to be deletable"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || async {
            match aws.elbv2().delete_target_group().target_group_arn(id).send().await.map_err(|e| aws_err("elasticloadbalancing:DeleteTargetGroup", e)) {
                Ok(_) => Ok(Poll::Done(())),
                Err(e) if e.is_not_found() => Ok(Poll::Done(())),
                Err(e) if e.is_code(&["ResourceInUse"]) => Ok(Poll::Pending("still in use by a listener rule".to_string())),
                Err(e) => Err(NodeError::from(e)),
            }
        })
        .await
        .map_err(|e| wait_err("target group deletion", e))
    }
}

// ------------------------------------------------------------------ listener rule

pub struct ListenerRuleNode {
    pub c: Arc<Common>,
    pub key: String,
    pub listener: Ref,
    pub target_group: Ref,
    pub priority: i64,
    pub host_header: Option<String>,
    pub path_pattern: Option<String>,
    /// False when the composite does not want the rule (e.g. no load balancer): a recorded one is deleted.
    pub wanted: bool,
}

/// `...:listener-rule/app/lb/1/2/3` → `...:listener/app/lb/1/2`.
pub fn listener_of_rule(rule_arn: &str) -> String {
    let l = rule_arn.replacen(":listener-rule/", ":listener/", 1);
    l.rsplit_once('/').map(|(a, _)| a.to_string()).unwrap_or(l)
}

/// (host header, path pattern) of a rule as AWS reports it.
pub fn conditions_of(rule: &elb::Rule) -> (Option<String>, Option<String>) {
    let mut host = None;
    let mut path = None;
    for c in rule.conditions() {
        let vals: Vec<String> = match c.field() {
            Some("host-header") => c.host_header_config().map(|h| h.values().to_vec()).filter(|v| !v.is_empty()).unwrap_or_else(|| c.values().to_vec()),
            Some("path-pattern") => c.path_pattern_config().map(|h| h.values().to_vec()).filter(|v| !v.is_empty()).unwrap_or_else(|| c.values().to_vec()),
            _ => continue,
        };
        match c.field() {
            Some("host-header") => host = vals.first().cloned(),
            _ => path = vals.first().cloned(),
        }
    }
    (host, path)
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
    fn conditions(&self) -> Vec<elb::RuleCondition> {
        let mut v = Vec::new();
        if let Some(h) = &self.host_header {
            v.push(elb::RuleCondition::builder().field("host-header").host_header_config(elb::HostHeaderConditionConfig::builder().values(h).build()).build());
        }
        if let Some(p) = &self.path_pattern {
            v.push(elb::RuleCondition::builder().field("path-pattern").path_pattern_config(elb::PathPatternConditionConfig::builder().values(p).build()).build());
        }
        v
    }
    async fn get(aws: &Aws, arn: &str) -> Result<Option<elb::Rule>, NodeError> {
        match aws.elbv2().describe_rules().rule_arns(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeRules", e)) {
            Ok(o) => Ok(o.rules().first().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn wanted_tags(&self) -> BTreeMap<String, String> {
        self.c.tags_for(&self.key, None)
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
    fn spec(&self) -> serde_json::Value {
        json!({"listener": self.listener.spec(), "priority": self.priority, "host": self.host_header, "path": self.path_pattern, "tags": self.wanted_tags()})
    }
    /// Moving to another listener needs a new rule.
    fn update_replaces(&self) -> bool {
        true
    }
    async fn adopt(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let listener = self.listener.resolve(cx)?;
        let out = aws.elbv2().describe_rules().listener_arn(&listener).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeRules", e))?;
        let rules: Vec<_> = out.rules().iter().filter(|r| r.is_default() != Some(true)).collect();
        let want_child = self.key.as_str();
        for chunk in rules.chunks(20) {
            let arns: Vec<String> = chunk.iter().filter_map(|r| r.rule_arn().map(str::to_string)).collect();
            if arns.is_empty() {
                continue;
            }
            let tags = aws.elbv2().describe_tags().set_resource_arns(Some(arns)).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTags", e))?;
            for d in tags.tag_descriptions() {
                let has = |k: &str, v: &str| d.tags().iter().any(|t| t.key() == Some(k) && t.value() == Some(v));
                if has(OWNER_TAG, self.c.owner.tag_value()) && has(super::CHILD_TAG, want_child) {
                    return Ok(Found::Owned(d.resource_arn().unwrap_or_default().to_string()));
                }
            }
        }
        if rules.iter().any(|r| r.priority() == Some(self.priority.to_string().as_str())) {
            return Ok(Found::Foreign(format!("the listener already has a rule with priority {} that is not tagged {OWNER_TAG}", self.priority)));
        }
        Ok(Found::None)
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .elbv2()
            .create_rule()
            .listener_arn(self.listener.resolve(cx)?)
            .priority(self.priority as i32)
            .set_conditions(Some(self.conditions()))
            .actions(forward(&self.target_group.resolve(cx)?))
            .set_tags(Some(elb_tags(&self.wanted_tags())))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateRule", e))?;
        let arn = out.rules().first().and_then(|r| r.rule_arn()).ok_or_else(|| NodeError::other("CreateRule returned no rule"))?;
        Ok(Made::id(arn))
    }
    async fn read(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let Some(rule) = Self::get(aws, id).await? else { return Ok(Observed::Gone) };
        let mut diffs = Vec::new();
        if rule.priority() != Some(self.priority.to_string().as_str()) {
            diffs.push(format!("priority is {}, configuration says {}", rule.priority().unwrap_or("none"), self.priority));
        }
        if conditions_of(&rule) != (self.host_header.clone(), self.path_pattern.clone()) {
            diffs.push("conditions differ".to_string());
        }
        if let Ok(tg) = self.target_group.resolve(cx) {
            if forward_target(&rule).as_deref() != Some(tg.as_str()) {
                diffs.push("it no longer forwards to the service's target group".to_string());
            }
        }
        Ok(if diffs.is_empty() { Observed::InSync } else { Observed::Drifted(diffs.join("; ")) })
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let Some(rule) = Self::get(aws, id).await? else { return self.create(aws, cx).await };
        if listener_of_rule(id) != self.listener.resolve(cx)? {
            return self.create(aws, cx).await;
        }
        aws.elbv2()
            .modify_rule()
            .rule_arn(id)
            .set_conditions(Some(self.conditions()))
            .actions(forward(&self.target_group.resolve(cx)?))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:ModifyRule", e))?;
        if rule.priority() != Some(self.priority.to_string().as_str()) {
            aws.elbv2()
                .set_rule_priorities()
                .rule_priorities(elb::RulePriorityPair::builder().rule_arn(id).priority(self.priority as i32).build())
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:SetRulePriorities", e))?;
        }
        reconcile_elb_tags(aws, id, &self.wanted_tags()).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.elbv2().delete_rule().rule_arn(id).send().await.map_err(|e| aws_err("elasticloadbalancing:DeleteRule", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
