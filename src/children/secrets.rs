//! Secrets Manager secrets the provider owns, holding a value from write-only
//! configuration: the value lives only in memory during plan and apply.
//!
//! Nothing derived from the value is stored anywhere. Instead, every value the
//! provider writes carries its staging label [`WRITTEN_LABEL`] beside
//! `AWSCURRENT`, and the user's write-only version in the tag [`VERSION_TAG`].
//! Any other write (a console edit, a rotation) makes a new `AWSCURRENT`
//! version without the label, which DescribeSecret shows: drift found by
//! refresh, with no `GetSecretValue` — which the secret's own policy refuses
//! to everyone but the one reader it names.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value as Json, json};

use super::{Common, spec_tags, tag_diff, tags_json, user_visible};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

/// The staging label on the version this provider wrote last.
pub const WRITTEN_LABEL: &str = "cxflow-written";
/// The tag holding the write-only version attribute the value was written for.
pub const VERSION_TAG: &str = "cxflow:value-version";

/// A write-only value: never printed, never serialised.
#[derive(Clone, PartialEq)]
pub struct WriteOnly(pub String);

impl fmt::Debug for WriteOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(write-only value)")
    }
}

impl<'de> serde::Deserialize<'de> for WriteOnly {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(WriteOnly)
    }
}

/// What the spec's `value` field says when the current version is ours.
pub fn written(version: i64) -> String {
    format!("version {version}")
}

/// The write-only version a `value` field names, when it names one.
pub fn written_version(value: &str) -> Option<i64> {
    value.strip_prefix("version ")?.parse().ok()
}

const CHANGED: &str = "changed outside Terraform";

pub struct SecretNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub description: String,
    /// The value to write: known in plan and apply, absent at refresh.
    pub value: Option<WriteOnly>,
    /// The user's write-only version attribute: a new one writes the value again.
    pub version: i64,
    /// The only principal that may read the value (`aws:PrincipalArn`).
    pub reader_arn: String,
}

impl SecretNode {
    /// The ARN a policy may name before the secret exists (AWS adds six random characters).
    pub fn arn_pattern(c: &Common, name: &str) -> String {
        format!("arn:{}:secretsmanager:{}:{}:secret:{name}-??????", c.partition(), c.region, c.account)
    }
    /// Everyone but the reader is refused the value, whatever their own policies allow.
    fn policy(&self) -> Json {
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "OnlyTheReader", "Effect": "Deny", "Principal": "*", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            "Condition": {"ArnNotEquals": {"aws:PrincipalArn": self.reader_arn}}
        }]})
    }
    fn wanted_tags(&self) -> Tags {
        let mut t = self.c.tags_for(&self.key, None);
        t.insert(VERSION_TAG.to_string(), self.version.to_string());
        t
    }
    async fn put_value(&self, aws: &Aws, id: &str) -> Result<(), NodeError> {
        let Some(v) = &self.value else {
            return Err(NodeError::other(format!(
                "{}: the write-only value is not in the configuration; Terraform sends write-only values only during plan and apply",
                self.describe()
            )));
        };
        aws.secretsmanager()
            .put_secret_value()
            .secret_id(id)
            .secret_string(&v.0)
            .version_stages("AWSCURRENT")
            .version_stages(WRITTEN_LABEL)
            .send()
            .await
            .map_err(|e| aws_err("secretsmanager:PutSecretValue", e))?;
        Ok(())
    }
    async fn put_policy(&self, aws: &Aws, id: &str) -> Result<(), NodeError> {
        aws.secretsmanager()
            .put_resource_policy()
            .secret_id(id)
            .resource_policy(self.policy().to_string())
            .block_public_policy(true)
            .send()
            .await
            .map_err(|e| aws_err("secretsmanager:PutResourcePolicy", e))?;
        Ok(())
    }
    async fn retag(&self, aws: &Aws, id: &str, current: &Tags) -> Result<(), NodeError> {
        let (add, remove) = tag_diff(current, &self.wanted_tags());
        let sm = aws.secretsmanager();
        if !add.is_empty() {
            let tags = add.into_iter().map(|(k, v)| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build()).collect();
            sm.tag_resource().secret_id(id).set_tags(Some(tags)).send().await.map_err(|e| aws_err("secretsmanager:TagResource", e))?;
        }
        if !remove.is_empty() {
            sm.untag_resource().secret_id(id).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("secretsmanager:UntagResource", e))?;
        }
        Ok(())
    }
    /// The secret's ARN, spec and tags, or None when it is gone (or scheduled for deletion).
    async fn read(&self, aws: &Aws, id: &str) -> Result<Option<(String, Spec, Tags)>, NodeError> {
        let sm = aws.secretsmanager();
        let d = match sm.describe_secret().secret_id(id).send().await.map_err(|e| aws_err("secretsmanager:DescribeSecret", e)) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if d.deleted_date().is_some() {
            return Ok(None);
        }
        let tags = user_visible(d.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))));
        let ours = d.version_ids_to_stages().is_some_and(|m| m.values().any(|s| s.iter().any(|l| l == "AWSCURRENT") && s.iter().any(|l| l == WRITTEN_LABEL)));
        let value = match tags.get(VERSION_TAG).and_then(|v| v.parse::<i64>().ok()) {
            Some(v) if ours => written(v),
            _ => CHANGED.to_string(),
        };
        let policy = sm.get_resource_policy().secret_id(id).send().await.map_err(|e| aws_err("secretsmanager:GetResourcePolicy", e))?;
        let policy: Json = policy.resource_policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(Json::Null);
        let s = spec(json!({
            "name": d.name().unwrap_or(&self.name),
            "description": d.description().unwrap_or_default(),
            "value": value,
            "policy": policy,
            "tags": tags_json(&tags),
        }));
        Ok(Some((d.arn().unwrap_or(id).to_string(), s, tags)))
    }
}

