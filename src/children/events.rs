//! EventBridge scheduled rules on the default bus, each with one target
//! started through a role: a CodeBuild project rebuilt on a cron schedule.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eventbridge::types as eb;
use serde_json::json;

use super::{Common, Ref, built, spec_tags, tag_diff, tags_json, user_visible};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

/// The one target's ID in the rule.
const TARGET_ID: &str = "target";

pub struct ScheduleNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub description: String,
    /// `cron(...)` or `rate(...)`, as EventBridge takes it.
    pub schedule: String,
    /// The target's ARN, and the role EventBridge assumes to invoke it.
    pub target: Ref,
    pub role: Ref,
}

impl ScheduleNode {
    fn arn(&self) -> String {
        format!("arn:{}:events:{}:{}:rule/{}", self.c.partition(), self.c.region, self.c.account, self.name)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn put_rule(&self, aws: &Aws, tags: Option<Vec<eb::Tag>>) -> Result<(), NodeError> {
        aws.events()
            .put_rule()
            .name(&self.name)
            .description(&self.description)
            .schedule_expression(&self.schedule)
            .state(eb::RuleState::Enabled)
            .set_tags(tags)
            .send()
            .await
            .map_err(|e| aws_err("events:PutRule", e))?;
        Ok(())
    }
    async fn put_target(&self, aws: &Aws, cx: &Cx<'_>) -> Result<(), NodeError> {
        let t = built(eb::Target::builder().id(TARGET_ID).arn(self.target.resolve(cx)?).role_arn(self.role.resolve(cx)?).build())?;
        let out = aws.events().put_targets().rule(&self.name).targets(t).send().await.map_err(|e| aws_err("events:PutTargets", e))?;
        if let Some(f) = out.failed_entries().first() {
            return Err(NodeError::other(format!("events:PutTargets: {}: {}", f.error_code().unwrap_or("failed"), f.error_message().unwrap_or_default())));
        }
        Ok(())
    }
    async fn tags(&self, aws: &Aws) -> Result<Tags, NodeError> {
        let out = aws.events().list_tags_for_resource().resource_arn(self.arn()).send().await.map_err(|e| aws_err("events:ListTagsForResource", e))?;
        Ok(user_visible(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string()))))
    }
    async fn describe_rule(&self, aws: &Aws, name: &str) -> Result<Option<aws_sdk_eventbridge::operation::describe_rule::DescribeRuleOutput>, NodeError> {
        match aws.events().describe_rule().name(name).send().await.map_err(|e| aws_err("events:DescribeRule", e)) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

fn eb_tags(t: &Tags) -> Vec<eb::Tag> {
    t.iter().filter_map(|(k, v)| eb::Tag::builder().key(k).value(v).build().ok()).collect()
}

#[async_trait]
impl Node<Aws> for ScheduleNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        [self.target.key(), self.role.key()].into_iter().flatten().collect()
    }
    fn describe(&self) -> String {
        format!("EventBridge schedule {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "name": self.name, "description": self.description, "schedule": self.schedule, "state": "ENABLED",
            "target": {"arn": self.target.spec(), "role": self.role.spec()},
            "tags": tags_json(&self.wanted_tags()),
        }))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(&self.name))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        if self.describe_rule(aws, &self.name).await?.is_none() {
            return Ok(Found::None);
        }
        Ok(Found::Tagged(Identity::new(&self.name), self.tags(aws).await?))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.put_rule(aws, Some(eb_tags(&self.c.create_tags(&self.key, None, cx)))).await?;
        self.put_target(aws, cx).await.map_err(|e| e.with_id(&self.name))?;
        Ok(Made::id(&self.name).with("arn", self.arn()))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(r) = self.describe_rule(aws, &id.id).await? else { return Ok(None) };
        let targets = aws.events().list_targets_by_rule().rule(&id.id).send().await.map_err(|e| aws_err("events:ListTargetsByRule", e))?;
        let target = targets.targets().iter().find(|t| t.id() == TARGET_ID);
        Ok(Some(spec(json!({
            "name": r.name(), "description": r.description().unwrap_or_default(), "schedule": r.schedule_expression().unwrap_or_default(),
            "state": r.state().map(|s| s.as_str()),
            "target": target.map(|t| json!({"arn": self.target.observed(t.arn(), cx), "role": t.role_arn().map(|a| self.role.observed(a, cx))})),
            "tags": tags_json(&self.tags(aws).await?),
        }))))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        let differs = |f: &str| base.get(f) != want.get(f);
        if differs("schedule") || differs("description") || differs("state") {
            self.put_rule(aws, None).await?;
        }
        if differs("target") {
            self.put_target(aws, cx).await?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.tags(aws).await?,
        };
        let (add, remove) = tag_diff(&current, &self.wanted_tags());
        if !add.is_empty() {
            aws.events().tag_resource().resource_arn(self.arn()).set_tags(Some(eb_tags(&add))).send().await.map_err(|e| aws_err("events:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.events().untag_resource().resource_arn(self.arn()).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("events:UntagResource", e))?;
        }
        Ok(Made::id(&self.name).with("arn", self.arn()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // A rule with targets cannot be deleted.
        match aws.events().remove_targets().rule(&id.id).ids(TARGET_ID).send().await.map_err(|e| aws_err("events:RemoveTargets", e)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        match aws.events().delete_rule().name(&id.id).send().await.map_err(|e| aws_err("events:DeleteRule", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.events().tag_resource().resource_arn(self.arn()).set_tags(Some(eb_tags(&Tags::from([(k, v)])))).send().await.map_err(|e| aws_err("events:TagResource", e))?;
        Ok(())
    }
}
