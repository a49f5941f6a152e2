//! CloudWatch log groups with retention and tags.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{Common, tag_diff};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Made, Node, NodeError, Observed};

pub struct LogGroupNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub retention_days: i64,
    /// Keep the group (and its logs) when the composite is destroyed.
    pub retain: bool,
}

impl LogGroupNode {
    /// (ARN without `:*`, retention) of the group, if it exists.
    async fn find(&self, aws: &Aws) -> Result<Option<(String, Option<i32>)>, NodeError> {
        let out = aws.logs().describe_log_groups().log_group_name_prefix(&self.name).send().await.map_err(|e| aws_err("logs:DescribeLogGroups", e))?;
        Ok(out.log_groups().iter().find(|g| g.log_group_name() == Some(self.name.as_str())).map(|g| {
            let arn = g.log_group_arn().map(str::to_string).or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string())).unwrap_or_default();
            (arn, g.retention_in_days())
        }))
    }
    async fn tags(aws: &Aws, arn: &str) -> Result<BTreeMap<String, String>, NodeError> {
        let out = aws.logs().list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| aws_err("logs:ListTagsForResource", e))?;
        Ok(out.tags().cloned().unwrap_or_default().into_iter().collect())
    }
    fn wanted_tags(&self) -> BTreeMap<String, String> {
        self.c.tags_for(&self.key, None)
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
    fn spec(&self) -> serde_json::Value {
        json!({"name": self.name, "retention": self.retention_days, "tags": self.wanted_tags()})
    }
    fn planned_identity(&self) -> Option<String> {
        Some(self.name.clone())
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Some((arn, _)) = self.find(aws).await? else { return Ok(Found::None) };
        let tags = Self::tags(aws, &arn).await?;
        Ok(self.c.owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_found(&self.name, &self.describe()))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        aws.logs()
            .create_log_group()
            .log_group_name(&self.name)
            .set_tags(Some(self.wanted_tags().into_iter().collect()))
            .send()
            .await
            .map_err(|e| aws_err("logs:CreateLogGroup", e))?;
        self.update(aws, &self.name, cx).await.map_err(|e| e.with_id(self.name.clone()))
    }
    async fn read(&self, aws: &Aws, _id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        Ok(match self.find(aws).await? {
            None => Observed::Gone,
            Some((_, r)) if r.map(i64::from) != Some(self.retention_days) => Observed::Drifted(format!(
                "log retention is {}, configuration says {} days",
                r.map(|d| format!("{d} days")).unwrap_or_else(|| "unlimited".into()),
                self.retention_days
            )),
            Some(_) => Observed::InSync,
        })
    }
    async fn update(&self, aws: &Aws, _id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        aws.logs()
            .put_retention_policy()
            .log_group_name(&self.name)
            .retention_in_days(self.retention_days as i32)
            .send()
            .await
            .map_err(|e| aws_err("logs:PutRetentionPolicy", e))?;
        let Some((arn, _)) = self.find(aws).await? else { return Err(NodeError::other(format!("log group {} disappeared while being configured", self.name))) };
        let (add, remove) = tag_diff(&Self::tags(aws, &arn).await?, &self.wanted_tags());
        if !add.is_empty() {
            aws.logs().tag_resource().resource_arn(&arn).set_tags(Some(add.into_iter().collect())).send().await.map_err(|e| aws_err("logs:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.logs().untag_resource().resource_arn(&arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("logs:UntagResource", e))?;
        }
        Ok(Made::id(&self.name).with("arn", arn))
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        if self.retain {
            tracing::info!(target: "cxflow::children::logs", log_group = id, "retain is set: keeping the log group");
            return Ok(());
        }
        match aws.logs().delete_log_group().log_group_name(id).send().await.map_err(|e| aws_err("logs:DeleteLogGroup", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