#[async_trait]
impl Node<Aws> for SecretNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn describe(&self) -> String {
        format!("Secrets Manager secret {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "name": self.name,
            "description": self.description,
            "value": written(self.version),
            "policy": self.policy(),
            "tags": tags_json(&self.wanted_tags()),
        }))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(match self.read(aws, &self.name).await? {
            None => Found::None,
            Some((arn, _, tags)) => Found::Tagged(Identity::new(&arn), tags),
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let mut tags = self.c.create_tags(&self.key, None, cx);
        tags.insert(VERSION_TAG.to_string(), self.version.to_string());
        let tags = tags.into_iter().map(|(k, v)| aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build()).collect();
        // Created empty: the value goes in with the provider's label (CreateSecret sets only AWSCURRENT).
        let out = aws
            .secretsmanager()
            .create_secret()
            .name(&self.name)
            .description(&self.description)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_err("secretsmanager:CreateSecret", e))?;
        let arn = out.arn().ok_or_else(|| NodeError::no_identity("secretsmanager:CreateSecret"))?.to_string();
        self.put_policy(aws, &arn).await.map_err(|e| e.with_id(&arn))?;
        self.put_value(aws, &arn).await.map_err(|e| e.with_id(&arn))?;
        Ok(Made::id(&arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        Ok(self.read(aws, &id.id).await?.map(|(_, s, _)| s))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        if base.get("policy") != want.get("policy") {
            self.put_policy(aws, &id.id).await?;
        }
        if base.get("description") != want.get("description") {
            aws.secretsmanager().update_secret().secret_id(&id.id).description(&self.description).send().await.map_err(|e| aws_err("secretsmanager:UpdateSecret", e))?;
        }
        if base.get("value") != want.get("value") {
            self.put_value(aws, &id.id).await?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.read(aws, &id.id).await?.map(|(_, _, t)| t).unwrap_or_default(),
        };
        self.retag(aws, &id.id, &current).await?;
        Ok(Made::id(&id.id))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // No recovery window: the value came from configuration, and a secret
        // pending deletion would block its name for up to 30 days.
        match aws.secretsmanager().delete_secret().secret_id(&id.id).force_delete_without_recovery(true).send().await.map_err(|e| aws_err("secretsmanager:DeleteSecret", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        let tag = aws_sdk_secretsmanager::types::Tag::builder().key(k).value(v).build();
        aws.secretsmanager().tag_resource().secret_id(&id.id).tags(tag).send().await.map_err(|e| aws_err("secretsmanager:TagResource", e))?;
        Ok(())
    }
}
