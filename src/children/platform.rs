//! Platform children: the ECR repository (with scanning, tag mutability,
//! encryption and a lifecycle policy) and the ECS cluster (Container
//! Insights, capacity providers and their default strategy, ECS Exec
//! settings, Service Connect defaults).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ecs::types as ecs;
use serde::Serialize;
use serde_json::json;

use super::{Common, Ref, spec_tags, tag_diff, tags_json, user_visible};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

// ------------------------------------------------------------------ ECR repository

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySpec {
    pub name: String,
    pub immutable: bool,
    pub scan_on_push: bool,
    /// `AES256` or `KMS`.
    pub encryption: String,
    pub kms_key: Option<String>,
    /// The lifecycle policy document (ECR's JSON), or none.
    pub lifecycle: Option<serde_json::Value>,
    /// A repository policy document, or none.
    pub policy: Option<serde_json::Value>,
    /// Whether the repository policy is this composite's whether or not it
    /// wants one: then it is read back (and a policy added elsewhere is
    /// drift) even when `policy` is none, and import can see it.
    pub owns_policy: bool,
}

/// Keep the image tagged `latest` and the newest `keep` images.
pub fn keep_latest_policy(keep: i64) -> serde_json::Value {
    json!({"rules": [
        {"rulePriority": 1, "description": "Keep the image tagged latest",
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["latest"], "countType": "imageCountMoreThan", "countNumber": 1},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": format!("Keep the last {keep} images"),
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}}
    ]})
}

/// The digest ECR gives an image tag: `None` when the tag or the
/// repository does not exist (yet). `registry` is the repository's account.
pub async fn image_digest(aws: &Aws, registry: Option<&str>, repository: &str, tag: &str) -> Result<Option<String>, crate::aws::AwsError> {
    aws.read_image_digest(registry, repository, tag).await
}

fn ecr_tags(t: &Tags) -> Vec<aws_sdk_ecr::types::Tag> {
    t.iter().filter_map(|(k, v)| aws_sdk_ecr::types::Tag::builder().key(k).value(v).build().ok()).collect()
}

fn mutability(immutable: bool) -> aws_sdk_ecr::types::ImageTagMutability {
    if immutable { aws_sdk_ecr::types::ImageTagMutability::Immutable } else { aws_sdk_ecr::types::ImageTagMutability::Mutable }
}

pub struct RepositoryNode {
    pub c: Arc<Common>,
    pub key: String,
    pub spec: RepositorySpec,
}

