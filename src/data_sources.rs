//! The provider's data sources: an ECS service as it runs now (its task
//! definition, images, counts and deployments) and an ECR image by tag or
//! digest. A name that matches nothing is an error, not null: a data source
//! that silently read nothing would feed empty values into the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ecr::types::ImageIdentifier;
use aws_smithy_types::date_time::Format;

use crate::aws::{Aws, aws_err};
use crate::children::ecs::find_service;
use crate::framework::check::Check;
use crate::framework::{Attribute, Block, Ctx, DataSource, Diagnostic, Diags, Nesting, Path, Schema, Type, Value};
use crate::functions::{DIGEST_RE, DIGEST_RULE, ECR_REPO_RE, ECR_REPO_RULE, TAG_RE, TAG_RULE, ecr_image_uri};
use crate::resources::ecs_fargate_service::{CLUSTER_RE, CLUSTER_RULE, NAME_RE, NAME_RULE};

pub fn all() -> Vec<Arc<dyn DataSource<Aws>>> {
    vec![Arc::new(EcsService), Arc::new(Image)]
}

fn computed(name: &str, ty: Type, description: &str) -> Attribute {
    Attribute::new(name, ty).computed().describe(description)
}

fn failed(summary: &str, detail: impl Into<String>) -> Diags {
    Diagnostic::error(summary, detail).into()
}

fn text(config: &Value, attr: &str) -> Option<String> {
    config.get(attr).as_str().map(str::to_string)
}

fn opt_string(s: Option<&str>) -> Value {
    s.map(Value::string).unwrap_or(Value::Null)
}

/// RFC 3339, as AWS's own timestamps are written (`2026-01-02T03:04:05Z`).
fn timestamp(t: Option<&aws_smithy_types::DateTime>) -> Value {
    t.and_then(|t| t.fmt(Format::DateTime).ok()).map(Value::String).unwrap_or(Value::Null)
}

