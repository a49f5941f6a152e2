//! CodeBuild projects: any source (a pipeline's, a repository's), artifacts,
//! a build environment with plain-text variables, a service role, timeouts
//! and CloudWatch logging. Updates go through UpdateProject with only the
//! members that differ: replacing a project would lose its build history.
//! CodeBuild tags are part of the project; UpdateProject replaces them all,
//! so the creation lease is carried over until a release marks it recorded.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_codebuild::types as cb;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Common, Ref, built, keeping_lease, spec_tags, tags_json};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

/// Where a build's source comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSource {
    /// `CODEPIPELINE`, `GITHUB`, `S3`, `NO_SOURCE`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub location: Option<String>,
    /// The buildspec: a path in the source, or its YAML.
    pub buildspec: Option<String>,
    /// A CodeConnections (CodeStar) connection ARN the project reads a
    /// repository through (`auth` type `CODECONNECTIONS`). Left out of the
    /// spec when absent, so stored specs without it stay equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

/// The build container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildEnvironment {
    /// `LINUX_CONTAINER`, `ARM_CONTAINER`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub image: String,
    pub compute_type: String,
    pub privileged: bool,
    /// Plain-text environment variables (never secrets: CodeBuild shows them).
    pub variables: BTreeMap<String, String>,
    /// Pull the image with the project's service role (`SERVICE_ROLE`, for a
    /// private ECR image) rather than CodeBuild's own credentials.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pull_with_role: bool,
}

pub struct ProjectNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub description: String,
    pub source: BuildSource,
    /// Artifacts type: `CODEPIPELINE`, `NO_ARTIFACTS`, ...
    pub artifacts: String,
    pub environment: BuildEnvironment,
    pub service_role: Ref,
    pub timeout_minutes: i64,
    pub queued_timeout_minutes: i64,
    /// CloudWatch log group (a `LogGroupNode`'s name) and stream prefix.
    pub log_group: Ref,
    pub log_stream: String,
}

fn cb_tags(t: &Tags) -> Vec<cb::Tag> {
    t.iter().map(|(k, v)| cb::Tag::builder().key(k).value(v).build()).collect()
}

fn project_tags(p: &cb::Project) -> Tags {
    p.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).filter(|(k, _)| !k.starts_with("aws:")).collect()
}

