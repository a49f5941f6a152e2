//! `cxflow_secret_sync`: values from a vault into SSM Parameter Store as
//! SecureStrings through a write-only attribute, so no secret ever lands in
//! Terraform's plan or state.
//!
//! Drift is found without storing anything derived from a secret: at plan time
//! the provider reads the current SSM values (decrypted, ten names per call)
//! and compares them in memory with the configured ones. State holds only the
//! key names, each parameter's SSM version and ARN.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::aws::error::scrub;
use crate::aws::{Aws, AwsError, aws_err, aws_err_hiding};
use crate::engine::composite::Env;
use crate::engine::identity;
use crate::engine::{Claim, LEASE_TAG, Lease, OWNER_TAG};
use crate::framework::check::Check;
use crate::framework::provider::{ApplyRequest, ApplyResponse, Ctx, PlanRequest, PlanResponse, ReadResponse, Resource};
use crate::framework::validate::{list_strings, map_entries};
use crate::framework::{Attribute, Block, Diagnostic, Diags, IdentitySchema, ListResource, ListedItem, Path, ResourceIdentity, Schema, Type, Value, schema as sch, typed};

pub const TYPE_NAME: &str = "cxflow_secret_sync";
/// SSM reads and deletes take at most ten names per call.
const SSM_BATCH: usize = 10;
/// Parallel PutParameter calls (SSM's default write rate is low; the SDK retries throttling).
const WRITE_CONCURRENCY: usize = 4;
/// SSM parameter names: at most 15 levels and 1011 characters including the path.
const MAX_DEPTH: usize = 15;
const MAX_NAME_LEN: usize = 1011;
/// Standard-tier parameter values are at most 4 KiB.
const MAX_VALUE_LEN: usize = 4096;
/// How long a write may hold its creation lease (an interrupted apply's lapses after this).
const LEASE_LIMIT: std::time::Duration = std::time::Duration::from_secs(3600);

pub struct SecretSync;

/// Configuration as the user wrote it. Holds secret values: not `Debug`-derived.
#[derive(Deserialize, Default)]
struct Config {
    path_prefix: String,
    kms_key_id: Option<String>,
    secrets_wo: Option<BTreeMap<String, String>>,
    secrets_wo_version: Option<i64>,
    parameters: Option<BTreeMap<String, String>>,
    redeploy_services: Option<Vec<String>>,
    required_keys: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("path_prefix", &self.path_prefix)
            .field("secret_keys", &self.secrets_wo.as_ref().map(|m| m.keys().collect::<Vec<_>>()))
            .finish_non_exhaustive()
    }
}

impl Config {
    fn secrets(&self) -> BTreeMap<String, String> {
        self.secrets_wo.clone().unwrap_or_default()
    }
    fn params(&self) -> BTreeMap<String, String> {
        self.parameters.clone().unwrap_or_default()
    }
    fn name(&self, key: &str) -> String {
        format!("{}/{}", self.path_prefix, key)
    }
    fn owner(&self) -> String {
        format!("{TYPE_NAME}/{}", self.path_prefix)
    }
}

/// What state holds. No secret values: only names, versions and ARNs.
#[derive(Serialize, Deserialize, Default, Debug, Clone)]
struct State {
    id: Option<String>,
    path_prefix: String,
    kms_key_id: Option<String>,
    secrets_wo_version: Option<i64>,
    parameters: Option<BTreeMap<String, String>>,
    redeploy_services: Option<Vec<String>>,
    required_keys: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    secret_versions: BTreeMap<String, i64>,
    #[serde(default)]
    parameter_versions: BTreeMap<String, i64>,
    #[serde(default)]
    arns: BTreeMap<String, String>,
    #[serde(default)]
    redeployed_services: Vec<String>,
}

/// One parameter as SSM reports it.
struct Current {
    value: Option<String>,
    version: i64,
    arn: String,
    secure: bool,
}

/// Every key of `required_keys` that neither `secrets_wo` nor `parameters`
/// provides, in one diagnostic (nothing while any of them is unknown).
fn missing_required_keys(config: &Value) -> Diags {
    let mut d = Diags::new();
    let (req, wo, params) = (config.get("required_keys"), config.get("secrets_wo"), config.get("parameters"));
    let known = |v: &Value| v.is_null() || v.entries().is_some() || v.elements().is_some();
    if req.is_null() || !known(req) || !known(wo) || !known(params) || req.elements().is_some_and(|e| e.iter().any(Value::is_unknown)) {
        return d;
    }
    let have: BTreeSet<&str> = wo.entries().into_iter().chain(params.entries()).flat_map(|m| m.keys().map(String::as_str)).collect();
    let missing: Vec<&str> = req.elements().into_iter().flatten().filter_map(Value::as_str).filter(|k| !have.contains(k)).collect();
    if !missing.is_empty() {
        d.attr_error(
            Path::attr("required_keys"),
            "Required keys missing",
            format!(
                "{} {} required but given neither in secrets_wo nor in parameters: {}. The service that reads them would fail to start.",
                missing.len(),
                if missing.len() == 1 { "key is" } else { "keys are" },
                missing.join(", ")
            ),
        );
    }
    d
}

