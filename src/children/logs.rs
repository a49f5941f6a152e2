//! CloudWatch log groups with retention and tags.
//!
//! Observation reads the group's retention from DescribeLogGroups; tags cost
//! a second call, so they are read only when an update needs them and no
//! earlier spec says what they are.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{Common, spec_tags, tag_diff, tags_json, user_visible};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: &[i64] = &[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

pub struct LogGroupNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub retention_days: i64,
    /// Keep the group (and its logs) when the composite is destroyed.
    pub retain: bool,
}

impl LogGroupNode {
    async fn set_retention(&self, aws: &Aws) -> Result<(), AwsError> {
        aws.logs()
            .put_retention_policy()
            .log_group_name(&self.name)
            .retention_in_days(self.retention_days as i32)
            .send()
            .await
            .map_err(|e| aws_err("logs:PutRetentionPolicy", e))?;
        Ok(())
    }
    fn arn(&self) -> String {
        format!("arn:{}:logs:{}:{}:log-group:{}", self.c.partition(), self.c.region, self.c.account, self.name)
    }
    /// The group's retention (None: never expire), if the group exists.
    async fn retention(&self, aws: &Aws) -> Result<Option<Option<i32>>, NodeError> {
        let out = aws.logs().describe_log_groups().log_group_name_prefix(&self.name).send().await.map_err(|e| aws_err("logs:DescribeLogGroups", e))?;
        Ok(out.log_groups().iter().find(|g| g.log_group_name() == Some(self.name.as_str())).map(|g| g.retention_in_days()))
    }
    async fn tags(&self, aws: &Aws) -> Result<Tags, NodeError> {
        let out = aws.logs().list_tags_for_resource().resource_arn(self.arn()).send().await.map_err(|e| aws_err("logs:ListTagsForResource", e))?;
        Ok(user_visible(out.tags().cloned().unwrap_or_default()))
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn retag(&self, aws: &Aws, current: &Tags) -> Result<(), NodeError> {
        let (add, remove) = tag_diff(current, &self.wanted_tags());
        if !add.is_empty() {
            aws.logs().tag_resource().resource_arn(self.arn()).set_tags(Some(add.into_iter().collect())).send().await.map_err(|e| aws_err("logs:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.logs().untag_resource().resource_arn(self.arn()).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("logs:UntagResource", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Node<Aws> for LogGroupNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn describe(&self) -> String {
        format!("CloudWatch log group {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({"name": self.name, "retention_in_days": self.retention_days, "tags": tags_json(&self.wanted_tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(&self.name))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        if self.retention(aws).await?.is_none() {
            return Ok(Found::None);
        }
        Ok(Found::Tagged(Identity::new(&self.name), self.tags(aws).await?))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        aws.logs()
            .create_log_group()
            .log_group_name(&self.name)
            .set_tags(Some(self.c.create_tags(&self.key, None, cx).into_iter().collect()))
            .send()
            .await
            .map_err(|e| aws_err("logs:CreateLogGroup", e))?;
        self.set_retention(aws).await.map_err(|e| NodeError::from(e).with_id(&self.name))?;
        Ok(Made::id(&self.name).with("arn", self.arn()))
    }
    async fn observe(&self, aws: &Aws, _id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let group = aws.read_log_group(&self.name).await?;
        Ok(group.map(|g| spec(json!({"name": self.name, "retention_in_days": g.retention_in_days()}))))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        if base.get("retention_in_days") != Some(&json!(self.retention_days)) {
            self.set_retention(aws).await?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.tags(aws).await?,
        };
        self.retag(aws, &current).await?;
        Ok(Made::id(&self.name).with("arn", self.arn()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        if self.retain {
            tracing::info!(target: "cxflow::children::logs", log_group = id.id.as_str(), "retain is set: keeping the log group");
            return Ok(());
        }
        match aws.logs().delete_log_group().log_group_name(&id.id).send().await.map_err(|e| aws_err("logs:DeleteLogGroup", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.logs().tag_resource().resource_arn(self.arn()).tags(k, v).send().await.map_err(|e| aws_err("logs:TagResource", e))?;
        Ok(())
    }
}