fn object(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// The config with the computed attributes filled in.
fn with_outputs(mut config: Value, outputs: Vec<(&str, Value)>) -> Value {
    for (k, v) in outputs {
        config.set_attr(k, v);
    }
    config
}

struct EcsService;

const DEPLOYMENT_ATTRS: [(&str, &str); 7] = [
    ("id", "The deployment's ID (`ecs-svc/…`)."),
    ("status", "`PRIMARY` (the newest), `ACTIVE` (being replaced) or `INACTIVE`."),
    ("task_definition_arn", "The task definition the deployment runs."),
    ("desired_count", "Tasks the deployment should run."),
    ("running_count", "Tasks of the deployment running now."),
    ("rollout_state", "`IN_PROGRESS`, `COMPLETED` or `FAILED` (null when ECS reports none)."),
    ("created_at", "When the deployment started (RFC 3339)."),
];

#[async_trait]
impl DataSource<Aws> for EcsService {
    fn type_name(&self) -> &'static str {
        "cxflow_ecs_service"
    }
    fn schema(&self) -> Schema {
        let deployment = DEPLOYMENT_ATTRS.iter().map(|(name, d)| computed(name, if name.ends_with("_count") { Type::Number } else { Type::String }, d)).collect();
        Schema::new(
            0,
            Block::new(vec![
                Attribute::new("cluster", Type::String).required().check(Check::Matches(CLUSTER_RE, CLUSTER_RULE)).describe("The ECS cluster's name or ARN."),
                Attribute::new("service", Type::String).required().check(Check::Matches(NAME_RE, NAME_RULE)).describe("The service's name."),
                computed("arn", Type::String, "The service's ARN."),
                computed("status", Type::String, "`ACTIVE` or `DRAINING`."),
                computed("task_definition_arn", Type::String, "The task definition of the service's primary deployment."),
                computed("task_definition_revision", Type::Number, "That task definition's revision number."),
                computed("images", Type::map(Type::String), "Every container of that task definition: container name to image."),
                computed("image", Type::String, "The image of the task definition's first essential container (the first container when none is marked essential)."),
                computed("desired_count", Type::Number, "Tasks the service should run."),
                computed("running_count", Type::Number, "Tasks running now."),
                computed("pending_count", Type::Number, "Tasks starting now."),
                computed("launch_type", Type::String, "`FARGATE`, `EC2` or `EXTERNAL`; null for a service on a capacity provider strategy."),
                Attribute::nested("deployments", Nesting::List, deployment).computed().describe("The service's deployments as ECS reports them, newest first."),
            ])
            .describe(
                "Reads an ECS service as it runs now: its task definition and images, its task counts and its deployments \
                 (ecs:DescribeServices, ecs:DescribeTaskDefinition). A service that does not exist, or was deleted, is an error naming it.",
            ),
        )
    }
    async fn read(&self, aws: &Aws, config: Value, _ctx: Ctx) -> Result<Value, Diags> {
        let cluster = text(&config, "cluster").unwrap_or_default();
        let service = text(&config, "service").unwrap_or_default();
        let svc = match find_service(aws, &cluster, &service).await {
            Ok(Ok(s)) => s,
            Ok(Err(reason)) => {
                return Err(failed("ECS service not found", format!("There is no ECS service {service:?} in cluster {cluster:?}: DescribeServices reports {reason}.")));
            }
            Err(e) => return Err(failed("Could not read the ECS service", format!("Reading ECS service {service:?} in cluster {cluster:?}: {e}"))),
        };
        let td_arn = svc.task_definition().unwrap_or_default().to_string();
        let td = aws.ecs().describe_task_definition().task_definition(&td_arn).send().await.map_err(|e| {
            failed("Could not read the service's task definition", format!("Reading {td_arn} of ECS service {service:?}: {}", aws_err("ecs:DescribeTaskDefinition", e)))
        })?;
        let containers = td.task_definition().map(|t| t.container_definitions()).unwrap_or_default();
        let images: BTreeMap<String, Value> = containers.iter().filter_map(|c| Some((c.name()?.to_string(), Value::string(c.image()?)))).collect();
        // ECS treats a container without `essential` as essential.
        let first = containers.iter().find(|c| c.essential() != Some(false)).or(containers.first());
        let deployments = svc
            .deployments()
            .iter()
            .map(|d| {
                object(vec![
                    ("id", opt_string(d.id())),
                    ("status", opt_string(d.status())),
                    ("task_definition_arn", opt_string(d.task_definition())),
                    ("desired_count", Value::int(d.desired_count().into())),
                    ("running_count", Value::int(d.running_count().into())),
                    ("rollout_state", opt_string(d.rollout_state().map(|r| r.as_str()))),
                    ("created_at", timestamp(d.created_at())),
                ])
            })
            .collect();
        Ok(with_outputs(
            config,
            vec![
                ("arn", opt_string(svc.service_arn())),
                ("status", opt_string(svc.status())),
                ("task_definition_arn", Value::string(&td_arn)),
                ("task_definition_revision", td.task_definition().map(|t| Value::int(t.revision().into())).unwrap_or(Value::Null)),
                ("images", Value::Map(images)),
                ("image", opt_string(first.and_then(|c| c.image()))),
                ("desired_count", Value::int(svc.desired_count().into())),
                ("running_count", Value::int(svc.running_count().into())),
                ("pending_count", Value::int(svc.pending_count().into())),
                ("launch_type", opt_string(svc.launch_type().map(|l| l.as_str()))),
                ("deployments", Value::List(deployments)),
            ],
        ))
    }
}

struct Image;

