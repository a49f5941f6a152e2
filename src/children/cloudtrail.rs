//! CloudTrail trails: an S3 bucket, delivery to a CloudWatch Logs group
//! through a role, the multi-region switch, advanced event selectors, logging
//! on, and ownership tags. The identity is the trail's ARN.
//!
//! Observation reads GetTrail, GetEventSelectors, GetTrailStatus and ListTags
//! into a spec of the desired spec's shape, so an update sends only what
//! differs: UpdateTrail for the bucket, logs and region settings,
//! PutEventSelectors for the selectors, StartLogging, AddTags/RemoveTags.
//! CloudTrail takes tags in CreateTrail, so the lease tag is on the trail
//! from its first moment (adoption after a crash works as for other kinds).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudtrail::types as ct;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Common, Ref, built, spec_tags, tag_diff, tags_json, user_visible, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

/// One statement of an advanced event selector: a record field and its conditions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSelector {
    pub field: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_equals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_starts_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends_with: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ends_with: Vec<String>,
}

/// An advanced event selector: a name and the statements an event must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSelector {
    pub name: String,
    pub fields: Vec<FieldSelector>,
}

impl EventSelector {
    /// Statements sorted by field and values sorted: CloudTrail's order carries no meaning.
    pub fn normalized(mut self) -> EventSelector {
        for f in &mut self.fields {
            for v in [&mut f.equals, &mut f.not_equals, &mut f.starts_with, &mut f.not_starts_with, &mut f.ends_with, &mut f.not_ends_with] {
                v.sort();
                v.dedup();
            }
        }
        self.fields.sort_by(|a, b| a.field.cmp(&b.field));
        self
    }
    fn sdk(&self) -> Result<ct::AdvancedEventSelector, NodeError> {
        let mut fields = Vec::new();
        for f in &self.fields {
            let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
            fields.push(built(
                ct::AdvancedFieldSelector::builder()
                    .field(&f.field)
                    .set_equals(some(&f.equals))
                    .set_not_equals(some(&f.not_equals))
                    .set_starts_with(some(&f.starts_with))
                    .set_not_starts_with(some(&f.not_starts_with))
                    .set_ends_with(some(&f.ends_with))
                    .set_not_ends_with(some(&f.not_ends_with))
                    .build(),
            )?);
        }
        built(ct::AdvancedEventSelector::builder().name(&self.name).set_field_selectors(Some(fields)).build())
    }
    fn from_sdk(s: &ct::AdvancedEventSelector) -> EventSelector {
        let fields = s
            .field_selectors()
            .iter()
            .map(|f| FieldSelector {
                field: f.field().to_string(),
                equals: f.equals().to_vec(),
                not_equals: f.not_equals().to_vec(),
                starts_with: f.starts_with().to_vec(),
                not_starts_with: f.not_starts_with().to_vec(),
                ends_with: f.ends_with().to_vec(),
                not_ends_with: f.not_ends_with().to_vec(),
            })
            .collect();
        EventSelector { name: s.name().unwrap_or_default().to_string(), fields }.normalized()
    }
}

pub struct TrailNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    /// The bucket CloudTrail writes log files to (a `BucketNode`'s name).
    pub bucket: Ref,
    /// The log group CloudTrail delivers to (`arn:…:log-group:<name>:*`), and the node making it.
    pub log_group_arn: String,
    pub log_group: Ref,
    /// The role CloudTrail assumes to write the log group (a `RoleNode`'s ARN).
    pub role: Ref,
    pub multi_region: bool,
    pub selectors: Vec<EventSelector>,
}

fn not_found(e: &AwsError) -> bool {
    e.is_code(&["TrailNotFoundException"]) || e.is_not_found()
}

/// CreateTrail and UpdateTrail refuse a role IAM has not propagated yet with these.
fn not_propagated(e: &AwsError) -> bool {
    e.is_code(&["InvalidCloudWatchLogsRoleArnException", "InvalidCloudWatchLogsLogGroupArnException"])
}

fn ct_tags(t: &Tags) -> Result<Vec<ct::Tag>, NodeError> {
    t.iter().map(|(k, v)| built(ct::Tag::builder().key(k).value(v).build())).collect()
}