impl SecretSync {
    fn block() -> Block {
        Block::new(vec![
            Attribute::new("id", Type::String).computed().stable().describe("The path prefix."),
            Attribute::new("path_prefix", Type::String)
                .required()
                .force_new()
                .describe("SSM path under which every parameter is written, e.g. `/cxflow/production`. Starts with `/`, no trailing `/`."),
            Attribute::new("kms_key_id", Type::String)
                .optional()
                .describe("KMS key (ID, ARN or `alias/...`) that encrypts the SecureStrings. Defaults to the account's `alias/aws/ssm`."),
            Attribute::new("secrets_wo", Type::map(Type::String)).optional().sensitive().write_only().describe(
                "Write-only map of key (relative to `path_prefix`, e.g. `checkmarx/password`) to secret value, written as SecureString parameters. \
                     Never stored in plan or state; requires Terraform 1.11 or later. The guarantee covers the values as this resource \
                     handles them: pass them from an ephemeral source (an `ephemeral = true` variable or an ephemeral resource such as \
                     `cxflow_ssm_secret`). A plain variable or literal puts the value in Terraform's own plan file (its variables section), \
                     which no provider can prevent, and Terraform does not tell providers where a value came from.",
            ),
            Attribute::new("secrets_wo_version", Type::Number)
                .optional()
                .check(Check::Int(0, i64::from(i32::MAX)))
                .describe("Change this number to push every secret again even when SSM already holds the same values."),
            Attribute::new("parameters", Type::map(Type::String))
                .optional()
                .describe("Plain (non-secret) values written as String parameters, kept in state, e.g. `checkmarx/url`."),
            Attribute::new("redeploy_services", Type::list(Type::String))
                .optional()
                .describe("ECS service ARNs (or `cluster/service`) that get a new deployment whenever a value changes, so tasks pick up the new secrets."),
            Attribute::new("required_keys", Type::set(Type::String)).optional().describe(
                "Keys (relative to `path_prefix`) that `secrets_wo` and `parameters` together must provide, checked at plan time before \
                 any write, e.g. `cxflow_cluster.this.secret_keys[\"production\"]`. The diagnostic names every missing key.",
            ),
            Attribute::new("tags", Type::map(Type::String)).optional().check(Check::Tags).describe("Tags on every parameter, merged over the provider's `default_tags`."),
            Attribute::new("secret_versions", Type::map(Type::Number)).computed().describe("SSM version of each secret parameter, by key."),
            Attribute::new("parameter_versions", Type::map(Type::Number)).computed().describe("SSM version of each plain parameter, by key."),
            Attribute::new("arns", Type::map(Type::String)).computed().describe("ARN of every parameter written, by key."),
            Attribute::new("redeployed_services", Type::list(Type::String)).computed().describe("Services that the last apply which changed a value redeployed."),
        ])
        .describe(
            "Copies secrets from a vault into SSM Parameter Store SecureStrings without ever writing them to Terraform state, \
             and redeploys the ECS services that read them when a value changes. Drift is detected at plan time by comparing \
             SSM's current values with the configured ones in memory.",
        )
    }
}

// ------------------------------------------------------------------ validation

fn valid_segment_chars(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
}

fn check_prefix(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err("must start with `/`, e.g. `/cxflow/production`".into());
    }
    if p == "/" {
        return Err("must name at least one level below the root, e.g. `/cxflow/production` (`/` alone would make names like `//key`)".into());
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err("must not end with `/`".into());
    }
    if p.contains("//") {
        return Err("must not contain an empty level (`//`)".into());
    }
    if !valid_segment_chars(p) {
        return Err("may contain only letters, digits and `_ . - /`".into());
    }
    let first = p.trim_start_matches('/').split('/').next().unwrap_or("").to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err("must not begin with `aws` or `ssm`, which AWS reserves".into());
    }
    Ok(())
}

fn check_key(prefix: Option<&str>, key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    if key.starts_with('/') {
        return Err("key must not start with `/`; it is relative to path_prefix".into());
    }
    if key.ends_with('/') || key.contains("//") {
        return Err("key must not end with `/` or contain an empty level (`//`)".into());
    }
    if !valid_segment_chars(key) {
        return Err("key may contain only letters, digits and `_ . - /`".into());
    }
    if let Some(p) = prefix {
        let full = format!("{p}/{key}");
        let depth = full.trim_start_matches('/').split('/').count();
        if depth > MAX_DEPTH {
            return Err(format!("the full name {full} has {depth} levels; SSM allows at most {MAX_DEPTH}"));
        }
        if full.len() > MAX_NAME_LEN {
            return Err(format!("the full name is {} characters long; SSM allows at most {MAX_NAME_LEN}", full.len()));
        }
    }
    Ok(())
}

fn check_kms(k: &str) -> bool {
    k.starts_with("alias/") || k.starts_with("arn:") || (k.len() == 36 && k.chars().all(|c| c.is_ascii_hexdigit() || c == '-')) || k.starts_with("mrk-")
}

/// `arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE` or `CLUSTER/SERVICE`.
fn parse_service_ref(s: &str) -> Option<(String, String)> {
    let tail = if s.starts_with("arn:") {
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        if parts.len() != 6 || parts[2] != "ecs" {
            return None;
        }
        parts[5].strip_prefix("service/")?
    } else {
        s
    };
    let (c, svc) = tail.split_once('/')?;
    if c.is_empty() || svc.is_empty() || svc.contains('/') {
        return None;
    }
    Some((c.to_string(), svc.to_string()))
}

// ------------------------------------------------------------------ SSM access

fn current_of(p: &aws_sdk_ssm::types::Parameter) -> (String, Current) {
    let secure = p.r#type().map(|t| t.as_str() == "SecureString").unwrap_or(false);
    (p.name().unwrap_or_default().to_string(), Current { value: p.value().map(str::to_string), version: p.version(), arn: p.arn().unwrap_or_default().to_string(), secure })
}