#[async_trait]
impl DataSource<Aws> for Image {
    fn type_name(&self) -> &'static str {
        "cxflow_image"
    }
    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::new("repository", Type::String)
                    .required()
                    .check(Check::Len(2, 256))
                    .check(Check::Matches(ECR_REPO_RE, ECR_REPO_RULE))
                    .describe("The ECR repository's name, such as `cxflow/app`."),
                Attribute::new("tag", Type::String).optional().check(Check::Matches(TAG_RE, TAG_RULE)).describe("The image's tag. Set exactly one of `tag` and `digest`."),
                Attribute::new("digest", Type::String)
                    .defaulted()
                    .check(Check::Matches(DIGEST_RE, DIGEST_RULE))
                    .describe("The image's digest (`sha256:…`). Set exactly one of `tag` and `digest`; with `tag`, the digest that tag names now."),
                Attribute::new("registry_id", Type::String)
                    .optional()
                    .check(Check::Matches("[0-9]{12}", "a 12-digit AWS account ID"))
                    .describe("The registry's AWS account ID (default: the provider's account)."),
                computed("image_uri", Type::String, "The image pinned by digest: `<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:…`."),
                computed("tags", Type::list(Type::String), "Every tag the image has, sorted."),
                computed("pushed_at", Type::String, "When the image was pushed (RFC 3339)."),
                computed("size_bytes", Type::Number, "The image's size in bytes as ECR reports it."),
                computed("scan_status", Type::String, "The latest scan's status (`COMPLETE`, `IN_PROGRESS`, `FAILED`, …); null when the image was never scanned."),
                computed(
                    "scan_findings",
                    Type::map(Type::Number),
                    "The latest scan's findings: severity (`CRITICAL`, `HIGH`, …) to count; empty when the image was never scanned.",
                ),
            ])
            .describe(
                "Reads an image in a private ECR repository by tag or by digest: its digest, a URI pinned to it, its tags, push time, \
                 size and latest scan (ecr:DescribeImages, ecr:DescribeImageScanFindings). An image or repository that does not exist is an error naming it.",
            ),
        )
    }
    fn validate(&self, config: &Value) -> Diags {
        let mut d = Diags::new();
        match (config.get("tag").is_null(), config.get("digest").is_null()) {
            (true, true) => d.attr_error(Path::attr("tag"), "Missing tag or digest", "Set exactly one of tag and digest to name the image."),
            (false, false) => d.attr_error(Path::attr("digest"), "Conflicting tag and digest", "Set exactly one of tag and digest, not both."),
            _ => {}
        }
        d
    }
    async fn read(&self, aws: &Aws, config: Value, _ctx: Ctx) -> Result<Value, Diags> {
        let repository = text(&config, "repository").unwrap_or_default();
        let registry = text(&config, "registry_id");
        let tag = text(&config, "tag");
        let digest = text(&config, "digest");
        let named = match (&tag, &digest) {
            (Some(t), _) => format!("tagged {t:?}"),
            (None, d) => format!("with digest {}", d.as_deref().unwrap_or_default()),
        };
        let id = ImageIdentifier::builder().set_image_tag(tag.clone()).set_image_digest(digest.clone()).build();
        let out = aws
            .ecr()
            .describe_images()
            .set_registry_id(registry.clone())
            .repository_name(&repository)
            .image_ids(id)
            .send()
            .await
            .map_err(|e| aws_err("ecr:DescribeImages", e))
            .map_err(|e| {
                let summary = if e.is_code(&["RepositoryNotFoundException"]) {
                    "ECR repository not found"
                } else if e.is_code(&["ImageNotFoundException"]) {
                    "ECR image not found"
                } else {
                    "Could not read the ECR image"
                };
                failed(summary, format!("Looking up the image {named} in repository {repository:?}: {e}"))
            })?;
        let Some(img) = out.image_details().first() else {
            return Err(failed("ECR image not found", format!("Repository {repository:?} has no image {named}.")));
        };
        let Some(found) = img.image_digest().map(str::to_string) else {
            return Err(failed("ECR image without a digest", format!("ecr:DescribeImages returned the image {named} in {repository:?} without its digest.")));
        };
        let Some(account) = img.registry_id().map(str::to_string).or(registry.clone()) else {
            return Err(failed("ECR image without a registry", format!("ecr:DescribeImages returned the image {named} in {repository:?} without its registry ID.")));
        };
        let mut tags: Vec<String> = img.image_tags().to_vec();
        tags.sort();
        let (scan_status, findings) = scan(aws, registry.as_deref(), &repository, &found).await?;
        Ok(with_outputs(
            config,
            vec![
                ("image_uri", Value::string(ecr_image_uri(&account, &aws.region, &repository, &found))),
                ("digest", Value::string(found)),
                ("tags", Value::List(tags.into_iter().map(Value::String).collect())),
                ("pushed_at", timestamp(img.image_pushed_at())),
                ("size_bytes", img.image_size_in_bytes().map(Value::int).unwrap_or(Value::Null)),
                ("scan_status", scan_status),
                ("scan_findings", Value::Map(findings)),
            ],
        ))
    }
}

/// The latest scan's status and finding counts by severity; null and none
/// when the image was never scanned (ECR answers ScanNotFoundException).
async fn scan(aws: &Aws, registry: Option<&str>, repository: &str, digest: &str) -> Result<(Value, BTreeMap<String, Value>), Diags> {
    let id = ImageIdentifier::builder().image_digest(digest).build();
    // The counts cover every finding; one finding per page keeps the answer small.
    let res = aws.ecr().describe_image_scan_findings().set_registry_id(registry.map(str::to_string)).repository_name(repository).image_id(id).max_results(1).send().await;
    match res.map_err(|e| aws_err("ecr:DescribeImageScanFindings", e)) {
        Ok(out) => {
            let status = opt_string(out.image_scan_status().and_then(|s| s.status()).map(|s| s.as_str()));
            let counts = out
                .image_scan_findings()
                .and_then(|f| f.finding_severity_counts())
                .map(|m| m.iter().map(|(k, v)| (k.as_str().to_string(), Value::int((*v).into()))).collect())
                .unwrap_or_default();
            Ok((status, counts))
        }
        Err(e) if e.is_code(&["ScanNotFoundException"]) => Ok((Value::Null, BTreeMap::new())),
        Err(e) => Err(failed("Could not read the image's scan findings", format!("Image {digest} in repository {repository:?}: {e}"))),
    }
}
