//! S3 buckets for build artifacts: SSE-S3 encryption, every public access
//! block on, versioning, and a lifecycle rule expiring old artifacts and
//! their noncurrent versions. Destroy empties the bucket (every version and
//! delete marker) before deleting it.
//!
//! S3 takes no tags in CreateBucket, so a create tags the bucket right after;
//! a bucket found under our name with no tags at all and no objects is the
//! create that was interrupted between the two calls (the name carries a hash
//! of the owner and the account), and is adopted (see docs/design.md,
//! "cxflow_build_pipeline").

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::types as s3;
use serde_json::json;

use super::{Common, built, keeping_lease, spec_tags, tags_json};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

const LIFECYCLE_RULE: &str = "cxflow-expire-artifacts";

pub struct BucketNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    /// Days after which an artifact (its current version) expires.
    pub expire_days: i64,
    /// Days a replaced or deleted artifact version is kept.
    pub noncurrent_days: i64,
    /// The bucket policy (filled in); None: the bucket has none of ours and it is not read.
    pub policy: Option<serde_json::Value>,
}

fn gone(e: &AwsError) -> bool {
    e.is_code(&["NoSuchBucket", "NotFound"]) || e.is_not_found()
}

impl BucketNode {
    pub fn arn(&self) -> String {
        format!("arn:{}:s3:::{}", self.c.partition(), self.name)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    fn lifecycle_spec(&self) -> serde_json::Value {
        json!({"expire_days": self.expire_days, "noncurrent_days": self.noncurrent_days})
    }
    /// The bucket's tags; `None` when the bucket does not exist.
    async fn tags(&self, aws: &Aws) -> Result<Option<Tags>, NodeError> {
        match aws.s3().get_bucket_tagging().bucket(&self.name).send().await.map_err(|e| aws_err("s3:GetBucketTagging", e)) {
            Ok(o) => Ok(Some(o.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).filter(|(k, _)| !k.starts_with("aws:")).collect())),
            Err(e) if e.is_code(&["NoSuchTagSet"]) => Ok(Some(Tags::new())),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    /// PutBucketTagging replaces the whole set, so the lease tag is carried over.
    async fn put_tags(&self, aws: &Aws, tags: &Tags) -> Result<(), NodeError> {
        let mut set = Vec::new();
        for (k, v) in tags {
            set.push(built(s3::Tag::builder().key(k).value(v).build())?);
        }
        let tagging = built(s3::Tagging::builder().set_tag_set(Some(set)).build())?;
        aws.s3().put_bucket_tagging().bucket(&self.name).tagging(tagging).send().await.map_err(|e| aws_err("s3:PutBucketTagging", e))?;
        Ok(())
    }
    async fn put_encryption(&self, aws: &Aws) -> Result<(), NodeError> {
        let by_default = built(s3::ServerSideEncryptionByDefault::builder().sse_algorithm(s3::ServerSideEncryption::Aes256).build())?;
        let conf = built(
            s3::ServerSideEncryptionConfiguration::builder().rules(s3::ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(by_default).build()).build(),
        )?;
        aws.s3().put_bucket_encryption().bucket(&self.name).server_side_encryption_configuration(conf).send().await.map_err(|e| aws_err("s3:PutBucketEncryption", e))?;
        Ok(())
    }
    async fn put_public_access_block(&self, aws: &Aws) -> Result<(), NodeError> {
        let conf = s3::PublicAccessBlockConfiguration::builder().block_public_acls(true).ignore_public_acls(true).block_public_policy(true).restrict_public_buckets(true).build();
        aws.s3().put_public_access_block().bucket(&self.name).public_access_block_configuration(conf).send().await.map_err(|e| aws_err("s3:PutPublicAccessBlock", e))?;
        Ok(())
    }
    async fn put_versioning(&self, aws: &Aws) -> Result<(), NodeError> {
        let conf = s3::VersioningConfiguration::builder().status(s3::BucketVersioningStatus::Enabled).build();
        aws.s3().put_bucket_versioning().bucket(&self.name).versioning_configuration(conf).send().await.map_err(|e| aws_err("s3:PutBucketVersioning", e))?;
        Ok(())
    }
    async fn put_lifecycle(&self, aws: &Aws) -> Result<(), NodeError> {
        let rule = built(
            s3::LifecycleRule::builder()
                .id(LIFECYCLE_RULE)
                .status(s3::ExpirationStatus::Enabled)
                .filter(s3::LifecycleRuleFilter::builder().prefix("").build())
                .expiration(s3::LifecycleExpiration::builder().days(self.expire_days as i32).build())
                .noncurrent_version_expiration(s3::NoncurrentVersionExpiration::builder().noncurrent_days(self.noncurrent_days as i32).build())
                .build(),
        )?;
        let conf = built(s3::BucketLifecycleConfiguration::builder().rules(rule).build())?;
        aws.s3()
            .put_bucket_lifecycle_configuration()
            .bucket(&self.name)
            .lifecycle_configuration(conf)
            .send()
            .await
            .map_err(|e| aws_err("s3:PutBucketLifecycleConfiguration", e))?;
        Ok(())
    }
    async fn put_policy(&self, aws: &Aws) -> Result<(), NodeError> {
        let Some(p) = &self.policy else { return Ok(()) };
        aws.s3().put_bucket_policy().bucket(&self.name).policy(p.to_string()).send().await.map_err(|e| aws_err("s3:PutBucketPolicy", e))?;
        Ok(())
    }
    /// The bucket's policy document (null when it has none).
    async fn observed_policy(&self, aws: &Aws) -> Result<serde_json::Value, NodeError> {
        match aws.s3().get_bucket_policy().bucket(&self.name).send().await.map_err(|e| aws_err("s3:GetBucketPolicy", e)) {
            Ok(o) => Ok(o.policy().and_then(|p| serde_json::from_str(p).ok()).unwrap_or(serde_json::Value::Null)),
            Err(e) if e.is_code(&["NoSuchBucketPolicy"]) => Ok(serde_json::Value::Null),
            Err(e) => Err(e.into()),
        }
    }
    async fn configure(&self, aws: &Aws) -> Result<(), NodeError> {
        self.put_public_access_block(aws).await?;
        self.put_encryption(aws).await?;
        self.put_versioning(aws).await?;
        self.put_lifecycle(aws).await?;
        self.put_policy(aws).await
    }
    async fn is_empty(&self, aws: &Aws) -> Result<bool, NodeError> {
        let out = aws.s3().list_object_versions().bucket(&self.name).max_keys(1).send().await.map_err(|e| aws_err("s3:ListObjectVersions", e))?;
        Ok(out.versions().is_empty() && out.delete_markers().is_empty())
    }
    /// Delete every object version and delete marker, a page at a time.
    async fn empty(&self, aws: &Aws, cx: &Cx<'_>) -> Result<(), NodeError> {
        loop {
            cx.check_cancel()?;
            let out = match aws.s3().list_object_versions().bucket(&self.name).send().await.map_err(|e| aws_err("s3:ListObjectVersions", e)) {
                Ok(o) => o,
                Err(e) if gone(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let mut ids = Vec::new();
            for (key, version) in out.versions().iter().map(|v| (v.key(), v.version_id())).chain(out.delete_markers().iter().map(|m| (m.key(), m.version_id()))) {
                let Some(key) = key else { continue };
                ids.push(built(s3::ObjectIdentifier::builder().key(key).set_version_id(version.map(str::to_string)).build())?);
            }
            if ids.is_empty() {
                return Ok(());
            }
            let delete = built(s3::Delete::builder().set_objects(Some(ids)).quiet(true).build())?;
            let res = aws.s3().delete_objects().bucket(&self.name).delete(delete).send().await.map_err(|e| aws_err("s3:DeleteObjects", e))?;
            if let Some(err) = res.errors().first() {
                return Err(NodeError::other(format!(
                    "s3:DeleteObjects could not delete {} from bucket {}: {}",
                    err.key().unwrap_or_default(),
                    self.name,
                    err.message().or(err.code()).unwrap_or_default()
                )));
            }
        }
    }
}

#[async_trait]
impl Node<Aws> for BucketNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn describe(&self) -> String {
        format!("S3 bucket {}", self.name)
    }
    fn spec(&self) -> Spec {
        let mut s = spec(json!({
            "name": self.name, "encryption": "AES256", "block_public_access": true, "versioning": "Enabled",
            "lifecycle": self.lifecycle_spec(), "tags": tags_json(&self.wanted_tags()),
        }));
        if let Some(p) = &self.policy {
            s.insert("policy".into(), p.clone());
        }
        s
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(&self.name))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        match self.tags(aws).await? {
            None => Ok(Found::None),
            Some(t) if t.is_empty() && self.is_empty(aws).await? => Ok(Found::Derived(Identity::new(&self.name))),
            Some(t) => Ok(Found::Tagged(Identity::new(&self.name), t)),
        }
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let mut req = aws.s3().create_bucket().bucket(&self.name).object_ownership(s3::ObjectOwnership::BucketOwnerEnforced);
        if self.c.region != "us-east-1" {
            req = req.create_bucket_configuration(s3::CreateBucketConfiguration::builder().location_constraint(s3::BucketLocationConstraint::from(self.c.region.as_str())).build());
        }
        req.send().await.map_err(|e| aws_err("s3:CreateBucket", e))?;
        let after = async {
            self.put_tags(aws, &self.c.create_tags(&self.key, None, cx)).await?;
            self.configure(aws).await
        };
        after.await.map_err(|e| e.with_id(&self.name))?;
        Ok(Made::id(&self.name).with("arn", self.arn()))
    }
    async fn observe(&self, aws: &Aws, _id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(tags) = self.tags(aws).await? else { return Ok(None) };
        let s3c = aws.s3();
        let encryption = match s3c.get_bucket_encryption().bucket(&self.name).send().await.map_err(|e| aws_err("s3:GetBucketEncryption", e)) {
            Ok(o) => o
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| d.sse_algorithm().as_str().to_string()),
            Err(e) if e.is_code(&["ServerSideEncryptionConfigurationNotFoundError"]) => None,
            Err(e) => return Err(e.into()),
        };
        let block = match s3c.get_public_access_block().bucket(&self.name).send().await.map_err(|e| aws_err("s3:GetPublicAccessBlock", e)) {
            Ok(o) => o.public_access_block_configuration().is_some_and(|c| {
                c.block_public_acls() == Some(true) && c.ignore_public_acls() == Some(true) && c.block_public_policy() == Some(true) && c.restrict_public_buckets() == Some(true)
            }),
            Err(e) if e.is_code(&["NoSuchPublicAccessBlockConfiguration"]) => false,
            Err(e) => return Err(e.into()),
        };
        let versioning = s3c.get_bucket_versioning().bucket(&self.name).send().await.map_err(|e| aws_err("s3:GetBucketVersioning", e))?;
        let lifecycle = match s3c.get_bucket_lifecycle_configuration().bucket(&self.name).send().await.map_err(|e| aws_err("s3:GetBucketLifecycleConfiguration", e)) {
            Ok(o) => o.rules().iter().find(|r| r.id() == Some(LIFECYCLE_RULE) && r.status() == &s3::ExpirationStatus::Enabled).map(|r| {
                json!({
                    "expire_days": r.expiration().and_then(|e| e.days()),
                    "noncurrent_days": r.noncurrent_version_expiration().and_then(|n| n.noncurrent_days()),
                })
            }),
            Err(e) if e.is_code(&["NoSuchLifecycleConfiguration"]) => None,
            Err(e) => return Err(e.into()),
        };
        let mut observed = spec(json!({
            "name": self.name, "encryption": encryption, "block_public_access": block,
            "versioning": versioning.status().map(|s| s.as_str().to_string()).unwrap_or_else(|| "Disabled".into()),
            "lifecycle": lifecycle, "tags": tags_json(&tags), "arn": self.arn(),
        }));
        if self.policy.is_some() {
            observed.insert("policy".into(), self.observed_policy(aws).await?);
        }
        Ok(Some(observed))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        if base.get("block_public_access") != want.get("block_public_access") {
            self.put_public_access_block(aws).await?;
        }
        if base.get("encryption") != want.get("encryption") {
            self.put_encryption(aws).await?;
        }
        if base.get("versioning") != want.get("versioning") {
            self.put_versioning(aws).await?;
        }
        if base.get("lifecycle") != want.get("lifecycle") {
            self.put_lifecycle(aws).await?;
        }
        if base.get("policy") != want.get("policy") {
            self.put_policy(aws).await?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.tags(aws).await?.unwrap_or_default(),
        };
        let desired = keeping_lease(self.wanted_tags(), &current);
        if desired != current {
            self.put_tags(aws, &desired).await?;
        }
        Ok(Made::id(&self.name).with("arn", self.arn()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        self.empty(aws, cx).await?;
        match aws.s3().delete_bucket().bucket(&id.id).send().await.map_err(|e| aws_err("s3:DeleteBucket", e)) {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        // The bucket was just created or converged to exactly its wanted tags plus the lease
        // (update replaces the whole set), so the set is written without reading it first.
        let mut tags = self.wanted_tags();
        let (k, v) = cx.recorded_tag();
        tags.insert(k, v);
        self.put_tags(aws, &tags).await
    }
}