/// Read parameters by full name at plan time (refresh, and the plan's
/// comparison of write-only values): through the batched read, so that the
/// syncs Terraform refreshes at once share GetParameters calls of ten names.
async fn read_current_batched(aws: &Aws, names: &[String], decrypt: bool) -> Result<BTreeMap<String, Current>, AwsError> {
    let found = futures::future::try_join_all(names.iter().map(|n| aws.read_parameter(n, decrypt))).await?;
    Ok(found.iter().flatten().map(current_of).collect())
}

/// Read parameters by full name, ten per call. Missing names are absent from the result.
async fn read_current(aws: &Aws, names: &[String], decrypt: bool) -> Result<BTreeMap<String, Current>, AwsError> {
    let ssm = aws.ssm();
    let batches: Vec<Vec<String>> = names.chunks(SSM_BATCH).map(|c| c.to_vec()).collect();
    let results: Vec<Vec<(String, Current)>> = futures::stream::iter(batches)
        .map(|batch| async move {
            let out = ssm.get_parameters().set_names(Some(batch)).with_decryption(decrypt).send().await.map_err(|e| aws_err("ssm:GetParameters", e))?;
            Ok::<_, AwsError>(out.parameters().iter().map(current_of).collect())
        })
        .buffer_unordered(4)
        .try_collect()
        .await?;
    Ok(results.into_iter().flatten().collect())
}

async fn delete_names(aws: &Aws, names: Vec<String>) -> Result<(), AwsError> {
    for batch in names.chunks(SSM_BATCH) {
        aws.ssm().delete_parameters().set_names(Some(batch.to_vec())).send().await.map_err(|e| aws_err("ssm:DeleteParameters", e))?;
    }
    Ok(())
}

/// Keys whose SSM value differs from `want` (or is missing).
fn differing(cfg: &Config, want: &BTreeMap<String, String>, current: &BTreeMap<String, Current>) -> BTreeSet<String> {
    want.iter().filter(|(k, v)| current.get(&cfg.name(k)).and_then(|c| c.value.as_deref()) != Some(v.as_str())).map(|(k, _)| k.clone()).collect()
}

async fn redeploy(aws: &Aws, services: &[String]) -> (Vec<String>, Vec<String>) {
    let results = futures::future::join_all(services.iter().map(|s| async move {
        let (cluster, svc) = parse_service_ref(s).ok_or_else(|| format!("{s}: not an ECS service ARN or cluster/service"))?;
        aws.ecs().update_service().cluster(&cluster).service(&svc).force_new_deployment(true).send().await.map_err(|e| format!("{s}: {}", aws_err("ecs:UpdateService", e)))?;
        info!(target: "cxflow::secret_sync", service = s.as_str(), "forced a new deployment");
        Ok::<_, String>(s.clone())
    }))
    .await;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(s) => ok.push(s),
            Err(e) => failed.push(e),
        }
    }
    (ok, failed)
}

fn state_value(st: &State) -> Result<Value, Diags> {
    typed::to_value(st, &SecretSync::block().value_type())
}

// ------------------------------------------------------------------ the resource

