//! Platform children: the ECR repository (with scanning, tag mutability,
//! encryption and a lifecycle policy) and the ECS cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{Common, tag_diff};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Made, Node, NodeError, Observed};

// ------------------------------------------------------------------ ECR repository

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySpec {
    pub name: String,
    pub immutable: bool,
    pub scan_on_push: bool,
    /// `AES256` or `KMS`.
    pub encryption: String,
    pub kms_key: Option<String>,
    /// Images kept besides the one tagged `latest`.
    pub keep_images: i64,
}

pub struct RepositoryNode {
    pub c: Arc<Common>,
    pub spec: RepositorySpec,
}

/// Keep the image tagged `latest` and the newest `keep` images.
pub fn lifecycle_policy(keep: i64) -> String {
    json!({"rules": [
        {"rulePriority": 1, "description": "Keep the image tagged latest",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["latest"], "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": format!("Keep the last {keep} images"),
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}}
    ]})
    .to_string()
}

fn ecr_tags(t: &BTreeMap<String, String>) -> Vec<aws_sdk_ecr::types::Tag> {
    t.iter().filter_map(|(k, v)| aws_sdk_ecr::types::Tag::builder().key(k).value(v).build().ok()).collect()
}

impl RepositoryNode {
    async fn tags(aws: &Aws, arn: &str) -> Result<BTreeMap<String, String>, NodeError> {
        let out = aws.ecr().list_tags_for_resource().resource_arn(arn).send().await.map_err(|e| aws_err("ecr:ListTagsForResource", e))?;
        Ok(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
    }
    async fn apply_settings(&self, aws: &Aws, arn: &str) -> Result<(), NodeError> {
        let s = &self.spec;
        aws.ecr()
            .put_image_tag_mutability()
            .repository_name(&s.name)
            .image_tag_mutability(if s.immutable { aws_sdk_ecr::types::ImageTagMutability::Immutable } else { aws_sdk_ecr::types::ImageTagMutability::Mutable })
            .send()
            .await
            .map_err(|e| aws_err("ecr:PutImageTagMutability", e))?;
        aws.ecr()
            .put_image_scanning_configuration()
            .repository_name(&s.name)
            .image_scanning_configuration(aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(s.scan_on_push).build())
            .send()
            .await
            .map_err(|e| aws_err("ecr:PutImageScanningConfiguration", e))?;
        aws.ecr()
            .put_lifecycle_policy()
            .repository_name(&s.name)
            .lifecycle_policy_text(lifecycle_policy(s.keep_images))
            .send()
            .await
            .map_err(|e| aws_err("ecr:PutLifecyclePolicy", e))?;
        let current = Self::tags(aws, arn).await?;
        let (add, remove) = tag_diff(&current, &self.c.tags_for("repository", None));
        if !add.is_empty() {
            aws.ecr().tag_resource().resource_arn(arn).set_tags(Some(ecr_tags(&add))).send().await.map_err(|e| aws_err("ecr:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.ecr().untag_resource().resource_arn(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("ecr:UntagResource", e))?;
        }
        Ok(())
    }
    async fn describe_repo(aws: &Aws, name: &str) -> Result<Option<aws_sdk_ecr::types::Repository>, NodeError> {
        match aws.ecr().describe_repositories().repository_names(name).send().await {
            Ok(o) => Ok(o.repositories().first().cloned()),
            Err(e) => {
                let e = aws_err("ecr:DescribeRepositories", e);
                if e.is_not_found() { Ok(None) } else { Err(e.into()) }
            }
        }
    }
}

#[async_trait]
impl Node<Aws> for RepositoryNode {
    fn key(&self) -> &str {
        "repository"
    }
    fn describe(&self) -> String {
        format!("ECR repository {}", self.spec.name)
    }
    fn spec(&self) -> serde_json::Value {
        let s = &self.spec;
        json!({"name": s.name, "immutable": s.immutable, "scan": s.scan_on_push, "enc": s.encryption, "kms": s.kms_key, "keep": s.keep_images, "tags": self.c.tags_for("repository", None)})
    }
    fn planned_identity(&self) -> Option<String> {
        Some(self.spec.name.clone())
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Some(r) = Self::describe_repo(aws, &self.spec.name).await? else { return Ok(Found::None) };
        let tags = Self::tags(aws, r.repository_arn().unwrap_or_default()).await?;
        Ok(self.c.owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_found(&self.spec.name, &format!("ECR repository {}", self.spec.name)))
    }
    async fn create(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let s = &self.spec;
        let mut enc = aws_sdk_ecr::types::EncryptionConfiguration::builder().encryption_type(if s.encryption == "KMS" {
            aws_sdk_ecr::types::EncryptionType::Kms
        } else {
            aws_sdk_ecr::types::EncryptionType::Aes256
        });
        if let Some(k) = &s.kms_key {
            enc = enc.kms_key(k);
        }
        let out = aws
            .ecr()
            .create_repository()
            .repository_name(&s.name)
            .image_tag_mutability(if s.immutable { aws_sdk_ecr::types::ImageTagMutability::Immutable } else { aws_sdk_ecr::types::ImageTagMutability::Mutable })
            .image_scanning_configuration(aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(s.scan_on_push).build())
            .encryption_configuration(enc.build().map_err(|e| NodeError::other(e.to_string()))?)
            .set_tags(Some(ecr_tags(&self.c.tags_for("repository", None))))
            .send()
            .await
            .map_err(|e| aws_err("ecr:CreateRepository", e))?;
        let arn = out.repository().and_then(|r| r.repository_arn()).unwrap_or_default().to_string();
        self.apply_settings(aws, &arn).await.map_err(|e| e.with_id(&s.name))?;
        Ok(Made::id(&s.name).with("uri", out.repository().and_then(|r| r.repository_uri()).unwrap_or_default()))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let Some(r) = Self::describe_repo(aws, id).await? else { return Ok(Observed::Gone) };
        let immutable = r.image_tag_mutability().map(|m| m.as_str() == "IMMUTABLE").unwrap_or(false);
        let scan = r.image_scanning_configuration().map(|c| c.scan_on_push()).unwrap_or(false);
        if immutable != self.spec.immutable || scan != self.spec.scan_on_push {
            return Ok(Observed::Drifted("repository settings differ".into()));
        }
        let policy = aws.ecr().get_lifecycle_policy().repository_name(id).send().await;
        let same = policy.ok().and_then(|p| p.lifecycle_policy_text().map(str::to_string)).and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            == serde_json::from_str::<serde_json::Value>(&lifecycle_policy(self.spec.keep_images)).ok();
        Ok(if same { Observed::InSync } else { Observed::Drifted("lifecycle policy differs".into()) })
    }
    async fn update(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let r = Self::describe_repo(aws, id).await?.ok_or_else(|| NodeError::other(format!("repository {id} vanished")))?;
        self.apply_settings(aws, r.repository_arn().unwrap_or_default()).await?;
        Ok(Made::id(id).with("uri", r.repository_uri().unwrap_or_default()))
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // force: images pushed to the repository go with it.
        match aws.ecr().delete_repository().repository_name(id).force(true).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = aws_err("ecr:DeleteRepository", e);
                if e.is_not_found() { Ok(()) } else { Err(e.into()) }
            }
        }
    }
}

// ------------------------------------------------------------------ ECS cluster

pub struct ClusterNode {
    pub c: Arc<Common>,
    pub name: String,
    pub container_insights: bool,
}

fn ecs_tags(t: &BTreeMap<String, String>) -> Vec<aws_sdk_ecs::types::Tag> {
    t.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()).collect()
}