impl RepositoryNode {
    fn arn(&self) -> String {
        format!("arn:{}:ecr:{}:{}:repository/{}", self.c.partition(), self.c.region, self.c.account, self.spec.name)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn tags(&self, aws: &Aws) -> Result<Tags, NodeError> {
        let out = aws.ecr().list_tags_for_resource().resource_arn(self.arn()).send().await.map_err(|e| aws_err("ecr:ListTagsForResource", e))?;
        Ok(user_visible(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string()))))
    }
    /// Whether `key` is an AWS managed KMS key (`KeyManager` `AWS`). A key
    /// that cannot be described (no `kms:DescribeKey`, another account's
    /// key) counts as the user's: import then names it, which keeps the
    /// repository as it is rather than guessing.
    async fn aws_managed_key(aws: &Aws, key: &str) -> bool {
        match aws.kms().describe_key().key_id(key).send().await {
            Ok(out) => out.key_metadata().and_then(|m| m.key_manager()) == Some(&aws_sdk_kms::types::KeyManagerType::Aws),
            Err(e) => {
                tracing::debug!(key, error = %aws_err("kms:DescribeKey", e), "KMS key not described; taken as the user's");
                false
            }
        }
    }
    async fn describe_repo(aws: &Aws, name: &str) -> Result<Option<aws_sdk_ecr::types::Repository>, NodeError> {
        match aws.ecr().describe_repositories().repository_names(name).send().await.map_err(|e| aws_err("ecr:DescribeRepositories", e)) {
            Ok(o) => Ok(o.repositories().first().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn set_lifecycle(&self, aws: &Aws) -> Result<(), NodeError> {
        let name = &self.spec.name;
        match &self.spec.lifecycle {
            Some(p) => {
                aws.ecr().put_lifecycle_policy().repository_name(name).lifecycle_policy_text(p.to_string()).send().await.map_err(|e| aws_err("ecr:PutLifecyclePolicy", e))?;
            }
            None => match aws.ecr().delete_lifecycle_policy().repository_name(name).send().await.map_err(|e| aws_err("ecr:DeleteLifecyclePolicy", e)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_code(&["LifecyclePolicyNotFoundException"]) => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }
    async fn set_policy(&self, aws: &Aws) -> Result<(), NodeError> {
        let name = &self.spec.name;
        match &self.spec.policy {
            Some(p) => {
                aws.ecr().set_repository_policy().repository_name(name).policy_text(p.to_string()).send().await.map_err(|e| aws_err("ecr:SetRepositoryPolicy", e))?;
            }
            None => match aws.ecr().delete_repository_policy().repository_name(name).send().await.map_err(|e| aws_err("ecr:DeleteRepositoryPolicy", e)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_code(&["RepositoryPolicyNotFoundException"]) => {}
                Err(e) => return Err(e.into()),
            },
        }
        Ok(())
    }
    fn uri(&self) -> String {
        format!("{}/{}", crate::engine::names::ecr_host(&self.c.account, &self.c.region), self.spec.name)
    }
}

#[async_trait]
impl Node<Aws> for RepositoryNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn describe(&self) -> String {
        format!("ECR repository {}", self.spec.name)
    }
    fn spec(&self) -> Spec {
        let s = &self.spec;
        spec(json!({
            "name": s.name, "image_tag_mutability": if s.immutable { "IMMUTABLE" } else { "MUTABLE" }, "scan_on_push": s.scan_on_push,
            "encryption_type": s.encryption, "kms_key": s.kms_key, "lifecycle_policy": s.lifecycle, "repository_policy": s.policy,
            "tags": tags_json(&self.wanted_tags()),
        }))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name", "encryption_type", "kms_key"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(&self.spec.name))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        if Self::describe_repo(aws, &self.spec.name).await?.is_none() {
            return Ok(Found::None);
        }
        Ok(Found::Tagged(Identity::new(&self.spec.name), self.tags(aws).await?))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let s = &self.spec;
        let mut enc = aws_sdk_ecr::types::EncryptionConfiguration::builder().encryption_type(if s.encryption == "KMS" {
            aws_sdk_ecr::types::EncryptionType::Kms
        } else {
            aws_sdk_ecr::types::EncryptionType::Aes256
        });
        if let Some(k) = &s.kms_key {
            enc = enc.kms_key(k);
        }
        aws.ecr()
            .create_repository()
            .repository_name(&s.name)
            .image_tag_mutability(mutability(s.immutable))
            .image_scanning_configuration(aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(s.scan_on_push).build())
            .encryption_configuration(enc.build().map_err(|e| NodeError::other(e.to_string()))?)
            .set_tags(Some(ecr_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("ecr:CreateRepository", e))?;
        // The lifecycle and repository policies are independent settings: both at once.
        let lifecycle = async { if s.lifecycle.is_some() { self.set_lifecycle(aws).await } else { Ok(()) } };
        let policy = async { if s.policy.is_some() { self.set_policy(aws).await } else { Ok(()) } };
        tokio::try_join!(lifecycle, policy).map_err(|e| e.with_id(&s.name))?;
        Ok(Made::id(&s.name).with("uri", self.uri()).with("arn", self.arn()))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(r) = aws.read_repository(&id.id).await? else { return Ok(None) };
        let enc = r.encryption_configuration();
        let mut s = spec(json!({
            "name": r.repository_name(), "image_tag_mutability": r.image_tag_mutability().map(|m| m.as_str()),
            "scan_on_push": r.image_scanning_configuration().map(|c| c.scan_on_push()).unwrap_or(false),
            "encryption_type": enc.map(|e| e.encryption_type().as_str()).unwrap_or("AES256"),
            // Without a key of its own a KMS repository uses the AWS managed key, whose ARN ECR reports:
            // the configured "none" is that key, not drift. `kms_key_in_use` says which it is (import).
            "kms_key": enc.and_then(|e| e.kms_key()).filter(|_| self.spec.kms_key.is_some()), "kms_key_in_use": enc.and_then(|e| e.kms_key()),
            "uri": r.repository_uri(), "arn": r.repository_arn(),
        }));
        // A KMS repository where the spec expects none is being imported (or will be replaced):
        // whether its key is the AWS managed one decides whether the configuration names a key.
        if let (Some(key), false) = (enc.and_then(|e| e.kms_key()), self.spec.encryption == "KMS") {
            s.insert("kms_key_aws_managed".into(), json!(Self::aws_managed_key(aws, key).await));
        }
        let policy = aws.ecr().get_lifecycle_policy().repository_name(&id.id).send().await.map_err(|e| aws_err("ecr:GetLifecyclePolicy", e));
        let lifecycle = match policy {
            Ok(p) => p.lifecycle_policy_text().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()),
            Err(e) if e.is_not_found() || e.is_code(&["LifecyclePolicyNotFoundException"]) => None,
            Err(e) => return Err(e.into()),
        };
        s.insert("lifecycle_policy".into(), json!(lifecycle));
        if self.spec.policy.is_some() || self.spec.owns_policy {
            let p = match aws.ecr().get_repository_policy().repository_name(&id.id).send().await.map_err(|e| aws_err("ecr:GetRepositoryPolicy", e)) {
                Ok(p) => p.policy_text().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()),
                Err(e) if e.is_not_found() || e.is_code(&["RepositoryPolicyNotFoundException"]) => None,
                Err(e) => return Err(e.into()),
            };
            s.insert("repository_policy".into(), json!(p));
        }
        Ok(Some(s))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        let s = &self.spec;
        if base.get("image_tag_mutability") != want.get("image_tag_mutability") {
            aws.ecr()
                .put_image_tag_mutability()
                .repository_name(&s.name)
                .image_tag_mutability(mutability(s.immutable))
                .send()
                .await
                .map_err(|e| aws_err("ecr:PutImageTagMutability", e))?;
        }
        if base.get("scan_on_push") != want.get("scan_on_push") {
            aws.ecr()
                .put_image_scanning_configuration()
                .repository_name(&s.name)
                .image_scanning_configuration(aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(s.scan_on_push).build())
                .send()
                .await
                .map_err(|e| aws_err("ecr:PutImageScanningConfiguration", e))?;
        }
        if base.get("lifecycle_policy") != want.get("lifecycle_policy") {
            self.set_lifecycle(aws).await?;
        }
        if base.get("repository_policy") != want.get("repository_policy") {
            self.set_policy(aws).await?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.tags(aws).await?,
        };
        let (add, remove) = tag_diff(&current, &self.wanted_tags());
        if !add.is_empty() {
            aws.ecr().tag_resource().resource_arn(self.arn()).set_tags(Some(ecr_tags(&add))).send().await.map_err(|e| aws_err("ecr:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.ecr().untag_resource().resource_arn(self.arn()).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("ecr:UntagResource", e))?;
        }
        Ok(Made::identity(id.clone()).with("uri", self.uri()).with("arn", self.arn()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // force: images pushed to the repository go with it.
        match aws.ecr().delete_repository().repository_name(&id.id).force(true).send().await.map_err(|e| aws_err("ecr:DeleteRepository", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.ecr().tag_resource().resource_arn(self.arn()).set_tags(Some(ecr_tags(&[(k, v)].into()))).send().await.map_err(|e| aws_err("ecr:TagResource", e))?;
        Ok(())
    }
}

// ------------------------------------------------------------------ ECS cluster

/// One entry of a capacity provider strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Strategy {
    pub capacity_provider: String,
    pub weight: i64,
    pub base: i64,
}

/// Where `aws ecs execute-command` sessions are logged, and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSettings {
    pub kms_key: Option<String>,
    /// A log group (literal name or a child) for session logs; none: the default logging.
    pub log_group: Option<Ref>,
    pub encrypt_logs: bool,
}

pub struct ClusterNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    /// `enabled`, `disabled` or `enhanced`.
    pub container_insights: String,
    pub capacity_providers: Vec<String>,
    pub default_strategy: Vec<Strategy>,
    pub exec: Option<ExecSettings>,
    /// The Service Connect default namespace (an ARN, or a child's).
    pub service_connect_namespace: Option<Ref>,
}

fn ecs_tags(t: &Tags) -> Vec<ecs::Tag> {
    t.iter().map(|(k, v)| ecs::Tag::builder().key(k).value(v).build()).collect()
}

impl ClusterNode {
    fn setting(&self) -> ecs::ClusterSetting {
        ecs::ClusterSetting::builder().name(ecs::ClusterSettingName::ContainerInsights).value(&self.container_insights).build()
    }
    fn exec_spec(&self) -> serde_json::Value {
        match &self.exec {
            None => serde_json::Value::Null,
            Some(e) => json!({"kms_key": e.kms_key, "log_group": e.log_group.as_ref().map(Ref::spec), "encrypt_logs": e.encrypt_logs}),
        }
    }
    fn configuration(&self, cx: &Cx<'_>) -> Result<Option<ecs::ClusterConfiguration>, NodeError> {
        let Some(e) = &self.exec else { return Ok(None) };
        let mut b = ecs::ExecuteCommandConfiguration::builder().set_kms_key_id(e.kms_key.clone());
        b = match &e.log_group {
            Some(g) => b.logging(ecs::ExecuteCommandLogging::Override).log_configuration(
                ecs::ExecuteCommandLogConfiguration::builder().cloud_watch_log_group_name(g.resolve(cx)?).cloud_watch_encryption_enabled(e.encrypt_logs).build(),
            ),
            None => b.logging(ecs::ExecuteCommandLogging::Default),
        };
        Ok(Some(ecs::ClusterConfiguration::builder().execute_command_configuration(b.build()).build()))
    }
    fn strategy(&self) -> Vec<ecs::CapacityProviderStrategyItem> {
        self.default_strategy
            .iter()
            .filter_map(|s| ecs::CapacityProviderStrategyItem::builder().capacity_provider(&s.capacity_provider).weight(s.weight as i32).base(s.base as i32).build().ok())
            .collect()
    }
    fn sc_defaults(&self, cx: &Cx<'_>) -> Result<Option<ecs::ClusterServiceConnectDefaultsRequest>, NodeError> {
        match &self.service_connect_namespace {
            None => Ok(None),
            Some(r) => Ok(Some(ecs::ClusterServiceConnectDefaultsRequest::builder().namespace(r.resolve(cx)?).build().map_err(|e| NodeError::other(e.to_string()))?)),
        }
    }
    async fn describe_cluster(aws: &Aws, id: &str) -> Result<Option<ecs::Cluster>, NodeError> {
        let out = aws
            .ecs()
            .describe_clusters()
            .clusters(id)
            .include(ecs::ClusterField::Settings)
            .include(ecs::ClusterField::Tags)
            .include(ecs::ClusterField::Configurations)
            .send()
            .await
            .map_err(|e| aws_err("ecs:DescribeClusters", e))?;
        Ok(out.clusters().iter().find(|c| c.status() != Some("INACTIVE")).cloned())
    }
    fn tags_of(c: &ecs::Cluster) -> Tags {
        user_visible(c.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))))
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    fn observed_strategy(c: &ecs::Cluster) -> Vec<Strategy> {
        c.default_capacity_provider_strategy()
            .iter()
            .map(|s| Strategy { capacity_provider: s.capacity_provider().to_string(), weight: i64::from(s.weight()), base: i64::from(s.base()) })
            .collect()
    }
}

#[async_trait]
impl Node<Aws> for ClusterNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.service_connect_namespace.as_ref().and_then(Ref::key).into_iter().collect();
        d.extend(self.exec.as_ref().and_then(|e| e.log_group.as_ref()).and_then(Ref::key));
        d
    }
    fn describe(&self) -> String {
        format!("ECS cluster {}", self.name)
    }
    fn spec(&self) -> Spec {
        let mut providers = self.capacity_providers.clone();
        providers.sort();
        spec(json!({
            "name": self.name, "container_insights": self.container_insights, "capacity_providers": providers,
            "default_capacity_provider_strategy": self.default_strategy, "execute_command": self.exec_spec(),
            "service_connect_namespace": self.service_connect_namespace.as_ref().map(Ref::spec), "tags": tags_json(&self.wanted_tags()),
        }))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Some(c) = Self::describe_cluster(aws, &self.name).await? else { return Ok(Found::None) };
        Ok(Found::Tagged(Identity::new(c.cluster_arn().unwrap_or_default()), Self::tags_of(&c)))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let mut req = aws
            .ecs()
            .create_cluster()
            .cluster_name(&self.name)
            .settings(self.setting())
            .set_configuration(self.configuration(cx)?)
            .set_service_connect_defaults(self.sc_defaults(cx)?)
            .set_tags(Some(ecs_tags(&self.c.create_tags(&self.key, None, cx))));
        if !self.capacity_providers.is_empty() {
            req = req.set_capacity_providers(Some(self.capacity_providers.clone())).set_default_capacity_provider_strategy(Some(self.strategy()));
        }
        let out = req.send().await.map_err(|e| aws_err("ecs:CreateCluster", e))?;
        Ok(Made::id(out.cluster().and_then(|c| c.cluster_arn()).ok_or_else(|| NodeError::no_identity("ecs:CreateCluster"))?))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(c) = aws.read_cluster(&id.id).await? else { return Ok(None) };
        let insights = c.settings().iter().find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights")).and_then(|s| s.value()).unwrap_or("disabled").to_string();
        let exec = c.configuration().and_then(|x| x.execute_command_configuration()).map(|e| {
            let lg = e.log_configuration().and_then(|l| l.cloud_watch_log_group_name());
            let log_group = match (&self.exec, lg) {
                (Some(ExecSettings { log_group: Some(r), .. }), Some(name)) => Some(r.observed(name, cx)),
                (_, name) => name.map(str::to_string),
            };
            json!({"kms_key": e.kms_key_id(), "log_group": log_group, "encrypt_logs": e.log_configuration().map(|l| l.cloud_watch_encryption_enabled()).unwrap_or(false)})
        });
        let namespace = c.service_connect_defaults().and_then(|d| d.namespace()).map(|n| match &self.service_connect_namespace {
            Some(r) => r.observed(n, cx),
            None => n.to_string(),
        });
        let mut providers = c.capacity_providers().to_vec();
        providers.sort();
        Ok(Some(spec(json!({
            "name": c.cluster_name(), "container_insights": insights, "capacity_providers": providers,
            "default_capacity_provider_strategy": Self::observed_strategy(&c), "execute_command": exec.unwrap_or(serde_json::Value::Null),
            "service_connect_namespace": namespace, "tags": tags_json(&Self::tags_of(&c)),
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        let arn = id.id.as_str();
        let insights = base.get("container_insights") != want.get("container_insights");
        let config = base.get("execute_command") != want.get("execute_command") || base.get("service_connect_namespace") != want.get("service_connect_namespace");
        if insights || config {
            // One UpdateCluster carries the settings, ECS Exec configuration and Service Connect defaults.
            let mut u = aws.ecs().update_cluster().cluster(arn);
            if insights {
                u = u.settings(self.setting());
            }
            if config {
                u = u.set_configuration(self.configuration(cx)?);
                u = match self.sc_defaults(cx)? {
                    Some(d) => u.service_connect_defaults(d),
                    // An empty namespace removes the defaults.
                    None if base.get("service_connect_namespace").is_some_and(|v| !v.is_null()) => {
                        u.service_connect_defaults(ecs::ClusterServiceConnectDefaultsRequest::builder().namespace("").build().map_err(|e| NodeError::other(e.to_string()))?)
                    }
                    None => u,
                };
            }
            u.send().await.map_err(|e| aws_err("ecs:UpdateCluster", e))?;
        }
        if base.get("capacity_providers") != want.get("capacity_providers") || base.get("default_capacity_provider_strategy") != want.get("default_capacity_provider_strategy") {
            aws.ecs()
                .put_cluster_capacity_providers()
                .cluster(arn)
                .set_capacity_providers(Some(self.capacity_providers.clone()))
                .set_default_capacity_provider_strategy(Some(self.strategy()))
                .send()
                .await
                .map_err(|e| aws_err("ecs:PutClusterCapacityProviders", e))?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => Self::describe_cluster(aws, arn).await?.map(|c| Self::tags_of(&c)).unwrap_or_default(),
        };
        let (add, remove) = tag_diff(&current, &self.wanted_tags());
        if !add.is_empty() {
            aws.ecs().tag_resource().resource_arn(arn).set_tags(Some(ecs_tags(&add))).send().await.map_err(|e| aws_err("ecs:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.ecs().untag_resource().resource_arn(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("ecs:UntagResource", e))?;
        }
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.ecs().delete_cluster().cluster(&id.id).send().await.map_err(|e| aws_err("ecs:DeleteCluster", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.ecs().tag_resource().resource_arn(&id.id).set_tags(Some(ecs_tags(&[(k, v)].into()))).send().await.map_err(|e| aws_err("ecs:TagResource", e))?;
        Ok(())
    }
}