impl TrailNode {
    pub fn arn(&self) -> String {
        format!("arn:{}:cloudtrail:{}:{}:trail/{}", self.c.partition(), self.c.region, self.c.account, self.name)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    fn selectors(&self) -> Vec<EventSelector> {
        self.selectors.iter().cloned().map(EventSelector::normalized).collect()
    }
    async fn get(&self, aws: &Aws) -> Result<Option<ct::Trail>, NodeError> {
        match aws.cloudtrail().get_trail().name(self.arn()).send().await.map_err(|e| aws_err("cloudtrail:GetTrail", e)) {
            Ok(o) => Ok(o.trail),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn tags(&self, aws: &Aws) -> Result<Tags, NodeError> {
        let out = aws.cloudtrail().list_tags().resource_id_list(self.arn()).send().await.map_err(|e| aws_err("cloudtrail:ListTags", e))?;
        let tags = out.resource_tag_list().iter().filter(|r| r.resource_id() == Some(self.arn().as_str())).flat_map(|r| r.tags_list());
        Ok(user_visible(tags.map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string()))))
    }
    async fn put_selectors(&self, aws: &Aws) -> Result<(), NodeError> {
        let selectors = self.selectors().iter().map(EventSelector::sdk).collect::<Result<Vec<_>, _>>()?;
        aws.cloudtrail()
            .put_event_selectors()
            .trail_name(self.arn())
            .set_advanced_event_selectors(Some(selectors))
            .send()
            .await
            .map_err(|e| aws_err("cloudtrail:PutEventSelectors", e))?;
        Ok(())
    }
    async fn start_logging(&self, aws: &Aws) -> Result<(), NodeError> {
        aws.cloudtrail().start_logging().name(self.arn()).send().await.map_err(|e| aws_err("cloudtrail:StartLogging", e))?;
        Ok(())
    }
    /// Retry `call` while IAM has not propagated the delivery role (a minute at most).
    async fn while_propagating<T, F, Fut>(&self, what: &str, cx: &Cx<'_>, mut call: F) -> Result<T, NodeError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, AwsError>>,
    {
        let timeout = Duration::from_secs(60).min(cx.remaining());
        until(what, timeout, cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || {
            let f = call();
            async move {
                match f.await {
                    Ok(v) => Ok(Poll::Done(v)),
                    Err(e) if not_propagated(&e) => Ok(Poll::Pending(e.to_string())),
                    Err(e) => Err(NodeError::from(e)),
                }
            }
        })
        .await
        .map_err(|e| wait_err(what, e))
    }
}

#[async_trait]
impl Node<Aws> for TrailNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        [self.bucket.key(), self.log_group.key(), self.role.key()].into_iter().flatten().collect()
    }
    fn describe(&self) -> String {
        format!("CloudTrail trail {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "name": self.name, "bucket": self.bucket.spec(), "log_group_arn": self.log_group_arn, "role": self.role.spec(),
            "multi_region": self.multi_region, "global_service_events": self.multi_region,
            "selectors": self.selectors(), "logging": true, "tags": tags_json(&self.wanted_tags()),
        }))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(self.arn()))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        if self.get(aws).await?.is_none() {
            return Ok(Found::None);
        }
        Ok(Found::Tagged(Identity::new(self.arn()), self.tags(aws).await?))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let (bucket, role) = (&self.bucket.resolve(cx)?, &self.role.resolve(cx)?);
        let tags = &ct_tags(&self.c.create_tags(&self.key, None, cx))?;
        let out = self
            .while_propagating(&format!("IAM to propagate the delivery role of trail {}", self.name), cx, || async move {
                aws.cloudtrail()
                    .create_trail()
                    .name(&self.name)
                    .s3_bucket_name(bucket)
                    .cloud_watch_logs_log_group_arn(&self.log_group_arn)
                    .cloud_watch_logs_role_arn(role)
                    .is_multi_region_trail(self.multi_region)
                    .include_global_service_events(self.multi_region)
                    .set_tags_list(Some(tags.clone()))
                    .send()
                    .await
                    .map_err(|e| aws_err("cloudtrail:CreateTrail", e))
            })
            .await;
        let arn = match out {
            Ok(o) => o.trail_arn().map(str::to_string).unwrap_or_else(|| self.arn()),
            Err(e) => return Err(e),
        };
        let rest = async {
            self.put_selectors(aws).await?;
            self.start_logging(aws).await
        };
        rest.await.map_err(|e| e.with_id(&arn))?;
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(t) = self.get(aws).await? else { return Ok(None) };
        let ctc = aws.cloudtrail();
        let sel = ctc.get_event_selectors().trail_name(&id.id).send().await.map_err(|e| aws_err("cloudtrail:GetEventSelectors", e))?;
        let selectors: Vec<EventSelector> = sel.advanced_event_selectors().iter().map(EventSelector::from_sdk).collect();
        let status = ctc.get_trail_status().name(&id.id).send().await.map_err(|e| aws_err("cloudtrail:GetTrailStatus", e))?;
        let tags = self.tags(aws).await?;
        Ok(Some(spec(json!({
            "name": t.name(),
            "bucket": t.s3_bucket_name().map(|b| self.bucket.observed(b, cx)),
            "log_group_arn": t.cloud_watch_logs_log_group_arn(),
            "role": t.cloud_watch_logs_role_arn().map(|r| self.role.observed(r, cx)),
            "multi_region": t.is_multi_region_trail().unwrap_or(false),
            "global_service_events": t.include_global_service_events().unwrap_or(false),
            // Basic selectors set out of band leave no advanced ones: that differs from ours.
            "selectors": selectors,
            "logging": status.is_logging().unwrap_or(false),
            "tags": tags_json(&tags),
            "arn": t.trail_arn().unwrap_or(&id.id),
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        let differs = |f: &str| base.get(f) != want.get(f);
        if ["bucket", "log_group_arn", "role", "multi_region", "global_service_events"].iter().any(|f| differs(f)) {
            let (bucket, role) = (&self.bucket.resolve(cx)?, &self.role.resolve(cx)?);
            self.while_propagating(&format!("IAM to propagate the delivery role of trail {}", self.name), cx, || async move {
                aws.cloudtrail()
                    .update_trail()
                    .name(&id.id)
                    .s3_bucket_name(bucket)
                    .cloud_watch_logs_log_group_arn(&self.log_group_arn)
                    .cloud_watch_logs_role_arn(role)
                    .is_multi_region_trail(self.multi_region)
                    .include_global_service_events(self.multi_region)
                    .send()
                    .await
                    .map_err(|e| aws_err("cloudtrail:UpdateTrail", e))
            })
            .await?;
        }
        if differs("selectors") {
            self.put_selectors(aws).await?;
        }
        if differs("logging") {
            self.start_logging(aws).await?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.tags(aws).await?,
        };
        let (add, remove) = tag_diff(&current, &self.wanted_tags());
        if !add.is_empty() {
            aws.cloudtrail().add_tags().resource_id(&id.id).set_tags_list(Some(ct_tags(&add)?)).send().await.map_err(|e| aws_err("cloudtrail:AddTags", e))?;
        }
        if !remove.is_empty() {
            let keys = remove.iter().map(|k| built(ct::Tag::builder().key(k).build())).collect::<Result<Vec<_>, _>>()?;
            aws.cloudtrail().remove_tags().resource_id(&id.id).set_tags_list(Some(keys)).send().await.map_err(|e| aws_err("cloudtrail:RemoveTags", e))?;
        }
        Ok(Made::id(&id.id))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.cloudtrail().delete_trail().name(&id.id).send().await.map_err(|e| aws_err("cloudtrail:DeleteTrail", e)) {
            Ok(_) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        let tag = ct_tags(&Tags::from([(k, v)]))?;
        aws.cloudtrail().add_tags().resource_id(&id.id).set_tags_list(Some(tag)).send().await.map_err(|e| aws_err("cloudtrail:AddTags", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_compare_whatever_order_cloudtrail_reports() {
        let f = |field: &str, eq: &[&str]| FieldSelector { field: field.into(), equals: eq.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let a = EventSelector { name: "x".into(), fields: vec![f("readOnly", &["true"]), f("eventCategory", &["Management"])] }.normalized();
        let b = EventSelector { name: "x".into(), fields: vec![f("eventCategory", &["Management"]), f("readOnly", &["true"])] }.normalized();
        assert_eq!(a, b);
        let sdk = a.sdk().unwrap();
        assert_eq!(EventSelector::from_sdk(&sdk), a, "round trip through the SDK type");
        assert_eq!(serde_json::to_value(&a).unwrap()["fields"][0], json!({"field": "eventCategory", "equals": ["Management"]}), "empty conditions are left out");
    }
}