impl ProjectNode {
    pub fn arn(&self) -> String {
        format!("arn:{}:codebuild:{}:{}:project/{}", self.c.partition(), self.c.region, self.c.account, self.name)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn get(&self, aws: &Aws) -> Result<Option<cb::Project>, NodeError> {
        let out = aws.codebuild().batch_get_projects().names(&self.name).send().await.map_err(|e| aws_err("codebuild:BatchGetProjects", e))?;
        Ok(out.projects().iter().find(|p| p.name() == Some(self.name.as_str())).cloned())
    }
    fn source_sdk(&self) -> Result<cb::ProjectSource, NodeError> {
        built(
            cb::ProjectSource::builder()
                .r#type(cb::SourceType::from(self.source.kind.as_str()))
                .set_location(self.source.location.clone())
                .set_buildspec(self.source.buildspec.clone())
                .set_auth(match &self.source.connection {
                    Some(arn) => Some(built(cb::SourceAuth::builder().r#type(cb::SourceAuthType::Codeconnections).resource(arn).build())?),
                    None => None,
                })
                .build(),
        )
    }
    fn artifacts_sdk(&self) -> Result<cb::ProjectArtifacts, NodeError> {
        built(cb::ProjectArtifacts::builder().r#type(cb::ArtifactsType::from(self.artifacts.as_str())).build())
    }
    fn environment_sdk(&self) -> Result<cb::ProjectEnvironment, NodeError> {
        let e = &self.environment;
        let mut vars = Vec::new();
        for (k, v) in &e.variables {
            vars.push(built(cb::EnvironmentVariable::builder().name(k).value(v).r#type(cb::EnvironmentVariableType::Plaintext).build())?);
        }
        built(
            cb::ProjectEnvironment::builder()
                .r#type(cb::EnvironmentType::from(e.kind.as_str()))
                .image(&e.image)
                .compute_type(cb::ComputeType::from(e.compute_type.as_str()))
                .privileged_mode(e.privileged)
                .image_pull_credentials_type(if e.pull_with_role { cb::ImagePullCredentialsType::ServiceRole } else { cb::ImagePullCredentialsType::Codebuild })
                .set_environment_variables(Some(vars))
                .build(),
        )
    }
    fn logs_sdk(&self, cx: &Cx<'_>) -> Result<cb::LogsConfig, NodeError> {
        let cw =
            built(cb::CloudWatchLogsConfig::builder().status(cb::LogsConfigStatusType::Enabled).group_name(self.log_group.resolve(cx)?).stream_name(&self.log_stream).build())?;
        Ok(cb::LogsConfig::builder().cloud_watch_logs(cw).build())
    }
}

fn observed_spec(p: &cb::Project, node: &ProjectNode, cx: &Cx<'_>) -> Spec {
    let src = p.source();
    let env = p.environment();
    let vars: BTreeMap<String, String> = env.map(|e| e.environment_variables().iter().map(|v| (v.name().to_string(), v.value().to_string())).collect()).unwrap_or_default();
    let logs = p.logs_config().and_then(|l| l.cloud_watch_logs());
    let mut source = json!({"type": src.map(|s| s.r#type().as_str()), "location": src.and_then(|s| s.location()), "buildspec": src.and_then(|s| s.buildspec())});
    if let Some(arn) = src.and_then(|s| s.auth()).and_then(|a| a.resource()) {
        source["connection"] = json!(arn);
    }
    let mut environment = env.map(|e| {
        json!({
            "type": e.r#type().as_str(), "image": e.image(), "compute_type": e.compute_type().as_str(),
            "privileged": e.privileged_mode().unwrap_or(false), "variables": vars,
        })
    });
    if let Some(e) = environment.as_mut().filter(|_| env.and_then(|e| e.image_pull_credentials_type()) == Some(&cb::ImagePullCredentialsType::ServiceRole)) {
        e["pull_with_role"] = json!(true);
    }
    spec(json!({
        "name": p.name(),
        "description": p.description().unwrap_or_default(),
        "source": source,
        "artifacts": p.artifacts().map(|a| a.r#type().as_str()),
        "environment": environment,
        "service_role": p.service_role().map(|r| node.service_role.observed(r, cx)),
        "timeout_minutes": p.timeout_in_minutes(),
        "queued_timeout_minutes": p.queued_timeout_in_minutes(),
        "log_group": logs.and_then(|l| l.group_name()).map(|g| node.log_group.observed(g, cx)),
        "log_stream": logs.and_then(|l| l.stream_name()),
        "tags": tags_json(&project_tags(p)),
        "arn": p.arn(),
    }))
}

#[async_trait]
impl Node<Aws> for ProjectNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        [self.service_role.key(), self.log_group.key()].into_iter().flatten().collect()
    }
    fn describe(&self) -> String {
        format!("CodeBuild project {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "name": self.name, "description": self.description, "source": self.source, "artifacts": self.artifacts,
            "environment": self.environment, "service_role": self.service_role.spec(), "timeout_minutes": self.timeout_minutes,
            "queued_timeout_minutes": self.queued_timeout_minutes, "log_group": self.log_group.spec(), "log_stream": self.log_stream,
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
        Ok(match self.get(aws).await? {
            None => Found::None,
            Some(p) => Found::Tagged(Identity::new(&self.name), project_tags(&p)),
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .codebuild()
            .create_project()
            .name(&self.name)
            .description(&self.description)
            .source(self.source_sdk()?)
            .artifacts(self.artifacts_sdk()?)
            .environment(self.environment_sdk()?)
            .service_role(self.service_role.resolve(cx)?)
            .timeout_in_minutes(self.timeout_minutes as i32)
            .queued_timeout_in_minutes(self.queued_timeout_minutes as i32)
            .logs_config(self.logs_sdk(cx)?)
            .set_tags(Some(cb_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("codebuild:CreateProject", e))?;
        let arn = out.project().and_then(|p| p.arn()).unwrap_or_default().to_string();
        Ok(Made::id(&self.name).with("arn", if arn.is_empty() { self.arn() } else { arn }))
    }
    async fn observe(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        Ok(aws.read_project(&self.name).await?.map(|p| observed_spec(&p, self, cx)))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        let differs = |f: &str| base.get(f) != want.get(f);
        let mut req = aws.codebuild().update_project().name(&self.name);
        let mut any = false;
        if differs("description") {
            req = req.description(&self.description);
            any = true;
        }
        if differs("source") {
            req = req.source(self.source_sdk()?);
            any = true;
        }
        if differs("artifacts") {
            req = req.artifacts(self.artifacts_sdk()?);
            any = true;
        }
        if differs("environment") {
            req = req.environment(self.environment_sdk()?);
            any = true;
        }
        if differs("service_role") {
            req = req.service_role(self.service_role.resolve(cx)?);
            any = true;
        }
        if differs("timeout_minutes") {
            req = req.timeout_in_minutes(self.timeout_minutes as i32);
            any = true;
        }
        if differs("queued_timeout_minutes") {
            req = req.queued_timeout_in_minutes(self.queued_timeout_minutes as i32);
            any = true;
        }
        if differs("log_group") || differs("log_stream") {
            req = req.logs_config(self.logs_sdk(cx)?);
            any = true;
        }
        let current = spec_tags(base).unwrap_or_default();
        let tags = keeping_lease(self.wanted_tags(), &current);
        if tags != current {
            req = req.set_tags(Some(cb_tags(&tags)));
            any = true;
        }
        if any {
            req.send().await.map_err(|e| aws_err("codebuild:UpdateProject", e))?;
        }
        Ok(Made::id(&self.name).with("arn", self.arn()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.codebuild().delete_project().name(&id.id).send().await.map_err(|e| aws_err("codebuild:DeleteProject", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        // UpdateProject replaces the whole tag set; the project was just created or converged to
        // exactly its wanted tags plus the lease, so the set is written without reading it first.
        let mut tags = self.wanted_tags();
        let (k, v) = cx.recorded_tag();
        tags.insert(k, v);
        aws.codebuild().update_project().name(&self.name).set_tags(Some(cb_tags(&tags))).send().await.map_err(|e| aws_err("codebuild:UpdateProject", e))?;
        Ok(())
    }
}
