//! `cxflow_ecs_cluster`: an ECS cluster for Fargate services — Container
//! Insights, the FARGATE and FARGATE_SPOT capacity providers with a default
//! strategy, ECS Exec session logging to a log group it creates (optionally
//! KMS-encrypted), and a Service Connect default namespace (a Cloud Map HTTP
//! namespace it creates, or one the user has). Seed 003's
//! `aws ecs create-cluster --service-connect-defaults namespace=cruddur` as
//! one resource.
//!
//! This file is the whole resource: schema, cross-attribute checks, the
//! graph, outputs and import. The composite driver does the rest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::aws::Aws;
use crate::children::discovery::HttpNamespaceNode;
use crate::children::logs::{LogGroupNode, RETENTION_DAYS};
use crate::children::platform::{ClusterNode, ExecSettings, Strategy};
use crate::children::{Common, Ref};
use crate::engine::composite::{Composite, CompositeResource, GraphCx, Kids, PlannedChildren, Unwanted};
use crate::engine::{Graph, Identity, Node};
use crate::framework::check::Check;
use crate::framework::provider::Resource;
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Type, Value};

pub const TYPE_NAME: &str = "cxflow_ecs_cluster";
const PROVIDERS: &[&str] = &["FARGATE", "FARGATE_SPOT"];

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EcsCluster {
    pub name: String,
    pub container_insights: Option<String>,
    pub capacity_providers: Option<Vec<String>>,
    #[serde(default)]
    pub default_capacity_provider_strategy: Vec<Strategy>,
    pub service_connect: Option<ServiceConnect>,
    pub execute_command: Option<ExecuteCommand>,
    pub tags: Option<BTreeMap<String, String>>,
    // computed
    pub arn: Option<String>,
    pub namespace_arn: Option<String>,
    pub exec_log_group_name: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceConnect {
    pub namespace_name: Option<String>,
    pub namespace_arn: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ExecuteCommand {
    pub kms_key_arn: Option<String>,
    pub log_retention_days: Option<i64>,
    pub encrypt_logs: Option<bool>,
}

impl EcsCluster {
    fn exec_log_group(&self) -> String {
        format!("/cxflow/ecs-exec/{}", self.name)
    }
    fn providers(&self) -> Vec<String> {
        self.capacity_providers.clone().unwrap_or_else(|| PROVIDERS.iter().map(|s| s.to_string()).collect())
    }
}

fn schema_block() -> Block {
    let strategy = Block::new(vec![
        Attribute::new("capacity_provider", Type::String).required().check(Check::OneOf(PROVIDERS)).describe("`FARGATE` or `FARGATE_SPOT`."),
        Attribute::new("weight", Type::Number).default(Value::int(1)).check(Check::Int(0, 1000)).describe("Relative share of tasks placed with this provider."),
        Attribute::new("base", Type::Number)
            .default(Value::int(0))
            .check(Check::Int(0, 100000))
            .describe("Tasks placed with this provider before weights apply (one provider at most may have a base)."),
    ])
    .describe("The default capacity provider strategy of services that name none. Without this block: all on FARGATE.");
    let sc = Block::new(vec![
        Attribute::new("namespace_name", Type::String)
            .optional()
            .check(Check::Matches("[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?", "a Cloud Map namespace name of letters, digits and hyphens (at most 63)"))
            .describe("Create a Cloud Map HTTP namespace with this name as the cluster's Service Connect default."),
        Attribute::new("namespace_arn", Type::String)
            .optional()
            .check(Check::Arn { service: "servicediscovery", resource: "namespace/" })
            .describe("Use this existing Cloud Map namespace instead."),
    ])
    .describe("The Service Connect default namespace of the cluster: one that this resource creates (`namespace_name`) or an existing one (`namespace_arn`).");
    let exec = Block::new(vec![
        Attribute::new("kms_key_arn", Type::String)
            .optional()
            .check(Check::Arn { service: "kms", resource: "" })
            .describe("KMS key that encrypts the session data between the client and the container."),
        Attribute::new("log_retention_days", Type::Number).default(Value::int(30)).check(Check::IntIn(RETENTION_DAYS)).describe("Days the session log group keeps logs."),
        Attribute::new("encrypt_logs", Type::Bool).default(Value::Bool(false)).describe("Require the session log group to be encrypted."),
    ])
    .describe("Log `aws ecs execute-command` sessions to a CloudWatch log group this resource creates, `/cxflow/ecs-exec/<name>`.");
    Block::new(vec![
        Attribute::new("name", Type::String)
            .required()
            .force_new()
            .check(Check::Matches("[A-Za-z0-9_-]{1,255}", "1 to 255 letters, digits, hyphens and underscores"))
            .describe("Cluster name."),
        Attribute::new("container_insights", Type::String)
            .default(Value::string("enabled"))
            .check(Check::OneOf(&["enabled", "enhanced", "disabled"]))
            .describe("CloudWatch Container Insights."),
        Attribute::new("capacity_providers", Type::set(Type::String)).optional().computed().check(Check::Items(0, 2)).check(Check::each(Check::OneOf(PROVIDERS))).describe(
            "Capacity providers the cluster offers. Default: both `FARGATE` and `FARGATE_SPOT`. Empty: none (services then run with the `FARGATE` \
                 launch type, as on a cluster made without capacity providers).",
        ),
        Attribute::new("arn", Type::String).computed().describe("ARN of the cluster (services name it as `cluster`)."),
        Attribute::new("namespace_arn", Type::String).computed().describe("ARN of the Service Connect default namespace, when there is one."),
        Attribute::new("exec_log_group_name", Type::String).computed().describe("The ECS Exec session log group, when `execute_command` is set."),
    ])
    .with_blocks(vec![
        NestedBlock::new("default_capacity_provider_strategy", Nesting::List, strategy).max(2),
        NestedBlock::new("service_connect", Nesting::Single, sc),
        NestedBlock::new("execute_command", Nesting::Single, exec),
    ])
    .describe(
        "An ECS cluster for Fargate services: Container Insights, the `FARGATE` and `FARGATE_SPOT` capacity providers and a default strategy, \
         ECS Exec session logging to a log group it creates, and a Service Connect default namespace (created in Cloud Map, or an existing one).",
    )
}

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    let providers: Option<Vec<String>> = match c.get("capacity_providers") {
        Value::Null => Some(PROVIDERS.iter().map(|s| s.to_string()).collect()),
        v => v.elements().map(|e| e.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()),
    };
    let strategy = c.get("default_capacity_provider_strategy").elements().unwrap_or_default();
    let mut bases = 0;
    let mut weights = 0i64;
    for (i, s) in strategy.iter().enumerate() {
        let p = Path::attr("default_capacity_provider_strategy").index(i);
        if let (Some(name), Some(list)) = (s.get("capacity_provider").as_str(), &providers) {
            if !list.iter().any(|x| x == name) {
                d.attr_error(p.then_attr("capacity_provider"), "Capacity provider not offered", format!("{name} is not in capacity_providers ({}).", list.join(", ")));
            }
        }
        if s.get("base").as_i64().unwrap_or(0) > 0 {
            bases += 1;
            if bases > 1 {
                d.attr_error(p.then_attr("base"), "Several bases", "Only one capacity provider of a strategy may have a base.");
            }
        }
        weights += s.get("weight").as_i64().unwrap_or(1);
    }
    if !strategy.is_empty() && weights == 0 && strategy.iter().all(|s| s.get("weight").is_wholly_known()) {
        d.attr_error(Path::attr("default_capacity_provider_strategy"), "No weight", "At least one provider of the strategy needs a weight above 0.");
    }
    let sc = c.get("service_connect");
    if !sc.is_null() && sc.is_wholly_known() && sc.get("namespace_name").is_null() == sc.get("namespace_arn").is_null() {
        d.attr_error(Path::attr("service_connect"), "One namespace", "Set exactly one of namespace_name (create a namespace) and namespace_arn (use an existing one).");
    }
    d
}

fn build_graph(cfg: &EcsCluster, c: Arc<Common>) -> Result<Graph<Aws>, Diags> {
    let sc = cfg.service_connect.clone().unwrap_or_default();
    let namespace = match (&sc.namespace_name, &sc.namespace_arn) {
        (Some(_), _) => Some(Ref::dep("namespace")),
        (None, Some(arn)) => Some(Ref::lit(arn.clone())),
        _ => None,
    };
    let exec = cfg.execute_command.as_ref();
    // Without a strategy: all on FARGATE, when the cluster offers it.
    let strategy = if cfg.default_capacity_provider_strategy.is_empty() {
        cfg.providers().iter().filter(|p| *p == "FARGATE").map(|p| Strategy { capacity_provider: p.clone(), weight: 1, base: 0 }).collect()
    } else {
        cfg.default_capacity_provider_strategy.clone()
    };
    let nodes: Vec<Box<dyn Node<Aws>>> = vec![
        Box::new(HttpNamespaceNode {
            c: c.clone(),
            key: "namespace".into(),
            name: sc.namespace_name.clone().unwrap_or_default(),
            description: format!("Service Connect namespace of ECS cluster {}", cfg.name),
        }) as Box<dyn Node<Aws>>,
        Box::new(LogGroupNode {
            c: c.clone(),
            key: "exec_log_group".into(),
            name: cfg.exec_log_group(),
            retention_days: exec.and_then(|e| e.log_retention_days).unwrap_or(30),
            retain: false,
        }),
        Box::new(ClusterNode {
            c,
            key: "ecs_cluster".into(),
            name: cfg.name.clone(),
            container_insights: cfg.container_insights.clone().unwrap_or_else(|| "enabled".into()),
            capacity_providers: cfg.providers(),
            default_strategy: strategy,
            exec: exec.map(|e| ExecSettings { kms_key: e.kms_key_arn.clone(), log_group: Some(Ref::dep("exec_log_group")), encrypt_logs: e.encrypt_logs.unwrap_or(false) }),
            service_connect_namespace: namespace,
        }),
    ];
    let mut nodes = nodes;
    // Unwanted children stay in the graph so a recorded one can be deleted.
    let wanted_ns = sc.namespace_name.is_some();
    let wanted_log = exec.is_some();
    nodes = nodes
        .into_iter()
        .map(|n| if (n.key() == "namespace" && !wanted_ns) || (n.key() == "exec_log_group" && !wanted_log) { Box::new(Unwanted(n)) as Box<dyn Node<Aws>> } else { n })
        .collect();
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

fn opt(v: Option<String>) -> Value {
    v.map(Value::string).unwrap_or(Value::Null)
}

pub struct EcsClusterResource;

#[async_trait]
impl Composite<Aws> for EcsClusterResource {
    type State = EcsCluster;
    const TYPE_NAME: &'static str = TYPE_NAME;
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

    fn block() -> Block {
        schema_block()
    }
    fn validate(config: &Value) -> Diags {
        validate_config(config)
    }
    fn plan_defaults(p: &mut Value) {
        if p.get("capacity_providers").is_null() {
            p.set_attr("capacity_providers", Value::Set(PROVIDERS.iter().map(|s| Value::string(*s)).collect()));
        }
    }
    fn derived(p: &mut Value) {
        let log =
            if p.get("execute_command").is_null() { Value::Null } else { p.get("name").as_str().map(|n| Value::string(format!("/cxflow/ecs-exec/{n}"))).unwrap_or(Value::Unknown) };
        p.set_attr("exec_log_group_name", log);
    }
    fn owner_name(s: &EcsCluster) -> String {
        s.name.clone()
    }
    fn id(s: &EcsCluster) -> String {
        s.name.clone()
    }
    fn identity() -> &'static [(&'static str, &'static str)] {
        &[("name", "The ECS cluster's name.")]
    }
    async fn graph(s: &EcsCluster, g: &GraphCx<'_, Aws>) -> Result<Graph<Aws>, Diags> {
        build_graph(s, Common::new(g).await?)
    }
    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        p.set_attr("arn", pc.identity("ecs_cluster"));
        let ns = match p.get("service_connect").get("namespace_arn") {
            Value::Null if p.get("service_connect").get("namespace_name").is_null() => Value::Null,
            Value::Null => pc.identity("namespace"),
            v => v.clone(),
        };
        p.set_attr("namespace_arn", ns);
    }
    fn outputs(st: &mut Value, cfg: &EcsCluster, kids: &Kids<'_>) {
        st.set_attr("arn", opt(kids.id("ecs_cluster")));
        let ns = cfg.service_connect.as_ref().and_then(|s| s.namespace_arn.clone()).or_else(|| kids.id("namespace"));
        st.set_attr("namespace_arn", opt(ns));
    }
    fn import_seed(id: &str) -> Result<EcsCluster, Diags> {
        let name = id.trim().rsplit(":cluster/").next().unwrap_or_default().to_string();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Diagnostic::error("Invalid import ID", format!("Import a {TYPE_NAME} by its name or ARN, not {id:?}.")).into());
        }
        Ok(EcsCluster { name, ..Default::default() })
    }
    fn adopts_untagged(key: &str) -> bool {
        // The cluster the import ID names, made by hand.
        key == "ecs_cluster"
    }
    fn import_identities(_cfg: &EcsCluster, kids: &Kids<'_>) -> BTreeMap<String, Identity> {
        kids.str_field("ecs_cluster", "service_connect_namespace")
            .filter(|n| n.starts_with("arn:"))
            .map(|n| BTreeMap::from([("namespace".to_string(), Identity::new(n))]))
            .unwrap_or_default()
    }
    async fn from_observed(aws: &Aws, seed: &EcsCluster, kids: &Kids<'_>) -> Result<EcsCluster, Diags> {
        let mut cfg = seed.clone();
        let Some(c) = kids.observed("ecs_cluster") else { return Ok(cfg) };
        cfg.container_insights = c.get("container_insights").and_then(|v| v.as_str()).map(str::to_string);
        cfg.capacity_providers = c.get("capacity_providers").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect());
        let strategy: Vec<Strategy> = c.get("default_capacity_provider_strategy").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
        cfg.default_capacity_provider_strategy = if strategy == [Strategy { capacity_provider: "FARGATE".into(), weight: 1, base: 0 }] { Vec::new() } else { strategy };
        cfg.tags = Some(kids.user_tags("ecs_cluster", &aws.default_tags)).filter(|t| !t.is_empty());
        if let Some(e) = c.get("execute_command").filter(|e| !e.is_null()) {
            cfg.execute_command = Some(ExecuteCommand {
                kms_key_arn: e.get("kms_key").and_then(|v| v.as_str()).map(str::to_string),
                log_retention_days: kids.field("exec_log_group", "retention_in_days").and_then(|v| v.as_i64()),
                encrypt_logs: e.get("encrypt_logs").and_then(|v| v.as_bool()),
            });
        }
        let ns = c.get("service_connect_namespace").and_then(|v| v.as_str()).map(str::to_string);
        cfg.service_connect = match (ns, kids.str_field("namespace", "name")) {
            (Some(_), Some(name)) if kids.id("namespace").is_some() => Some(ServiceConnect { namespace_name: Some(name), namespace_arn: None }),
            (Some(arn), _) if arn.starts_with("arn:") => Some(ServiceConnect { namespace_name: None, namespace_arn: Some(arn) }),
            _ => None,
        };
        Ok(cfg)
    }
}

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(CompositeResource::<EcsClusterResource>::new())
}