#[async_trait]
impl Resource<Aws> for SecretSync {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(0, Self::block())
    }

    fn identity(&self) -> Option<&dyn ResourceIdentity<Aws>> {
        Some(self)
    }

    fn validate(&self, config: &Value) -> Diags {
        let mut d = Diags::new();
        let prefix = config.get("path_prefix").as_str();
        if let Some(p) = prefix {
            if let Err(m) = check_prefix(p) {
                d.attr_error(Path::attr("path_prefix"), "Invalid path_prefix", format!("path_prefix {m}."));
            }
        }
        let prefix = prefix.filter(|p| check_prefix(p).is_ok());
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for attr in ["secrets_wo", "parameters"] {
            for (path, key, val) in map_entries(config, attr) {
                if let Err(m) = check_key(prefix, key) {
                    d.attr_error(path.clone(), "Invalid parameter key", format!("Key {key:?}: {m}."));
                }
                if let Some(other) = seen.insert(key.to_string(), attr) {
                    d.attr_error(path.clone(), "Duplicate key", format!("Key {key:?} appears in both {other} and {attr}; each parameter has one source."));
                }
                // The value itself is never quoted in a message.
                if let Some(s) = val.as_str() {
                    if s.is_empty() {
                        d.attr_error(path.clone(), "Empty value", format!("Key {key:?} has an empty value; SSM parameters cannot be empty."));
                    } else if s.len() > MAX_VALUE_LEN {
                        d.attr_error(path, "Value too long", format!("Key {key:?} is longer than {MAX_VALUE_LEN} bytes, the limit of a standard SSM parameter."));
                    }
                } else if val.is_null() {
                    d.attr_error(path, "Empty value", format!("Key {key:?} is null; give it a value or remove it."));
                }
            }
        }
        if let Some(k) = config.get("kms_key_id").as_str() {
            if !check_kms(k) {
                d.attr_error(Path::attr("kms_key_id"), "Invalid KMS key", "kms_key_id must be a key ID, a key ARN or an alias such as alias/aws/ssm.");
            }
        }
        d.extend(missing_required_keys(config));
        for (path, s) in list_strings(config, "redeploy_services") {
            if parse_service_ref(s).is_none() {
                d.attr_error(
                    path,
                    "Invalid service reference",
                    format!("{s:?} is not an ECS service ARN (arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/SERVICE) or CLUSTER/SERVICE."),
                );
            }
        }
        d
    }

    async fn plan(&self, aws: &Aws, req: PlanRequest) -> PlanResponse {
        let schema = self.schema();
        // `required_keys` often comes from another resource, unknown at validate time.
        let missing = missing_required_keys(&req.config);
        if !req.proposed.is_null() && missing.has_errors() {
            return PlanResponse { diags: missing, ..Default::default() };
        }
        if req.proposed.is_null() || req.prior.is_null() {
            let mut resp = crate::framework::provider::default_plan(&schema, req);
            if let Value::Object(_) = resp.planned {
                let prefix = resp.planned.get("path_prefix").clone();
                resp.planned.set_attr("id", prefix);
            }
            return resp;
        }
        let mut planned = req.proposed.clone();
        let mut resp = PlanResponse { private: req.prior_private.clone(), ..Default::default() };
        resp.requires_replace = sch::replace_paths(&schema.block, &req.prior, &planned);
        if !resp.requires_replace.is_empty() {
            sch::mark_computed_unknown(&schema.block, &mut planned);
            planned.set_attr("id", planned.get("path_prefix").clone());
            resp.planned = planned;
            return resp;
        }
        // Everything known? Otherwise a push is certain.
        let secrets_known = req.config.get("secrets_wo").is_wholly_known();
        let params_known = req.config.get("parameters").is_wholly_known();
        let push = if !secrets_known || !params_known {
            true
        } else {
            // Secret and parameter values are known here; other attributes may not be yet.
            let cfg: Config = match typed::from_value(&req.config.known_or_null()) {
                Ok(c) => c,
                Err(d) => return PlanResponse { diags: d, ..Default::default() },
            };
            let prior: State = match typed::from_value(&req.prior) {
                Ok(s) => s,
                Err(d) => return PlanResponse { diags: d, ..Default::default() },
            };
            match needs_push(aws, &cfg, &prior).await {
                Ok(p) => p,
                Err(e) => {
                    resp.diags.push(Diagnostic::error("Could not read current SSM values", e.to_string()));
                    return resp;
                }
            }
        };
        if push {
            for a in ["secret_versions", "parameter_versions", "arns", "redeployed_services"] {
                planned.set_attr(a, Value::Unknown);
            }
        }
        resp.planned = planned;
        resp
    }

    async fn apply(&self, aws: &Aws, req: ApplyRequest) -> ApplyResponse {
        if req.planned.is_null() {
            // destroy: delete every parameter this resource recorded
            let prior: State = match typed::from_value(&req.prior) {
                Ok(s) => s,
                Err(d) => return ApplyResponse::partial(req.prior, d),
            };
            let keys: BTreeSet<&String> = prior.secret_versions.keys().chain(prior.parameter_versions.keys()).chain(prior.arns.keys()).collect();
            let names: Vec<String> = keys.into_iter().map(|k| format!("{}/{}", prior.path_prefix, k)).collect();
            return match delete_names(aws, names).await {
                Ok(()) => ApplyResponse::ok(Value::Null),
                Err(e) => ApplyResponse::partial(req.prior, Diagnostic::error("Could not delete SSM parameters", e.to_string()).into()),
            };
        }
        // Keys that were unknown at plan time are known now: still nothing is written without them.
        let missing = missing_required_keys(&req.config);
        if missing.has_errors() {
            return if req.prior.is_null() { ApplyResponse { new_state: Value::Null, diags: missing, ..Default::default() } } else { ApplyResponse::partial(req.prior, missing) };
        }
        let cfg: Config = match typed::from_value(&req.config) {
            Ok(c) => c,
            Err(d) => return ApplyResponse::partial(req.prior, d),
        };
        let prior: State = if req.prior.is_null() { State::default() } else { typed::from_value(&req.prior).unwrap_or_default() };
        let secrets = cfg.secrets();
        let scrub_list: Vec<&str> = secrets.values().map(String::as_str).collect();
        let (state, diags) = sync(aws, &cfg, &prior).await;
        let mut diags = diags;
        for d in diags.0.iter_mut() {
            d.detail = scrub(&d.detail, &scrub_list);
            d.summary = scrub(&d.summary, &scrub_list);
        }
        // A create that wrote nothing (refused, or failed before the first write) leaves no state behind.
        if req.prior.is_null() && state.arns.is_empty() && diags.has_errors() {
            return ApplyResponse { new_state: Value::Null, diags, ..Default::default() };
        }
        match state_value(&state) {
            Ok(v) => ApplyResponse::partial(v, diags),
            Err(d) => ApplyResponse::partial(req.prior, d),
        }
    }

    async fn read(&self, aws: &Aws, state: Value, private: Vec<u8>, _ctx: Ctx) -> ReadResponse {
        let mut st: State = match typed::from_value(&state) {
            Ok(s) => s,
            Err(d) => return ReadResponse { new_state: state, private, diags: d },
        };
        let names: Vec<String> = st.secret_versions.keys().chain(st.parameter_versions.keys()).map(|k| format!("{}/{}", st.path_prefix, k)).collect();
        let current = match read_current_batched(aws, &names, false).await {
            Ok(c) => c,
            Err(e) => return ReadResponse { new_state: state, private, diags: Diagnostic::error("Could not read SSM parameters", e.to_string()).into() },
        };
        refresh(&mut st, &current);
        match state_value(&st) {
            Ok(v) => ReadResponse { new_state: v, private, diags: Diags::new() },
            Err(d) => ReadResponse { new_state: state, private, diags: d },
        }
    }

    async fn import(&self, aws: &Aws, id: &str, _ctx: Ctx) -> Result<Value, Diags> {
        let prefix = id.trim_end_matches('/').to_string();
        check_prefix(&prefix).map_err(|m| Diags::from(Diagnostic::error("Invalid import ID", format!("The import ID is the path prefix, e.g. /cxflow/production; it {m}."))))?;
        match imported(aws, &prefix).await? {
            Some(st) => state_value(&st),
            None => Err(Diagnostic::error("Nothing to import", format!("No SSM parameters exist under {prefix}.")).into()),
        }
    }
}

