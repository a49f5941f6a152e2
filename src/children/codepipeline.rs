//! CodePipeline pipelines (type V2): any stages of any actions, each with its
//! action type, configuration, input and output artifacts and run order, an
//! S3 artifact store and a service role. UpdatePipeline takes the whole
//! declaration, so an update sends it once when anything in it differs; tags
//! go through TagResource/UntagResource. The identity is the pipeline's ARN
//! (predictable: region, account and name).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_codepipeline::types as cp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Common, Ref, built, spec_tags, tag_diff, tags_json, user_visible};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub actions: Vec<Action>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub name: String,
    /// `Source`, `Build`, `Test`, `Deploy`, `Approval`, `Invoke`.
    pub category: String,
    /// `AWS`, `ThirdParty`, `Custom`.
    pub owner: String,
    pub provider: String,
    pub version: String,
    pub configuration: BTreeMap<String, String>,
    pub input_artifacts: Vec<String>,
    pub output_artifacts: Vec<String>,
    pub run_order: i32,
}

pub struct PipelineNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub role: Ref,
    /// The artifact store's S3 bucket.
    pub bucket: Ref,
    pub stages: Vec<Stage>,
    /// Children the actions name by a literal they can predict (a build project's name).
    pub after: Vec<String>,
}

fn cp_tags(t: &Tags) -> Result<Vec<cp::Tag>, NodeError> {
    t.iter().map(|(k, v)| built(cp::Tag::builder().key(k).value(v).build())).collect()
}

fn observed_stages(p: &cp::PipelineDeclaration) -> Vec<Stage> {
    p.stages()
        .iter()
        .map(|s| Stage {
            name: s.name().to_string(),
            actions: s
                .actions()
                .iter()
                .map(|a| {
                    let t = a.action_type_id();
                    Action {
                        name: a.name().to_string(),
                        category: t.map(|t| t.category().as_str().to_string()).unwrap_or_default(),
                        owner: t.map(|t| t.owner().as_str().to_string()).unwrap_or_default(),
                        provider: t.map(|t| t.provider().to_string()).unwrap_or_default(),
                        version: t.map(|t| t.version().to_string()).unwrap_or_default(),
                        configuration: a.configuration().map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
                        input_artifacts: a.input_artifacts().iter().map(|i| i.name().to_string()).collect(),
                        output_artifacts: a.output_artifacts().iter().map(|o| o.name().to_string()).collect(),
                        run_order: a.run_order().unwrap_or(1),
                    }
                })
                .collect(),
        })
        .collect()
}