/// `list "cxflow_ecs_cluster"`: the account's ECS clusters in the region,
/// optionally by name prefix and tags, as `import` of each name gives it.
/// A cluster made by hand is imported as it is (its Service Connect
/// namespace becomes `service_connect.namespace_arn`); clusters another
/// resource of this provider owns are left out.
pub struct ClusterList;

#[async_trait]
impl crate::framework::ListResource<Aws> for ClusterList {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }
    fn schema(&self) -> crate::framework::Schema {
        crate::framework::Schema::new(
            0,
            Block::new(crate::resources::ecs_fargate_service::list_schema_attrs("clusters")).describe(
                "Finds the ECS clusters of the account in the provider's region and lists each as one `cxflow_ecs_cluster`, exactly as `import` \
                 of its name produces it. Clusters another resource of this provider owns (a `cxflow_cluster`'s) are left out.",
            ),
        )
    }
    async fn list(&self, aws: &Aws, config: Value, include_resource: bool, limit: i64, ctx: crate::framework::provider::Ctx) -> Result<Vec<crate::framework::ListedItem>, Diags> {
        let err = |e: crate::aws::AwsError| Diags::from(Diagnostic::error("Could not list ECS clusters", e.to_string()));
        let mut arns = Vec::new();
        let mut pages = aws.ecs().list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            arns.extend(page.map_err(|e| err(crate::aws::aws_err("ecs:ListClusters", e)))?.cluster_arns().iter().cloned());
        }
        let mut out = Vec::new();
        for batch in arns.chunks(100) {
            let seen = aws
                .ecs()
                .describe_clusters()
                .set_clusters(Some(batch.to_vec()))
                .include(aws_sdk_ecs::types::ClusterField::Tags)
                .send()
                .await
                .map_err(|e| err(crate::aws::aws_err("ecs:DescribeClusters", e)))?;
            for c in seen.clusters() {
                let name = c.cluster_name().unwrap_or_default();
                let tags: BTreeMap<String, String> = c.tags().iter().filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect();
                let theirs = tags.get(crate::engine::OWNER_TAG).is_some_and(|o| *o != crate::engine::Owner::new(TYPE_NAME, name).tag_value());
                if c.status() != Some("ACTIVE") || theirs || !crate::resources::ecs_fargate_service::list_filters_pass(&config, name, &tags) {
                    continue;
                }
                if limit > 0 && out.len() as i64 >= limit {
                    return Ok(out);
                }
                out.push(crate::engine::composite::list_item::<Aws, EcsClusterResource>(aws, name, name.to_string(), include_resource, &ctx).await?);
            }
        }
        Ok(out)
    }
}