/// The state `import` of a (valid) prefix produces, None when SSM holds
/// nothing under it. `terraform query` lists through it too, so a listed
/// object is exactly what its import gives.
async fn imported(aws: &Aws, prefix: &str) -> Result<Option<State>, Diags> {
    let mut st = State { id: Some(prefix.to_string()), path_prefix: prefix.to_string(), ..Default::default() };
    let mut params = BTreeMap::new();
    let mut pages = aws.ssm().get_parameters_by_path().path(prefix).recursive(true).with_decryption(false).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Diags::from(Diagnostic::error("Could not list SSM parameters", aws_err("ssm:GetParametersByPath", e).to_string())))?;
        for p in page.parameters() {
            let name = p.name().unwrap_or_default();
            let Some(key) = name.strip_prefix(&format!("{prefix}/")) else { continue };
            st.arns.insert(key.to_string(), p.arn().unwrap_or_default().to_string());
            if p.r#type().map(|t| t.as_str() == "SecureString").unwrap_or(false) {
                st.secret_versions.insert(key.to_string(), p.version());
            } else {
                st.parameter_versions.insert(key.to_string(), p.version());
                params.insert(key.to_string(), p.value().unwrap_or_default().to_string());
            }
        }
    }
    if st.arns.is_empty() {
        return Ok(None);
    }
    if !params.is_empty() {
        st.parameters = Some(params);
    }
    Ok(Some(st))
}

/// `list "cxflow_secret_sync"`: the one secret sync an SSM path holds, if any.
pub struct SecretSyncList;

#[async_trait]
impl ListResource<Aws> for SecretSyncList {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::new("path_prefix", Type::String)
                    .required()
                    .describe("SSM path to look under, e.g. `/cxflow/production`. Every parameter below it (recursively) belongs to the one `cxflow_secret_sync` listed for it."),
            ])
            .describe(
                "Finds the SSM parameters under a path and lists them as one `cxflow_secret_sync`, exactly as `import` of that path would \
                 produce it: plain String values in `parameters`, SecureStrings by key and version only (their values are never read).",
            ),
        )
    }

    fn validate(&self, config: &Value) -> Diags {
        let mut d = Diags::new();
        if let Some(Err(m)) = config.get("path_prefix").as_str().map(check_prefix) {
            d.attr_error(Path::attr("path_prefix"), "Invalid path_prefix", format!("path_prefix {m}."));
        }
        d
    }

    async fn list(&self, aws: &Aws, config: Value, include_resource: bool, _limit: i64, _ctx: Ctx) -> Result<Vec<ListedItem>, Diags> {
        let prefix = config.get("path_prefix").as_str().unwrap_or_default().to_string();
        let Some(st) = imported(aws, &prefix).await? else { return Ok(Vec::new()) };
        let object = state_value(&st)?;
        let identity = SecretSync.identity_of(aws, &object).await?;
        // Generated configuration cannot hold secret values, and a sync without a key deletes it on apply.
        let mut diags = Diags::new();
        if !st.secret_versions.is_empty() {
            let keys: Vec<&str> = st.secret_versions.keys().map(String::as_str).collect();
            diags.push(Diagnostic::warning(
                "SecureStrings need secrets_wo before apply",
                format!(
                    "{prefix} holds SecureString parameters ({}). Their values are never listed, so generated configuration leaves secrets_wo null, \
                     and applying it as it is would delete them. Give each key in secrets_wo first, e.g. from an ephemeral cxflow_ssm_secret of the same name.",
                    keys.join(", ")
                ),
            ));
        }
        Ok(vec![ListedItem { display_name: prefix, identity, object: include_resource.then_some(object), diags }])
    }
}

pub fn list_resource() -> Arc<dyn ListResource<Aws>> {
    Arc::new(SecretSyncList)
}

const IDENTITY: &[(&str, &str)] = &[("path_prefix", "The SSM path the parameters are under, such as `/cxflow/production`.")];

/// The account, the region and the SSM path.
#[async_trait]
impl ResourceIdentity<Aws> for SecretSync {
    fn identity_schema(&self) -> IdentitySchema {
        identity::schema(0, IDENTITY)
    }
    async fn identity_of(&self, aws: &Aws, state: &Value) -> Result<Value, Diags> {
        let prefix = state.get("path_prefix").as_str().unwrap_or_default().to_string();
        identity::value(&aws.scope().await?, &[("path_prefix", prefix)])
    }
    async fn import_id(&self, aws: &Aws, v: &Value) -> Result<String, Diags> {
        let names: Vec<&str> = IDENTITY.iter().map(|(n, _)| *n).collect();
        Ok(identity::import_parts(v, &aws.scope().await?, &names)?.remove(0))
    }
}