impl PipelineNode {
    pub fn arn(&self) -> String {
        format!("arn:{}:codepipeline:{}:{}:{}", self.c.partition(), self.c.region, self.c.account, self.name)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn get(&self, aws: &Aws) -> Result<Option<cp::PipelineDeclaration>, NodeError> {
        match aws.codepipeline().get_pipeline().name(&self.name).send().await.map_err(|e| aws_err("codepipeline:GetPipeline", e)) {
            Ok(o) => Ok(o.pipeline().cloned()),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn tags(&self, aws: &Aws) -> Result<Tags, NodeError> {
        let out = aws.codepipeline().list_tags_for_resource().resource_arn(self.arn()).send().await.map_err(|e| aws_err("codepipeline:ListTagsForResource", e))?;
        Ok(user_visible(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string()))))
    }
    fn declaration(&self, cx: &Cx<'_>) -> Result<cp::PipelineDeclaration, NodeError> {
        let mut stages = Vec::new();
        for s in &self.stages {
            let mut actions = Vec::new();
            for a in &s.actions {
                let type_id = built(
                    cp::ActionTypeId::builder()
                        .category(cp::ActionCategory::from(a.category.as_str()))
                        .owner(cp::ActionOwner::from(a.owner.as_str()))
                        .provider(&a.provider)
                        .version(&a.version)
                        .build(),
                )?;
                let mut b = cp::ActionDeclaration::builder()
                    .name(&a.name)
                    .action_type_id(type_id)
                    .run_order(a.run_order)
                    .set_configuration(Some(a.configuration.iter().map(|(k, v)| (k.clone(), v.clone())).collect()));
                for i in &a.input_artifacts {
                    b = b.input_artifacts(built(cp::InputArtifact::builder().name(i).build())?);
                }
                for o in &a.output_artifacts {
                    b = b.output_artifacts(built(cp::OutputArtifact::builder().name(o).build())?);
                }
                actions.push(built(b.build())?);
            }
            stages.push(built(cp::StageDeclaration::builder().name(&s.name).set_actions(Some(actions)).build())?);
        }
        let store = built(cp::ArtifactStore::builder().r#type(cp::ArtifactStoreType::S3).location(self.bucket.resolve(cx)?).build())?;
        built(
            cp::PipelineDeclaration::builder()
                .name(&self.name)
                .role_arn(self.role.resolve(cx)?)
                .artifact_store(store)
                .set_stages(Some(stages))
                .pipeline_type(cp::PipelineType::V2)
                .execution_mode(cp::ExecutionMode::Queued)
                .build(),
        )
    }
    async fn retag(&self, aws: &Aws, current: &Tags) -> Result<(), NodeError> {
        let (add, remove) = tag_diff(current, &self.wanted_tags());
        if !add.is_empty() {
            aws.codepipeline().tag_resource().resource_arn(self.arn()).set_tags(Some(cp_tags(&add)?)).send().await.map_err(|e| aws_err("codepipeline:TagResource", e))?;
        }
        if !remove.is_empty() {
            aws.codepipeline().untag_resource().resource_arn(self.arn()).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("codepipeline:UntagResource", e))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Node<Aws> for PipelineNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        let mut d: Vec<&str> = [self.role.key(), self.bucket.key()].into_iter().flatten().collect();
        d.extend(self.after.iter().map(String::as_str));
        d
    }
    fn describe(&self) -> String {
        format!("CodePipeline pipeline {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({
            "name": self.name, "role": self.role.spec(), "artifact_bucket": self.bucket.spec(), "stages": self.stages,
            "pipeline_type": "V2", "execution_mode": "QUEUED", "tags": tags_json(&self.wanted_tags()),
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
        aws.codepipeline()
            .create_pipeline()
            .pipeline(self.declaration(cx)?)
            .set_tags(Some(cp_tags(&self.c.create_tags(&self.key, None, cx))?))
            .send()
            .await
            .map_err(|e| aws_err("codepipeline:CreatePipeline", e))?;
        Ok(Made::id(self.arn()))
    }
    async fn observe(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(p) = self.get(aws).await? else { return Ok(None) };
        let tags = self.tags(aws).await?;
        Ok(Some(spec(json!({
            "name": p.name(),
            "role": self.role.observed(p.role_arn(), cx),
            "artifact_bucket": p.artifact_store().map(|s| self.bucket.observed(s.location(), cx)),
            "stages": observed_stages(&p),
            "pipeline_type": p.pipeline_type().map(|t| t.as_str().to_string()).unwrap_or_else(|| "V1".into()),
            "execution_mode": p.execution_mode().map(|m| m.as_str().to_string()).unwrap_or_else(|| "SUPERSEDED".into()),
            "tags": tags_json(&tags),
        }))))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want = self.spec();
        if ["role", "artifact_bucket", "stages", "pipeline_type", "execution_mode"].iter().any(|f| base.get(*f) != want.get(*f)) {
            aws.codepipeline().update_pipeline().pipeline(self.declaration(cx)?).send().await.map_err(|e| aws_err("codepipeline:UpdatePipeline", e))?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.tags(aws).await?,
        };
        self.retag(aws, &current).await?;
        Ok(Made::id(self.arn()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // The identity is the ARN; its last segment is the name.
        let name = id.id.rsplit(':').next().unwrap_or(&self.name);
        match aws.codepipeline().delete_pipeline().name(name).send().await.map_err(|e| aws_err("codepipeline:DeletePipeline", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        let tag = built(cp::Tag::builder().key(k).value(v).build())?;
        aws.codepipeline().tag_resource().resource_arn(self.arn()).tags(tag).send().await.map_err(|e| aws_err("codepipeline:TagResource", e))?;
        Ok(())
    }
}