pub fn list_resource() -> Arc<dyn crate::framework::ListResource<Aws>> {
    Arc::new(ClusterList)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, Value)]) -> Value {
        let mut v = crate::framework::typed::to_value(
            &EcsCluster { name: "cruddur".into(), ..Default::default() },
            &crate::engine::composite::schema_of::<Aws, EcsClusterResource>().value_type(),
        )
        .unwrap();
        for (k, x) in pairs {
            v.set_attr(k, x.clone());
        }
        v
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn strategies_name_offered_providers_with_one_base() {
        let s = |p: &str, w: i64, b: i64| obj(&[("capacity_provider", Value::string(p)), ("weight", Value::int(w)), ("base", Value::int(b))]);
        let c = cfg(&[
            ("capacity_providers", Value::Set(vec![Value::string("FARGATE")])),
            ("default_capacity_provider_strategy", Value::List(vec![s("FARGATE", 1, 1), s("FARGATE_SPOT", 0, 2)])),
        ]);
        let paths: Vec<String> = validate_config(&c).0.iter().map(|d| d.path.as_ref().unwrap().to_string()).collect();
        assert_eq!(paths, ["default_capacity_provider_strategy[1].capacity_provider", "default_capacity_provider_strategy[1].base"]);
        let both =
            cfg(&[("service_connect", obj(&[("namespace_name", Value::string("a")), ("namespace_arn", Value::string("arn:aws:servicediscovery:us-east-1:1:namespace/ns-1"))]))]);
        assert_eq!(validate_config(&both).0[0].path.as_ref().unwrap().to_string(), "service_connect");
    }

    #[test]
    fn the_graph_is_namespace_log_group_cluster() {
        let c = Arc::new(Common { owner: crate::engine::Owner::new(TYPE_NAME, "c"), tags: Default::default(), region: "us-east-1".into(), account: "123456789012".into() });
        let cfg = EcsCluster { name: "c".into(), service_connect: Some(ServiceConnect { namespace_name: Some("c".into()), namespace_arn: None }), ..Default::default() };
        let g = build_graph(&cfg, c).unwrap();
        assert_eq!(g.wanted_keys(), ["namespace", "ecs_cluster"]);
    }
}