/// Whether SSM differs from the configuration (or the configuration from prior state).
async fn needs_push(aws: &Aws, cfg: &Config, prior: &State) -> Result<bool, AwsError> {
    let secrets = cfg.secrets();
    let params = cfg.params();
    let want_secret_keys: BTreeSet<&String> = secrets.keys().collect();
    let want_param_keys: BTreeSet<&String> = params.keys().collect();
    if want_secret_keys != prior.secret_versions.keys().collect() || want_param_keys != prior.parameter_versions.keys().collect() {
        return Ok(true);
    }
    if cfg.secrets_wo_version != prior.secrets_wo_version || cfg.kms_key_id != prior.kms_key_id || cfg.tags != prior.tags {
        return Ok(true);
    }
    let names: Vec<String> = secrets.keys().chain(params.keys()).map(|k| cfg.name(k)).collect();
    let current = read_current_batched(aws, &names, true).await?;
    let changed = differing(cfg, &secrets, &current).len() + differing(cfg, &params, &current).len();
    Ok(changed > 0)
}

fn refresh(st: &mut State, current: &BTreeMap<String, Current>) {
    let prefix = st.path_prefix.clone();
    let name = |k: &str| format!("{prefix}/{k}");
    st.secret_versions.retain(|k, _| current.get(&name(k)).is_some_and(|c| c.secure));
    st.parameter_versions.retain(|k, _| current.get(&name(k)).is_some_and(|c| !c.secure));
    for (k, v) in st.secret_versions.iter_mut().chain(st.parameter_versions.iter_mut()) {
        *v = current[&name(k)].version;
    }
    st.arns = st.secret_versions.keys().chain(st.parameter_versions.keys()).map(|k| (k.clone(), current[&name(k)].arn.clone())).collect();
    if let Some(params) = st.parameters.as_mut() {
        // Plain values are refreshed so an out-of-band edit shows as an ordinary diff.
        for (k, v) in params.iter_mut() {
            if let Some(c) = current.get(&name(k)).and_then(|c| c.value.clone()) {
                *v = c;
            }
        }
        params.retain(|k, _| st.parameter_versions.contains_key(k));
    }
}