impl ClusterNode {
    fn setting(&self) -> aws_sdk_ecs::types::ClusterSetting {
        aws_sdk_ecs::types::ClusterSetting::builder()
            .name(aws_sdk_ecs::types::ClusterSettingName::ContainerInsights)
            .value(if self.container_insights { "enabled" } else { "disabled" })
            .build()
    }
    async fn describe_cluster(aws: &Aws, id: &str) -> Result<Option<aws_sdk_ecs::types::Cluster>, NodeError> {
        let out = aws
            .ecs()
            .describe_clusters()
            .clusters(id)
            .include(aws_sdk_ecs::types::ClusterField::Settings)
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .send()
            .await
            .map_err(|e| aws_err("ecs:DescribeClusters", e))?;
        Ok(out.clusters().iter().find(|c| c.status() != Some("INACTIVE")).cloned())
    }
    fn tags_of(c: &aws_sdk_ecs::types::Cluster) -> BTreeMap<String, String> {
        c.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect()
    }
}

#[async_trait]
impl Node<Aws> for ClusterNode {
    fn key(&self) -> &str {
        "ecs_cluster"
    }
    fn describe(&self) -> String {
        format!("ECS cluster {}", self.name)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"name": self.name, "insights": self.container_insights, "tags": self.c.tags_for("ecs_cluster", None)})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Some(c) = Self::describe_cluster(aws, &self.name).await? else { return Ok(Found::None) };
        let tags = Self::tags_of(&c);
        Ok(self.c.owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_found(c.cluster_arn().unwrap_or_default(), &format!("ECS cluster {}", self.name)))
    }
    async fn create(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .ecs()
            .create_cluster()
            .cluster_name(&self.name)
            .settings(self.setting())
            .set_tags(Some(ecs_tags(&self.c.tags_for("ecs_cluster", None))))
            .send()
            .await
            .map_err(|e| aws_err("ecs:CreateCluster", e))?;
        Ok(Made::id(out.cluster().and_then(|c| c.cluster_arn()).unwrap_or_default()))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let Some(c) = Self::describe_cluster(aws, id).await? else { return Ok(Observed::Gone) };
        let insights = c.settings().iter().find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights")).and_then(|s| s.value()).unwrap_or("disabled") == "enabled";
        if insights != self.container_insights {
            return Ok(Observed::Drifted("container insights setting differs".into()));
        }
        Ok(if Self::tags_of(&c) == self.c.tags_for("ecs_cluster", None) { Observed::InSync } else { Observed::Drifted("tags differ".into()) })
    }
    async fn update(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        if let Some(c) = Self::describe_cluster(aws, id).await? {
            // Only a real change calls UpdateClusterSettings (an adopted cluster usually matches).
            let insights = c.settings().iter().find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights")).and_then(|s| s.value()).unwrap_or("disabled") == "enabled";
            if insights != self.container_insights {
                aws.ecs().update_cluster_settings().cluster(id).settings(self.setting()).send().await.map_err(|e| aws_err("ecs:UpdateClusterSettings", e))?;
            }
            let (add, remove) = tag_diff(&Self::tags_of(&c), &self.c.tags_for("ecs_cluster", None));
            if !add.is_empty() {
                aws.ecs().tag_resource().resource_arn(id).set_tags(Some(ecs_tags(&add))).send().await.map_err(|e| aws_err("ecs:TagResource", e))?;
            }
            if !remove.is_empty() {
                aws.ecs().untag_resource().resource_arn(id).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("ecs:UntagResource", e))?;
            }
        }
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.ecs().delete_cluster().cluster(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = aws_err("ecs:DeleteCluster", e);
                if e.is_not_found() { Ok(()) } else { Err(e.into()) }
            }
        }
    }
}