/// Tags of a parameter.
async fn parameter_tags(aws: &Aws, name: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = aws
        .ssm()
        .list_tags_for_resource()
        .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .map_err(|e| aws_err("ssm:ListTagsForResource", e))?;
    Ok(out.tag_list().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}

/// Whether this resource may write an existing parameter its state does not
/// record: only when an interrupted apply of this very resource left it.
async fn claim(aws: &Aws, cfg: &Config, name: &str, lease: &Lease) -> Result<Result<(), String>, AwsError> {
    let tags = parameter_tags(aws, name).await?;
    Ok(match tags.get(OWNER_TAG) {
        None => Err(format!("SSM parameter {name} exists but has no {OWNER_TAG} tag")),
        Some(o) if *o != cfg.owner() => Err(format!("SSM parameter {name} exists and belongs to {o} (tag {OWNER_TAG})")),
        Some(_) => match lease.judge(tags.get(LEASE_TAG).map(String::as_str)) {
            Claim::Mine | Claim::Abandoned => Ok(()),
            Claim::Live(why) => Err(format!("SSM parameter {name} is being written by {}: {why}", cfg.owner())),
            Claim::Recorded => Err(format!("SSM parameter {name} belongs to a {} that another Terraform state has recorded", cfg.owner())),
        },
    })
}

/// One parameter to write.
struct Write {
    key: String,
    value: String,
    secure: bool,
    /// It exists already (ours): overwrite; otherwise create it with tags.
    exists: bool,
}

/// Bring SSM in line with the configuration. Returns the state that is true
/// afterwards (also on failure) and any errors. Every parameter written is
/// recorded from the answer to its own write, whatever fails after it.
async fn sync(aws: &Aws, cfg: &Config, prior: &State) -> (State, Diags) {
    let mut diags = Diags::new();
    let secrets = cfg.secrets();
    let params = cfg.params();
    let hide: Vec<&str> = secrets.values().map(String::as_str).collect();
    let force = cfg.secrets_wo_version != prior.secrets_wo_version;
    let tags_changed = cfg.tags != prior.tags;
    let all_names: Vec<String> = secrets.keys().chain(params.keys()).map(|k| cfg.name(k)).collect();
    let lease = Lease::new(LEASE_LIMIT);
    lease.journal();

    let mut state = State {
        id: Some(cfg.path_prefix.clone()),
        path_prefix: cfg.path_prefix.clone(),
        kms_key_id: cfg.kms_key_id.clone(),
        secrets_wo_version: cfg.secrets_wo_version,
        parameters: cfg.parameters.clone(),
        redeploy_services: cfg.redeploy_services.clone(),
        required_keys: cfg.required_keys.clone(),
        tags: cfg.tags.clone(),
        secret_versions: prior.secret_versions.clone(),
        parameter_versions: prior.parameter_versions.clone(),
        arns: prior.arns.clone(),
        redeployed_services: prior.redeployed_services.clone(),
    };
    let recorded = |k: &str| prior.secret_versions.contains_key(k) || prior.parameter_versions.contains_key(k) || prior.arns.contains_key(k);
    let account = match crate::children::account_id(aws).await {
        Ok(a) => a,
        Err(e) => {
            diags.error("Could not determine the AWS account", e.to_string());
            return (state, diags);
        }
    };
    let arn = |name: &str| format!("arn:{}:ssm:{}:{account}:parameter{name}", crate::engine::names::partition(&aws.region), aws.region);

    // 1. What is there now.
    let current = match read_current(aws, &all_names, true).await {
        Ok(c) => c,
        Err(e) => {
            diags.error("Could not read current SSM values", scrub(&e.to_string(), &hide));
            return (state, diags);
        }
    };

    // 2. Existing parameters this state does not record: refuse, before any write, unless ours.
    let unclaimed: Vec<&String> = secrets.keys().chain(params.keys()).filter(|k| !recorded(k) && current.contains_key(&cfg.name(k))).collect();
    let mut conflicts = Vec::new();
    for k in &unclaimed {
        match claim(aws, cfg, &cfg.name(k), &lease).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => conflicts.push(why),
            Err(e) => conflicts.push(e.to_string()),
        }
    }
    if let Some(first) = conflicts.first() {
        let more = if conflicts.len() > 1 { format!(" ({} more parameters under {} are taken likewise)", conflicts.len() - 1, cfg.path_prefix) } else { String::new() };
        diags.error(
            format!("SSM parameters under {} already exist", cfg.path_prefix),
            format!(
                "{first}{more}. This resource will not overwrite them. If they are the ones this configuration should manage, bring them under this state with \
                 `terraform import {TYPE_NAME}.<name> {}` (and remove them from any other state); otherwise choose another path_prefix.",
                cfg.path_prefix
            ),
        );
        return (state, diags);
    }

    // 3. Writes, a few at a time, each recorded from its own answer.
    let mut to_write = Vec::new();
    let kms_changed = cfg.kms_key_id != prior.kms_key_id;
    for (k, v, secure) in secrets.iter().map(|(k, v)| (k, v, true)).chain(params.iter().map(|(k, v)| (k, v, false))) {
        let have = current.get(&cfg.name(k));
        let differs = have.and_then(|c| c.value.as_deref()) != Some(v.as_str());
        let known = if secure { prior.secret_versions.contains_key(k) } else { prior.parameter_versions.contains_key(k) };
        if differs || !known || tags_changed || (secure && (force || kms_changed)) || have.is_some_and(|c| c.secure != secure) {
            to_write.push(Write { key: k.clone(), value: v.clone(), secure, exists: have.is_some() });
        }
    }
    let removed: Vec<String> =
        prior.secret_versions.keys().filter(|k| !secrets.contains_key(*k)).chain(prior.parameter_versions.keys().filter(|k| !params.contains_key(*k))).cloned().collect();
    let value_changed = to_write.iter().any(|w| current.get(&cfg.name(&w.key)).and_then(|c| c.value.as_deref()) != Some(w.value.as_str())) || !removed.is_empty();
    let mut tags = aws.merged_tags(&cfg.tags.clone().unwrap_or_default());
    tags.insert(OWNER_TAG.to_string(), cfg.owner());
    let write_results: Vec<(String, bool, bool, Result<i64, String>)> = futures::stream::iter(to_write)
        .map(|w| {
            let name = cfg.name(&w.key);
            let tags = tags.clone();
            let lease = lease.tag_value();
            let hide = hide.clone();
            let adopted = w.exists && unclaimed.contains(&&w.key);
            async move {
                let res = write_one(aws, cfg, &name, &w, &tags, &lease, adopted || tags_changed, &hide).await;
                (w.key, w.secure, !w.exists || adopted, res)
            }
        })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    let mut failed = Vec::new();
    let mut leased = Vec::new();
    for (key, secure, new, res) in write_results {
        match res {
            Ok(version) => {
                let (mine, other) = if secure { (&mut state.secret_versions, &mut state.parameter_versions) } else { (&mut state.parameter_versions, &mut state.secret_versions) };
                mine.insert(key.clone(), version);
                other.remove(&key);
                state.arns.insert(key.clone(), arn(&cfg.name(&key)));
                if new {
                    leased.push(key);
                }
            }
            Err(e) => failed.push(e),
        }
    }
    info!(target: "cxflow::secret_sync", prefix = cfg.path_prefix.as_str(), written = state.arns.len(), failed = failed.len(), removed = removed.len(), "parameters synced");

    // 4. Removals: forgotten only once deleted.
    if !removed.is_empty() {
        match delete_names(aws, removed.iter().map(|k| cfg.name(k)).collect()).await {
            Ok(()) => {
                for k in &removed {
                    state.secret_versions.remove(k);
                    state.parameter_versions.remove(k);
                    state.arns.remove(k);
                }
            }
            Err(e) => diags.error("Could not delete removed SSM parameters", e.to_string()),
        }
    }

    // 5. What this apply created or adopted is recorded from now on: release its lease.
    for key in leased {
        let name = cfg.name(&key);
        let recorded = aws_sdk_ssm::types::Tag::builder().key(LEASE_TAG).value(lease.recorded_value()).build();
        let r = aws
            .ssm()
            .add_tags_to_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(&name)
            .set_tags(recorded.ok().map(|t| vec![t]))
            .send()
            .await;
        if let Err(e) = r {
            diags.error(format!("Could not release SSM parameter {name}"), format!("Marking its creation lease recorded failed: {}", aws_err("ssm:AddTagsToResource", e)));
        }
    }
    if !failed.is_empty() {
        diags.error(format!("{} SSM writes failed", failed.len()), failed.join("\n"));
    }

    // 6. Redeploy consumers when a value changed.
    let services = cfg.redeploy_services.clone().unwrap_or_default();
    if value_changed && !services.is_empty() && failed.is_empty() {
        let (ok, errs) = redeploy(aws, &services).await;
        state.redeployed_services = ok;
        if !errs.is_empty() {
            diags.error("Could not redeploy every service", errs.join("\n"));
        }
    } else if services.is_empty() {
        state.redeployed_services = Vec::new();
    }
    (state, diags)
}

/// Write one parameter; the version SSM gave it. A new one is created with
/// its tags and this apply's lease in the same call; one whose create answer
/// was lost (the retry finds it taken) is this apply's own and overwritten.
#[allow(clippy::too_many_arguments)]
async fn write_one(aws: &Aws, cfg: &Config, name: &str, w: &Write, tags: &BTreeMap<String, String>, lease: &str, retag: bool, hide: &[&str]) -> Result<i64, String> {
    let put = |overwrite: bool| {
        let mut p = aws.ssm().put_parameter().name(name).value(&w.value).overwrite(overwrite);
        p = if w.secure {
            let p = p.r#type(aws_sdk_ssm::types::ParameterType::SecureString);
            match &cfg.kms_key_id {
                Some(k) => p.key_id(k),
                None => p,
            }
        } else {
            p.r#type(aws_sdk_ssm::types::ParameterType::String)
        };
        p
    };
    let ssm_tags =
        |t: &BTreeMap<String, String>| -> Vec<aws_sdk_ssm::types::Tag> { t.iter().filter_map(|(k, v)| aws_sdk_ssm::types::Tag::builder().key(k).value(v).build().ok()).collect() };
    if !w.exists {
        let mut with_lease = tags.clone();
        with_lease.insert(LEASE_TAG.to_string(), lease.to_string());
        match put(false).set_tags(Some(ssm_tags(&with_lease))).send().await {
            Ok(o) => return Ok(o.version()),
            Err(e) => {
                let e = aws_err_hiding("ssm:PutParameter", e, hide);
                if !e.is_code(&["ParameterAlreadyExists"]) || parameter_tags(aws, name).await.ok().and_then(|t| t.get(LEASE_TAG).cloned()).as_deref() != Some(lease) {
                    return Err(format!("{name}: {e}"));
                }
            }
        }
    }
    let version = put(true).send().await.map_err(|e| format!("{name}: {}", aws_err_hiding("ssm:PutParameter", e, hide)))?.version();
    if retag {
        aws.ssm()
            .add_tags_to_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(name)
            .set_tags(Some(ssm_tags(tags)))
            .send()
            .await
            .map_err(|e| format!("{name}: {}", aws_err("ssm:AddTagsToResource", e)))?;
    }
    Ok(version)
}

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(SecretSync)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, Value)]) -> Value {
        let mut m: BTreeMap<String, Value> = SecretSync::block().attributes.iter().map(|a| (a.name.clone(), Value::Null)).collect();
        for (k, v) in pairs {
            m.insert(k.to_string(), v.clone());
        }
        Value::Object(m)
    }

    fn smap(pairs: &[(&str, &str)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), Value::string(*v))).collect())
    }

    fn paths(d: &Diags) -> Vec<String> {
        d.0.iter().map(|x| x.path.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect()
    }

    #[test]
    fn keys_and_prefixes_follow_ssm_rules() {
        assert!(check_prefix("/cxflow/production").is_ok());
        for bad in ["cxflow", "/cxflow/", "/a//b", "/aws/x", "/SSM", "/has space"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
        assert!(check_key(Some("/c"), "gitlab/webhook-token").is_ok());
        for bad in ["/lead", "trail/", "a//b", "sp ace", ""] {
            assert!(check_key(Some("/c"), bad).is_err(), "{bad}");
        }
        let deep = (0..15).map(|i| format!("l{i}")).collect::<Vec<_>>().join("/");
        assert!(check_key(Some("/c"), &deep).is_err());
    }

    #[test]
    fn validation_names_the_attribute_and_never_the_value() {
        let c = cfg(&[
            ("path_prefix", Value::string("/cxflow/prod")),
            ("secrets_wo", smap(&[("/bad", "topsecret-1"), ("dup", "topsecret-2"), ("empty", "")])),
            ("parameters", smap(&[("dup", "x")])),
            ("redeploy_services", Value::List(vec![Value::string("not-a-service")])),
        ]);
        let d = SecretSync.validate(&c);
        let p = paths(&d);
        assert!(p.contains(&"secrets_wo[\"/bad\"]".to_string()), "{p:?}");
        assert!(p.contains(&"parameters[\"dup\"]".to_string()), "{p:?}");
        assert!(p.contains(&"secrets_wo[\"empty\"]".to_string()), "{p:?}");
        assert!(p.contains(&"redeploy_services[0]".to_string()), "{p:?}");
        let text = d.to_string();
        assert!(!text.contains("topsecret"), "{text}");
    }

    #[test]
    fn unknown_values_are_not_judged() {
        let c = cfg(&[("path_prefix", Value::Unknown), ("secrets_wo", Value::Unknown)]);
        assert!(SecretSync.validate(&c).is_empty());
    }

    #[test]
    fn service_references() {
        assert_eq!(parse_service_ref("arn:aws:ecs:us-east-1:123456789012:service/c1/s1"), Some(("c1".into(), "s1".into())));
        assert_eq!(parse_service_ref("c1/s1"), Some(("c1".into(), "s1".into())));
        assert_eq!(parse_service_ref("arn:aws:ecs:us-east-1:123456789012:service/s1"), None);
        assert_eq!(parse_service_ref("s1"), None);
    }

    #[test]
    fn config_debug_hides_values() {
        let c = Config { path_prefix: "/p".into(), secrets_wo: Some([("k".to_string(), "hunter2".to_string())].into()), ..Default::default() };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2") && s.contains("\"k\""), "{s}");
    }
}
