//! `cxflow_image_registry`: seed 002's image distribution — per stage an ECR
//! repository with scanning and a lifecycle policy, one IAM group per
//! identity (developers, end users, GitHub Actions) holding exactly the
//! permission levels of the seed's tables, and a role GitHub Actions
//! assumes through OIDC, trusted only for that stage's refs or GitHub
//! environment; the account's GitHub OIDC provider (or an existing one); and
//! optionally the seed's deployment role, trusted for the master branch only.
//!
//! Read top to bottom: permission levels and the seed's tables → typed
//! configuration → schema → validation (no AWS calls) → policies and names →
//! the children → outputs → import.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::aws::{Aws, aws_err};
use crate::children::iam::{GroupNode, OidcProviderNode, RoleNode, parse_policy};
use crate::children::platform::{RepositoryNode, RepositorySpec};
use crate::children::{Common, account_id};
use crate::engine::composite::{After, Composite, CompositeResource, GraphCx, Kids, PlannedChildren};
use crate::engine::{Graph, Node, Record, Spec, Tags, names};
use crate::framework::check::Check;
use crate::framework::provider::Resource;
use crate::framework::{Attribute, Block, Diagnostic, Diags, NestedBlock, Nesting, Path, Type, Value, typed};

pub const TYPE_NAME: &str = "cxflow_image_registry";

/// GitHub Actions' OIDC issuer and the audience `aws-actions/configure-aws-credentials` asks for.
pub const GITHUB_HOST: &str = "token.actions.githubusercontent.com";
pub const GITHUB_AUDIENCE: &str = "sts.amazonaws.com";
/// The inline policy of every group and GitHub role: the levels of its identity.
pub const POLICY_NAME: &str = "cxflow-registry";
/// The deployment role's inline policy: the user's document.
pub const DEPLOYMENT_POLICY_NAME: &str = "cxflow-deployment";
const DEFAULT_KEEP_TAGGED: i64 = 50;
const DEFAULT_EXPIRE_UNTAGGED_DAYS: i64 = 14;
const MAX_ROLE_NAME: usize = 64;

// ------------------------------------------------------------------ permission levels

/// The seed's four permission levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Authorize,
    Read,
    Write,
    Metadata,
}

pub const LEVELS: &[&str] = &["authorize", "read", "write", "metadata"];

impl Level {
    pub const ALL: [Level; 4] = [Level::Authorize, Level::Read, Level::Write, Level::Metadata];
    pub fn name(self) -> &'static str {
        LEVELS[self as usize]
    }
    fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == s)
    }
    /// The statement's `Sid` in every generated policy.
    pub fn sid(self) -> &'static str {
        ["Authorize", "Read", "Write", "Metadata"][self as usize]
    }
    /// What the level grants. Authorize is the only one on `*`, as AWS
    /// requires for `ecr:GetAuthorizationToken`; the others name one repository.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            Level::Authorize => &["ecr:GetAuthorizationToken"],
            Level::Read => &["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            // AWS's documented push policy (docker push checks layers and reads manifests; it downloads no layer).
            Level::Write => &["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"],
            Level::Metadata => &[
                "ecr:DescribeImageScanFindings",
                "ecr:DescribeImages",
                "ecr:DescribeRepositories",
                "ecr:GetLifecyclePolicy",
                "ecr:GetLifecyclePolicyPreview",
                "ecr:GetRepositoryPolicy",
                "ecr:ListImages",
                "ecr:ListTagsForResource",
            ],
        }
    }
}

/// The seed's three identities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    Developers,
    EndUsers,
    Github,
}

impl Who {
    pub const ALL: [Who; 3] = [Who::Developers, Who::EndUsers, Who::Github];
    /// The stage attribute (and `members` attribute) naming its levels.
    pub fn attr(self) -> &'static str {
        ["developers", "end_users", "github"][self as usize]
    }
    /// The end of its group's name.
    fn group_suffix(self) -> &'static str {
        ["developers", "end-users", "github"][self as usize]
    }
}

/// Levels per identity, in the order of `Who::ALL`.
type Table = [&'static [Level]; 3];

/// The seed's tables: what a stage named development, master or release
/// grants when it leaves an identity's levels unset.
fn seed_table(stage: &str) -> Option<Table> {
    use Level::*;
    match stage {
        "development" => Some([&[Authorize, Read, Write, Metadata], &[], &[Authorize, Read, Write, Metadata]]),
        "master" => Some([&[Authorize, Read, Metadata], &[], &[Authorize, Write]]),
        "release" => Some([&[Authorize, Read, Metadata], &[Authorize, Read], &[Authorize, Write]]),
        _ => None,
    }
}

/// The seed's GitHub trust per stage (refs, environment): feature branches and
/// pull requests push to development, master to master, and releases go
/// through the `Release` environment, which requires approval. Each stage's
/// GitHub environment (where the seed keeps its secrets) is trusted as well.
fn seed_trust(stage: &str) -> Option<(&'static [&'static str], &'static str)> {
    match stage {
        "development" => Some((&["refs/heads/*", "pull_request"], "Development")),
        "master" => Some((&["refs/heads/master"], "Master")),
        "release" => Some((&[], "Release")),
        _ => None,
    }
}

// ------------------------------------------------------------------ typed configuration

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Stage {
    pub developers: Option<Vec<String>>,
    pub end_users: Option<Vec<String>>,
    pub github: Option<Vec<String>>,
    pub github_refs: Option<Vec<String>>,
    pub github_environment: Option<String>,
    pub repository_name: Option<String>,
    pub image_tag_mutability: Option<String>,
    pub pull_principals: Option<Vec<String>>,
}

impl Stage {
    fn given(&self, who: Who) -> Option<&Vec<String>> {
        match who {
            Who::Developers => self.developers.as_ref(),
            Who::EndUsers => self.end_users.as_ref(),
            Who::Github => self.github.as_ref(),
        }
    }
    fn set(&mut self, who: Who, v: Option<Vec<String>>) {
        match who {
            Who::Developers => self.developers = v,
            Who::EndUsers => self.end_users = v,
            Who::Github => self.github = v,
        }
    }
    /// The levels `who` has in stage `name`: as configured, else the seed's table.
    pub fn levels(&self, name: &str, who: Who) -> Vec<Level> {
        let mut v: Vec<Level> = match self.given(who) {
            Some(l) => l.iter().filter_map(|s| Level::parse(s)).collect(),
            None => seed_table(name).map(|t| t[who as usize].to_vec()).unwrap_or_default(),
        };
        v.sort();
        v.dedup();
        v
    }
    /// The refs and GitHub environment the stage's role trusts: as configured
    /// (either one set), else the seed's.
    pub fn trust(&self, name: &str) -> (Vec<String>, Option<String>) {
        if self.github_refs.is_some() || self.github_environment.is_some() {
            let mut refs = self.github_refs.clone().unwrap_or_default();
            refs.sort();
            refs.dedup();
            return (refs, self.github_environment.clone());
        }
        match seed_trust(name) {
            Some((refs, env)) => (refs.iter().map(|r| r.to_string()).collect::<BTreeSet<_>>().into_iter().collect(), Some(env.to_string())),
            None => (Vec::new(), None),
        }
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Github {
    pub repository: String,
    pub oidc_provider_arn: Option<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Lifecycle {
    pub keep_tagged: Option<i64>,
    pub expire_untagged_days: Option<i64>,
    pub archive_old_tagged: Option<bool>,
    pub archive_unpulled_days: Option<i64>,
    pub expire_archived_days: Option<i64>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Members {
    pub developers: Option<Vec<String>>,
    pub end_users: Option<Vec<String>>,
    pub github: Option<Vec<String>>,
}

impl Members {
    fn of(&self, who: Who) -> BTreeSet<String> {
        let v = match who {
            Who::Developers => &self.developers,
            Who::EndUsers => &self.end_users,
            Who::Github => &self.github,
        };
        v.iter().flatten().cloned().collect()
    }
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct DeploymentRole {
    pub policy_json: String,
    pub name: Option<String>,
    pub branch: Option<String>,
    pub github_environment: Option<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
pub struct Registry {
    pub name: String,
    pub stages: BTreeMap<String, Stage>,
    pub github: Option<Github>,
    pub image_lifecycle: Option<Lifecycle>,
    pub scan_on_push: Option<bool>,
    pub encryption_type: Option<String>,
    pub kms_key_arn: Option<String>,
    pub members: Option<Members>,
    pub deployment_role: Option<DeploymentRole>,
    pub tags: Option<BTreeMap<String, String>>,
}

impl Registry {
    fn repository_name(&self, stage: &str) -> String {
        self.stages.get(stage).and_then(|s| s.repository_name.clone()).unwrap_or_else(|| default_repository(&self.name, stage))
    }
    fn members(&self, who: Who) -> BTreeSet<String> {
        self.members.as_ref().map(|m| m.of(who)).unwrap_or_default()
    }
    /// The lifecycle block with its defaults filled in.
    fn lifecycle(&self) -> Lifecycle {
        let l = self.image_lifecycle.clone().unwrap_or_default();
        Lifecycle {
            keep_tagged: Some(l.keep_tagged.unwrap_or(DEFAULT_KEEP_TAGGED)),
            expire_untagged_days: Some(l.expire_untagged_days.unwrap_or(DEFAULT_EXPIRE_UNTAGGED_DAYS)),
            archive_old_tagged: Some(l.archive_old_tagged.unwrap_or(false)),
            ..l
        }
    }
    /// Token subjects of stage `stage`'s GitHub role (none without a `github` block).
    fn subjects(&self, stage: &str, st: &Stage) -> Vec<String> {
        let Some(g) = &self.github else { return Vec::new() };
        let (refs, env) = st.trust(stage);
        subjects(&g.repository, &refs, env.as_deref())
    }
    fn deployment_subjects(&self) -> Vec<String> {
        match (&self.github, &self.deployment_role) {
            (Some(g), Some(d)) => {
                let branch = d.branch.clone().unwrap_or_else(|| "master".into());
                subjects(&g.repository, &[format!("refs/heads/{branch}")], d.github_environment.as_deref())
            }
            _ => Vec::new(),
        }
    }
}

fn default_repository(name: &str, stage: &str) -> String {
    format!("{name}/{stage}")
}

/// Stage names become parts of child keys, where `-` is not allowed.
fn stage_key(stage: &str) -> String {
    stage.replace('-', "_")
}

fn iam_path(name: &str) -> String {
    format!("/cxflow/{name}/")
}

fn group_name(name: &str, stage: &str, who: Who) -> String {
    format!("{name}-{stage}-{}", who.group_suffix())
}

/// A role name as is when IAM allows it, else cut with a hash (`names::bounded`).
fn role_name(full: String) -> String {
    if full.len() <= MAX_ROLE_NAME { full } else { names::bounded(&full, &full, "", MAX_ROLE_NAME, |c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)) }
}

fn github_role_name(name: &str, stage: &str) -> String {
    role_name(format!("{name}-{stage}-github"))
}

fn deployment_role_name(cfg: &Registry) -> String {
    cfg.deployment_role.as_ref().and_then(|d| d.name.clone()).unwrap_or_else(|| role_name(format!("{}-deployment", cfg.name)))
}

/// `repo:<owner>/<name>:…` subjects for refs (`pull_request` or `refs/…`) and an environment.
fn subjects(repository: &str, refs: &[String], env: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = refs
        .iter()
        .map(|r| if r == "pull_request" { format!("repo:{repository}:pull_request") } else { format!("repo:{repository}:ref:{r}") })
        .chain(env.map(|e| format!("repo:{repository}:environment:{e}")))
        .collect();
    v.sort();
    v.dedup();
    v
}

// ------------------------------------------------------------------ policies

/// The policy granting exactly `levels` on repository `repo_arn`: one
/// statement per level, named by its `Sid`.
pub fn level_policy(levels: &[Level], repo_arn: &str) -> Json {
    let statements: Vec<Json> = levels
        .iter()
        .map(|l| {
            let resource = if *l == Level::Authorize { "*" } else { repo_arn };
            json!({"Sid": l.sid(), "Effect": "Allow", "Action": l.actions(), "Resource": resource})
        })
        .collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A trust admitting GitHub Actions tokens from `provider_arn` whose `sub` is
/// one of `subjects` (`StringLike` when one holds a wildcard) and whose `aud`
/// is `sts.amazonaws.com`.
pub fn github_trust(provider_arn: &str, subjects: &[String]) -> Json {
    let aud = format!("{GITHUB_HOST}:aud");
    let sub = format!("{GITHUB_HOST}:sub");
    let wild = subjects.iter().any(|s| s.contains('*') || s.contains('?'));
    let cond = if wild { json!({"StringEquals": {aud: GITHUB_AUDIENCE}, "StringLike": {sub: subjects}}) } else { json!({"StringEquals": {aud: GITHUB_AUDIENCE, sub: subjects}}) };
    json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity", "Condition": cond,
    }]})
}

/// ECR's lifecycle action moving an image to the archive storage class.
fn archive_action() -> Json {
    json!({"type": "transition", "targetStorageClass": "archive"})
}

/// Untagged images expire `expire_untagged_days` after their push; of the
/// tagged ones the newest `keep_tagged` stay and older ones expire or are
/// archived; optionally any image not pulled for `archive_unpulled_days` is
/// archived, and archived images expire `expire_archived_days` after their
/// archiving. Rules on `any` come last, as ECR requires. (`l` has its defaults.)
pub fn lifecycle_policy(l: &Lifecycle) -> Json {
    let (keep, untagged) = (l.keep_tagged.unwrap_or(DEFAULT_KEEP_TAGGED), l.expire_untagged_days.unwrap_or(DEFAULT_EXPIRE_UNTAGGED_DAYS));
    let archive_tagged = l.archive_old_tagged == Some(true);
    let mut rules = vec![
        json!({"description": format!("Expire untagged images {untagged} days after their push"),
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": untagged},
         "action": {"type": "expire"}}),
        json!({"description": format!("Keep the newest {keep} tagged images; {} older ones", if archive_tagged { "archive" } else { "expire" }),
         "selection": {"tagStatus": "tagged", "tagPatternList": ["*"], "countType": "imageCountMoreThan", "countNumber": keep},
         "action": if archive_tagged { archive_action() } else { json!({"type": "expire"}) }}),
    ];
    if let Some(days) = l.archive_unpulled_days {
        rules.push(json!({"description": format!("Archive images not pulled for {days} days"),
         "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": days},
         "action": archive_action()}));
    }
    if let Some(days) = l.expire_archived_days {
        rules.push(json!({"description": format!("Expire archived images {days} days after their archiving"),
         "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": days},
         "action": {"type": "expire"}}));
    }
    for (i, r) in rules.iter_mut().enumerate() {
        r["rulePriority"] = json!(i + 1);
    }
    json!({"rules": rules})
}

/// The lifecycle block a policy written by `lifecycle_policy` stands for, defaults left unset.
fn lifecycle_in(policy: &Json) -> Option<Lifecycle> {
    let rules = policy["rules"].as_array().cloned().unwrap_or_default();
    let find = |f: &dyn Fn(&Json) -> bool| rules.iter().find(|r| f(&r["selection"])).cloned();
    let tagged = find(&|s| s["tagStatus"] == "tagged");
    let count = |r: &Option<Json>| r.as_ref().and_then(|r| r["selection"]["countNumber"].as_i64());
    let keep = count(&tagged).filter(|n| *n != DEFAULT_KEEP_TAGGED);
    let untagged = count(&find(&|s| s["tagStatus"] == "untagged")).filter(|n| *n != DEFAULT_EXPIRE_UNTAGGED_DAYS);
    let archive_tagged = tagged.is_some_and(|r| r["action"]["type"] == "transition").then_some(true);
    let unpulled = count(&find(&|s| s["countType"] == "sinceImagePulled"));
    let archived = count(&find(&|s| s["countType"] == "sinceImageTransitioned"));
    let l = Lifecycle { keep_tagged: keep, expire_untagged_days: untagged, archive_old_tagged: archive_tagged, archive_unpulled_days: unpulled, expire_archived_days: archived };
    (l != Lifecycle::default()).then_some(l)
}

/// The repository policy's one statement: who in other accounts may pull.
pub const PULL_SID: &str = "CrossAccountPull";

/// A principal of `pull_principals` as IAM names it: an account ID is the account's root.
fn pull_principal(c: &Common, p: &str) -> String {
    if p.bytes().all(|b| b.is_ascii_digit()) { format!("arn:{}:iam::{p}:root", c.partition()) } else { p.to_string() }
}

/// The repository policy letting `principals` (account IDs or IAM ARNs) pull
/// from the repository it is set on, and nothing else; none without principals.
/// A repository policy names no `Resource`: it is the repository's own.
pub fn pull_policy(c: &Common, principals: &[String]) -> Option<Json> {
    let arns: BTreeSet<String> = principals.iter().map(|p| pull_principal(c, p)).collect();
    (!arns.is_empty()).then(|| {
        json!({"Version": "2012-10-17", "Statement": [{
            "Sid": PULL_SID, "Effect": "Allow", "Principal": {"AWS": arns}, "Action": Level::Read.actions(),
        }]})
    })
}

/// The `pull_principals` a repository policy written by `pull_policy` stands for
/// (an account's root as its ID).
fn pull_principals_in(policy: &Json) -> Option<Vec<String>> {
    let st = policy["Statement"].as_array()?.iter().find(|s| s["Sid"] == PULL_SID)?;
    let aws = &st["Principal"]["AWS"];
    let arns: Vec<&str> = match aws {
        Json::String(s) => vec![s.as_str()],
        Json::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
        _ => return None,
    };
    let root = regex::Regex::new(r"^arn:[a-z-]+:iam::(\d{12}):root$").ok()?;
    let v: BTreeSet<String> = arns.iter().map(|a| root.captures(a).map(|c| c[1].to_string()).unwrap_or_else(|| a.to_string())).collect();
    Some(v.into_iter().collect())
}

/// The levels a policy document grants, read back from its `Sid`s.
fn levels_in(doc: &Json) -> Vec<String> {
    let mut v: Vec<Level> = doc["Statement"].as_array().into_iter().flatten().filter_map(|s| Level::ALL.into_iter().find(|l| s["Sid"] == l.sid())).collect();
    v.sort();
    v.dedup();
    v.into_iter().map(|l| l.name().to_string()).collect()
}

/// The repository a policy document names (`arn:…:repository/<name>`).
fn repository_in(doc: &Json) -> Option<String> {
    doc["Statement"].as_array().into_iter().flatten().find_map(|s| s["Resource"].as_str()?.split_once(":repository/").map(|(_, r)| r.to_string()))
}

// ------------------------------------------------------------------ schema

const NAME_RE: &str = "[a-z0-9]+([._-][a-z0-9]+)*";
const STAGE_RE: &str = "[a-z]([a-z0-9-]{0,18}[a-z0-9])?";
const REPOSITORY_RE: &str = "([a-z0-9]+([._-][a-z0-9]+)*/)*[a-z0-9]+([._-][a-z0-9]+)*";
const GITHUB_REPO_RE: &str = "[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}";
const REF_RE: &str = r"pull_request|refs/(heads|tags)/[A-Za-z0-9._/*?-]{1,200}";
const ENVIRONMENT_RE: &str = "[A-Za-z0-9_.-]([A-Za-z0-9 _.-]{0,253}[A-Za-z0-9_.-])?";
const BRANCH_RE: &str = "[A-Za-z0-9._/-]{1,200}";
const ROLE_NAME_RE: &str = "[A-Za-z0-9+=,.@_-]{1,64}";
const USER_NAME_RE: &str = "[A-Za-z0-9+=,.@_-]{1,64}";
const PULL_PRINCIPAL_RE: &str = r"[0-9]{12}|arn:aws(-[a-z]+)*:iam::[0-9]{12}:(root|(role|user)/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64})";

fn environment_check() -> Check {
    Check::Matches(ENVIRONMENT_RE, "a GitHub environment name of letters, digits, spaces, `_`, `.` and `-` (no wildcards)")
}

fn levels_attr(who: Who, what: &str) -> Attribute {
    Attribute::new(who.attr(), Type::set(Type::String)).optional().check(Check::each(Check::OneOf(LEVELS))).describe(&format!(
        "Permission levels of {what} in this stage: `authorize` (log in: `ecr:GetAuthorizationToken`), `read` (pull), `write` (push), \
         `metadata` (describe and list). Unset: the seed's table for a stage named `development`, `master` or `release`, none for any \
         other; `[]` grants nothing and makes no group."
    ))
}

/// An IAM policy document: a JSON object with a `Statement`, within IAM's size limit for role policies.
fn policy_document(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    if s.len() > 10_240 {
        return Err(format!("the policy has {} characters; IAM allows 10240 in a role's inline policies", s.len()));
    }
    match serde_json::from_str::<Json>(s) {
        Ok(Json::Object(m)) if m.contains_key("Statement") => Ok(()),
        Ok(_) => Err("an IAM policy document is a JSON object with a Statement (use jsonencode or aws_iam_policy_document)".into()),
        Err(e) => Err(format!("not JSON: {}", typed::redact_quoted(&e.to_string()))),
    }
}

fn schema_block() -> Block {
    let stage = vec![
        levels_attr(Who::Developers, "the developers group (`<name>-<stage>-developers`)"),
        levels_attr(Who::EndUsers, "the end users group (`<name>-<stage>-end-users`)"),
        levels_attr(Who::Github, "GitHub Actions: its role (with a `github` block) and the group `<name>-<stage>-github` (for an IAM user a CI system signs in as)"),
        Attribute::new("github_refs", Type::set(Type::String))
            .optional()
            .check(Check::Items(1, 50))
            .check(Check::each(Check::Matches(REF_RE, "`pull_request`, or a branch or tag ref such as `refs/heads/master`, `refs/heads/*` or `refs/tags/v*`")))
            .describe(
                "Which workflow runs may assume this stage's GitHub role: `refs/heads/<branch>` and `refs/tags/<tag>` (`*` and `?` match \
                 any characters), `pull_request` for pull request runs. Unset together with `github_environment`: the seed's, \
                 `refs/heads/*` and `pull_request` (plus environment `Development`) for `development`, `refs/heads/master` (plus \
                 `Master`) for `master`, environment `Release` only for `release`.",
            ),
        Attribute::new("github_environment", Type::String).optional().check(environment_check()).describe(
            "A GitHub environment whose jobs may assume this stage's role (a job that names an environment presents \
                 `environment:<name>` instead of its ref, so protect the environment with deployment branches or reviewers).",
        ),
        Attribute::new("repository_name", Type::String)
            .optional()
            .check(Check::Len(2, 256))
            .check(Check::Matches(REPOSITORY_RE, "an ECR repository name: lowercase letters and digits, separated by single `.`, `_`, `-` or `/`"))
            .describe("The stage's ECR repository. Default `<name>/<stage>`. Renaming creates a new repository and deletes the old one with its images."),
        Attribute::new("image_tag_mutability", Type::String)
            .default(Value::string("MUTABLE"))
            .check(Check::OneOf(&["MUTABLE", "IMMUTABLE"]))
            .describe("`MUTABLE` or `IMMUTABLE` (a pushed tag can never move)."),
        Attribute::new("pull_principals", Type::set(Type::String))
            .optional()
            .check(Check::Items(1, 100))
            .check(Check::each(Check::Matches(PULL_PRINCIPAL_RE, "a 12-digit AWS account ID or the ARN of an IAM role, user or account root (`arn:aws:iam::<account>:root`)")))
            .describe(
                "Other accounts (by ID: every principal the account allows) or IAM roles and users that may pull from this stage's \
                 repository: a repository policy granting `ecr:BatchCheckLayerAvailability`, `ecr:BatchGetImage` and \
                 `ecr:GetDownloadUrlForLayer` to them and nothing else. Their own account must still grant them these actions on the \
                 repository and `ecr:GetAuthorizationToken`. Unset: no repository policy (one set elsewhere is removed).",
            ),
    ];
    let attrs = vec![
        Attribute::new("name", Type::String)
            .required()
            .force_new()
            .check(Check::Len(1, 40))
            .check(Check::Matches(NAME_RE, "lowercase letters and digits, separated by single `.`, `_` or `-`"))
            .describe(
                "Name of the registry: the repositories are `<name>/<stage>`, the groups `<name>-<stage>-<identity>`, the roles \
             `<name>-<stage>-github`, all under the IAM path `/cxflow/<name>/`.",
            ),
        Attribute::nested("stages", Nesting::Map, stage)
            .required()
            .check(Check::Items(1, 20))
            .check(Check::keys(Check::Matches(STAGE_RE, "a stage name of 1-20 lowercase letters, digits and `-`, starting with a letter")))
            .describe(
                "One ECR repository per stage, keyed by stage name, with one IAM group per identity that has a permission level there \
                 and, with a `github` block, a role for GitHub Actions. Stages named `development`, `master` and `release` get the \
                 seed's tables by default: developers everything in development and authorize, read, metadata elsewhere; end users \
                 authorize and read in release only; GitHub everything in development and authorize, write elsewhere.",
            ),
        Attribute::new("scan_on_push", Type::Bool).default(Value::Bool(true)).describe("Scan every image for vulnerabilities when it is pushed."),
        Attribute::new("encryption_type", Type::String)
            .default(Value::string("AES256"))
            .force_new()
            .check(Check::OneOf(&["AES256", "KMS"]))
            .describe("Repository encryption, `AES256` or `KMS` (ECR cannot change it: a change replaces the registry and its images)."),
        Attribute::new("kms_key_arn", Type::String)
            .optional()
            .force_new()
            .check(Check::Arn { service: "kms", resource: "key/" })
            .describe("KMS key for `encryption_type = \"KMS\"`; unset: the AWS managed key `aws/ecr`."),
        Attribute::new(
            "stage_outputs",
            Type::map(Type::object([
                ("repository_name", Type::String),
                ("repository_url", Type::String),
                ("repository_arn", Type::String),
                ("group_names", Type::map(Type::String)),
                ("github_role_arn", Type::String),
                ("github_subjects", Type::list(Type::String)),
                ("permissions", Type::map(Type::list(Type::String))),
            ])),
        )
        .computed()
        .describe(
            "Per stage: the repository's name, URL (`docker push <url>:<tag>`) and ARN (the seed's `AWS_ECR_REGISTRY_ARN`), the \
             groups per identity (add IAM users to them, here with `members` or elsewhere), the GitHub role's ARN (the seed's \
             `AWS_GITHUB_ROLE_ARN`) and the token subjects it trusts, and the levels each identity has.",
        ),
        Attribute::new("oidc_provider_arn", Type::String)
            .computed()
            .describe("The GitHub OIDC provider the roles trust (the seed's `AWS_GITHUB_PROVIDER_ARN`); null without a `github` block."),
        Attribute::new("deployment_role_arn", Type::String)
            .computed()
            .describe("ARN of the deployment role (the seed's `AWS_DEPLOYMENT_ROLE_ARN`); null without a `deployment_role` block."),
    ];
    let github = Block::new(vec![
        Attribute::new("repository", Type::String)
            .required()
            .check(Check::Matches(GITHUB_REPO_RE, "a GitHub repository as `owner/name`, e.g. `example-org/sample-image`"))
            .describe("The GitHub repository whose workflows push images: every role's trust names it in full, so no other repository's runs can assume them."),
        Attribute::new("oidc_provider_arn", Type::String).optional().check(Check::Arn { service: "iam", resource: "oidc-provider/" }).describe(
            "The account's existing IAM OIDC provider for `token.actions.githubusercontent.com` (there is one per account). Unset: \
                 this resource creates it, with audience `sts.amazonaws.com`, and deletes it on destroy.",
        ),
    ])
    .describe("GitHub Actions through OIDC: the identity provider and, per stage where `github` has levels, a role trusted only for that stage's refs or environment.");
    let lifecycle = Block::new(vec![
        Attribute::new("keep_tagged", Type::Number)
            .default(Value::int(DEFAULT_KEEP_TAGGED))
            .check(Check::Int(1, 10_000))
            .describe("Tagged images kept per repository, newest first; older ones expire (or are archived, with `archive_old_tagged`)."),
        Attribute::new("expire_untagged_days", Type::Number)
            .default(Value::int(DEFAULT_EXPIRE_UNTAGGED_DAYS))
            .check(Check::Int(1, 3650))
            .describe("Days after its push an untagged image expires."),
        Attribute::new("archive_old_tagged", Type::Bool)
            .default(Value::Bool(false))
            .describe("Tagged images beyond the newest `keep_tagged` move to ECR's archive storage class (kept, not pullable until restored) instead of expiring."),
        Attribute::new("archive_unpulled_days", Type::Number)
            .optional()
            .check(Check::Int(1, 3650))
            .describe("Archive any image not pulled for this many days (an image never pulled: since its push). Unset: no such rule."),
        Attribute::new("expire_archived_days", Type::Number).optional().check(Check::Int(90, 3650)).describe(
            "Archived images expire this many days after their archiving (ECR keeps archived images at least 90 days). Unset: archived \
             images stay until deleted.",
        ),
    ])
    .describe(
        "The lifecycle policy of every repository (the seed's archiving of images no longer relevant): expire or archive what is no \
         longer needed. Without the block: the defaults below.",
    );
    let members = Block::new(
        Who::ALL
            .iter()
            .map(|w| {
                Attribute::new(w.attr(), Type::set(Type::String))
                    .optional()
                    .check(Check::each(Check::Matches(USER_NAME_RE, "an IAM user name")))
                    .describe(&format!("Existing IAM users added to every stage's `{}` group.", w.group_suffix()))
            })
            .collect(),
    )
    .describe("IAM users this resource adds to the groups (optional: users added elsewhere, e.g. with `aws_iam_user_group_membership`, are left alone).");
    let deployment = Block::new(vec![
        Attribute::new("policy_json", Type::String)
            .required()
            .check(Check::Custom(policy_document, "An IAM policy document (JSON) of at most 10240 characters."))
            .describe("What the role may do, e.g. the seed's `policies/deployment.json` (assume the CDK roles, CloudFormation)."),
        Attribute::new("name", Type::String)
            .optional()
            .check(Check::Matches(ROLE_NAME_RE, "an IAM role name of 1-64 letters, digits or +=,.@_-"))
            .describe("Role name. Default `<name>-deployment`."),
        Attribute::new("branch", Type::String)
            .default(Value::string("master"))
            .check(Check::Matches(BRANCH_RE, "a branch name without wildcards"))
            .describe("The one branch whose runs may assume the role."),
        Attribute::new("github_environment", Type::String)
            .optional()
            .check(environment_check())
            .describe("A GitHub environment whose jobs may assume the role as well (the seed's `Deployment`, limited to the branch by its deployment branch rule)."),
    ])
    .describe("The seed's GitHubDeploymentRole: a role with your policy that GitHub Actions may assume from `branch` (and `github_environment`) only. Needs `github`.");
    Block::new(attrs)
        .with_blocks(vec![
            NestedBlock::new("github", Nesting::Single, github),
            NestedBlock::new("image_lifecycle", Nesting::Single, lifecycle),
            NestedBlock::new("members", Nesting::Single, members),
            NestedBlock::new("deployment_role", Nesting::Single, deployment),
        ])
        .describe(
            "Seed 002's image registry as one resource: per stage an ECR repository (scan on push, tag mutability, encryption, \
             lifecycle policy), one IAM group per identity (developers, end users, GitHub) granting exactly that identity's \
             permission levels there, and a role GitHub Actions assumes through OIDC, trusted only for that stage's refs or GitHub \
             environment; the account's GitHub OIDC provider (or an existing one); optionally a deployment role trusted for one \
             branch and group members.",
        )
}

// ------------------------------------------------------------------ validation across attributes (no AWS calls)

fn validate_config(c: &Value) -> Diags {
    let mut d = Diags::new();
    let has_github = !c.get("github").is_null();
    let stages = c.get("stages").entries().cloned().unwrap_or_default();
    let name = c.get("name").as_str();
    let mut granted: BTreeSet<Who> = BTreeSet::new();
    let mut repos: BTreeMap<String, String> = BTreeMap::new();
    let mut all_known = c.get("stages").is_wholly_known();
    for (stage, v) in &stages {
        let p = Path::attr("stages").key(stage.clone());
        // A stage with values not known yet is checked once they are (unknown is not unset).
        if !v.is_wholly_known() {
            all_known = false;
            continue;
        }
        let Ok(st) = typed::from_value::<Stage>(v) else { continue };
        for who in Who::ALL {
            let levels = st.levels(stage, who);
            if !levels.is_empty() {
                granted.insert(who);
            }
            if levels.contains(&Level::Write) && !levels.contains(&Level::Authorize) {
                d.attr_error(
                    p.then_attr(who.attr()),
                    "Write without Authorize",
                    format!("{} may push to stage {stage:?} but not log in: add \"authorize\" (ecr:GetAuthorizationToken), which every docker push needs.", who.attr()),
                );
            }
        }
        let github_levels = st.levels(stage, Who::Github);
        let (refs, env) = st.trust(stage);
        let own_trust = st.github_refs.is_some() || st.github_environment.is_some();
        let trust_at = p.then_attr(if st.github_refs.is_some() || st.github_environment.is_none() { "github_refs" } else { "github_environment" });
        if own_trust && !has_github {
            d.attr_error(
                trust_at.clone(),
                "No GitHub repository",
                "github_refs and github_environment say which runs of the repository named in the github block may assume the stage's role: add a github block.",
            );
        } else if own_trust && github_levels.is_empty() {
            d.attr_error(
                trust_at.clone(),
                "No GitHub role in this stage",
                format!("GitHub has no permission level in stage {stage:?}, so there is no role to trust these runs: give `github` levels or remove the trust."),
            );
        } else if has_github && !github_levels.is_empty() && refs.is_empty() && env.is_none() {
            d.attr_error(
                trust_at,
                "No GitHub trust",
                format!("GitHub has permissions in stage {stage:?}: say which runs may assume its role with github_refs (e.g. [\"refs/heads/main\"]) or github_environment."),
            );
        }
        if let Some(n) = name {
            let repo = st.repository_name.clone().unwrap_or_else(|| default_repository(n, stage));
            if let Some(other) = repos.insert(repo.clone(), stage.clone()) {
                d.attr_error(
                    p.then_attr("repository_name"),
                    "Repository used twice",
                    format!("Stages {other:?} and {stage:?} would both use the ECR repository {repo:?}; each stage needs its own."),
                );
            }
        }
    }
    let members = c.get("members");
    if all_known && !members.is_null() {
        for who in Who::ALL {
            let given = members.get(who.attr()).elements().is_some_and(|e| !e.is_empty());
            if given && !granted.contains(&who) {
                d.attr_error(
                    Path::attr("members").then_attr(who.attr()),
                    "No group to join",
                    format!("No stage gives {} a permission level, so there is no {} group to add these users to.", who.attr(), who.group_suffix()),
                );
            }
        }
    }
    let deployment = !c.get("deployment_role").is_null();
    if deployment && !has_github {
        d.attr_error(Path::attr("deployment_role"), "No GitHub repository", "deployment_role trusts runs of the repository the github block names: add a github block.");
    }
    if has_github && all_known && !granted.contains(&Who::Github) && !deployment {
        d.attr_error(
            Path::attr("github"),
            "Nothing for GitHub",
            "The github block names a repository, but no stage gives github a permission level and there is no deployment_role, so no role would trust it.",
        );
    }
    if let Some(arn) = c.get("github").get("oidc_provider_arn").as_str() {
        if !arn.ends_with(&format!(":oidc-provider/{GITHUB_HOST}")) {
            d.attr_error(
                Path::attr("github").then_attr("oidc_provider_arn"),
                "Not GitHub's OIDC provider",
                format!("The roles trust GitHub Actions tokens, issued by {GITHUB_HOST}: give the ARN of the account's provider for that issuer (…:oidc-provider/{GITHUB_HOST})."),
            );
        }
    }
    let lifecycle = c.get("image_lifecycle");
    let archives = lifecycle.get("archive_old_tagged").as_bool() == Some(true) || !lifecycle.get("archive_unpulled_days").is_null();
    let unknown = lifecycle.get("archive_old_tagged").is_unknown() || lifecycle.get("archive_unpulled_days").is_unknown();
    if !lifecycle.get("expire_archived_days").is_null() && !archives && !unknown {
        d.attr_error(
            Path::attr("image_lifecycle").then_attr("expire_archived_days"),
            "Nothing is archived",
            "expire_archived_days expires images in the archive storage class, but no rule archives any: set archive_old_tagged = true or archive_unpulled_days.",
        );
    }
    let encryption = c.get("encryption_type");
    if !c.get("kms_key_arn").is_null() && (encryption.is_null() || encryption.as_str().is_some_and(|t| t != "KMS")) {
        d.attr_error(Path::attr("kms_key_arn"), "KMS key without KMS encryption", "kms_key_arn is used with encryption_type = \"KMS\" only.");
    }
    d
}

// ------------------------------------------------------------------ the children

fn repository_arn(c: &Common, repo: &str) -> String {
    c.fill(&format!("arn:{{partition}}:ecr:{{region}}:{{account}}:repository/{repo}"))
}

fn build_graph(cfg: &Registry, c: Arc<Common>) -> Result<Graph<Aws>, Diags> {
    let path = iam_path(&cfg.name);
    let create_provider = cfg.github.as_ref().is_some_and(|g| g.oidc_provider_arn.is_none());
    let provider = oidc_provider(c.clone(), create_provider);
    let provider_arn = cfg.github.as_ref().and_then(|g| g.oidc_provider_arn.clone()).unwrap_or_else(|| provider.arn());
    // A role's trust names the provider by ARN, which IAM checks exists; and a
    // provider going away (the github block removed) must outlive the roles,
    // since its delete keeps it while any role trusts it. An unwanted provider
    // counts as done, so a supplied ARN delays nothing.
    let after: Vec<String> = vec!["oidc_provider".into()];
    let mut nodes: Vec<Box<dyn Node<Aws>>> = vec![Box::new(provider)];
    let owner = c.owner.to_string();
    for (stage, st) in &cfg.stages {
        let k = stage_key(stage);
        let repo = cfg.repository_name(stage);
        let repo_arn = repository_arn(&c, &repo);
        let repo_key = format!("repository_{k}");
        nodes.push(Box::new(RepositoryNode {
            c: c.clone(),
            key: repo_key.clone(),
            spec: RepositorySpec {
                name: repo,
                immutable: st.image_tag_mutability.as_deref() == Some("IMMUTABLE"),
                scan_on_push: cfg.scan_on_push.unwrap_or(true),
                encryption: cfg.encryption_type.clone().unwrap_or_else(|| "AES256".into()),
                kms_key: cfg.kms_key_arn.clone(),
                lifecycle: Some(lifecycle_policy(&cfg.lifecycle())),
                policy: pull_policy(&c, st.pull_principals.as_deref().unwrap_or_default()),
                owns_policy: true,
            },
        }));
        for who in Who::ALL {
            let levels = st.levels(stage, who);
            nodes.push(Box::new(GroupNode {
                c: c.clone(),
                key: format!("group_{k}_{}", who.attr()),
                name: group_name(&cfg.name, stage, who),
                path: path.clone(),
                inline: if levels.is_empty() { BTreeMap::new() } else { BTreeMap::from([(POLICY_NAME.to_string(), level_policy(&levels, &repo_arn))]) },
                members: cfg.members(who),
                owner_dep: repo_key.clone(),
                wanted: !levels.is_empty(),
            }));
        }
        let levels = st.levels(stage, Who::Github);
        let role = RoleNode {
            c: c.clone(),
            key: format!("github_role_{k}"),
            name: github_role_name(&cfg.name, stage),
            path: path.clone(),
            description: format!(
                "GitHub Actions of {} for stage {stage}, managed by terraform-provider-cxflow for {owner}",
                cfg.github.as_ref().map(|g| g.repository.as_str()).unwrap_or("-")
            ),
            trust: github_trust(&provider_arn, &cfg.subjects(stage, st)),
            managed: Vec::new(),
            inline: BTreeMap::from([(POLICY_NAME.to_string(), level_policy(&levels, &repo_arn))]),
            wanted: cfg.github.is_some() && !levels.is_empty(),
        };
        nodes.push(Box::new(After { node: Box::new(role), after: after.clone() }));
    }
    let policy = cfg.deployment_role.as_ref().and_then(|d| serde_json::from_str::<Json>(&d.policy_json).ok()).unwrap_or(Json::Null);
    let deployment = RoleNode {
        c: c.clone(),
        key: "deployment_role".into(),
        name: deployment_role_name(cfg),
        path,
        description: format!("Deployments from GitHub Actions, managed by terraform-provider-cxflow for {owner}"),
        trust: github_trust(&provider_arn, &cfg.deployment_subjects()),
        managed: Vec::new(),
        inline: BTreeMap::from([(DEPLOYMENT_POLICY_NAME.to_string(), policy)]),
        wanted: cfg.deployment_role.is_some() && cfg.github.is_some(),
    };
    nodes.push(Box::new(After { node: Box::new(deployment), after }));
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

// ------------------------------------------------------------------ outputs

/// The configuration as far as `stage_outputs` needs it, when that is known.
fn outputs_config(p: &Value) -> Option<Registry> {
    let known = ["name", "stages", "github"].iter().all(|a| p.get(a).is_wholly_known());
    if !known {
        return None;
    }
    let mut part = Value::Object(BTreeMap::new());
    for a in ["name", "stages", "github"] {
        part.set_attr(a, p.get(a).clone());
    }
    typed::from_value(&part).ok()
}

fn strings(v: impl IntoIterator<Item = impl Into<String>>) -> Value {
    Value::List(v.into_iter().map(|s| Value::string(s.into())).collect())
}

/// `stage_outputs` from configuration alone; repository URL and ARN and the
/// role's ARN unknown (plan and the children fill them in).
fn stage_outputs(cfg: &Registry) -> Value {
    let mut out = BTreeMap::new();
    for (stage, st) in &cfg.stages {
        let mut groups = BTreeMap::new();
        let mut perms = BTreeMap::new();
        for who in Who::ALL {
            let levels = st.levels(stage, who);
            if !levels.is_empty() {
                groups.insert(who.attr().to_string(), Value::string(group_name(&cfg.name, stage, who)));
                perms.insert(who.attr().to_string(), strings(levels.iter().map(|l| l.name())));
            }
        }
        let role = cfg.github.is_some() && !st.levels(stage, Who::Github).is_empty();
        let o = BTreeMap::from([
            ("repository_name".to_string(), Value::string(cfg.repository_name(stage))),
            ("repository_url".to_string(), Value::Unknown),
            ("repository_arn".to_string(), Value::Unknown),
            ("group_names".to_string(), Value::Map(groups)),
            ("github_role_arn".to_string(), if role { Value::Unknown } else { Value::Null }),
            ("github_subjects".to_string(), strings(if role { cfg.subjects(stage, st) } else { Vec::new() })),
            ("permissions".to_string(), Value::Map(perms)),
        ]);
        out.insert(stage.clone(), Value::Object(o));
    }
    Value::Map(out)
}

/// Set field `field` of every stage's entry of `stage_outputs`.
fn set_stage_field(st: &mut Value, f: impl Fn(&str, &Value) -> Option<Value>, field: &str) {
    let Some(Value::Map(m)) = st.get_mut("stage_outputs") else { return };
    for (stage, o) in m.iter_mut() {
        if let Some(v) = f(stage, &o.get(field).clone()) {
            o.set_attr(field, v);
        }
    }
}

fn opt(v: Option<String>) -> Value {
    v.map(Value::string).unwrap_or(Value::Null)
}

/// The GitHub OIDC provider node (wanted when the registry creates it).
fn oidc_provider(c: Arc<Common>, wanted: bool) -> OidcProviderNode {
    OidcProviderNode {
        c,
        key: "oidc_provider".into(),
        host: GITHUB_HOST.into(),
        client_ids: BTreeSet::from([GITHUB_AUDIENCE.to_string()]),
        taken_hint: "There is one provider per issuer and account: set github.oidc_provider_arn to its ARN to use it.".into(),
        wanted,
    }
}

/// Plan's lookups: the account, which the repositories' URLs and ARNs name,
/// and, when this plan would create the GitHub OIDC provider, whether the
/// account already has one that is not this registry's (another registry's,
/// say): then the plan fails naming `github.oidc_provider_arn`, before any apply.
async fn plan_lookups(aws: &Aws, p: &mut Value, prior: &Value) -> Diags {
    let account = match account_id(aws).await {
        Ok(a) => a,
        Err(e) => return Diagnostic::error("Could not determine the AWS account", e.to_string()).into(),
    };
    let name = p.get("name").as_str().unwrap_or_default().to_string();
    let c = Common { owner: crate::engine::Owner::new(TYPE_NAME, &name), tags: Tags::new(), region: aws.region.clone(), account: account.clone() };
    let creates_provider = !p.get("github").is_null() && p.get("github").get("oidc_provider_arn").is_null();
    let recorded = prior.get("children").get("oidc_provider").as_str().is_some();
    if creates_provider && !recorded {
        let node = oidc_provider(Arc::new(c.clone()), true);
        match node.taken(aws).await {
            Ok(Some(why)) => {
                let mut d = Diags::new();
                d.attr_error(
                    Path::attr("github").then_attr("oidc_provider_arn"),
                    "GitHub's OIDC provider exists",
                    format!("{why} This registry then trusts it and never changes or deletes it: oidc_provider_arn = \"{}\".", node.arn()),
                );
                return d;
            }
            Ok(None) => {}
            // The apply looks again and reports what it finds.
            Err(e) => tracing::debug!(target: "cxflow::resources::image_registry", error = %e, "could not look up the GitHub OIDC provider at plan time"),
        }
    }
    let region = aws.region.clone();
    let repo_of = |o: &Value| o.get("repository_name").as_str().map(str::to_string);
    let repos: BTreeMap<String, String> = p.get("stage_outputs").entries().into_iter().flatten().filter_map(|(s, o)| Some((s.clone(), repo_of(o)?))).collect();
    set_stage_field(p, |s, _| repos.get(s).map(|r| Value::string(format!("{account}.dkr.ecr.{region}.amazonaws.com/{r}"))), "repository_url");
    set_stage_field(p, |s, _| repos.get(s).map(|r| Value::string(repository_arn(&c, r))), "repository_arn");
    Diags::new()
}

pub struct ImageRegistry;

#[async_trait]
impl Composite<Aws> for ImageRegistry {
    type State = Registry;
    const TYPE_NAME: &'static str = TYPE_NAME;
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

    fn block() -> Block {
        schema_block()
    }
    fn validate(config: &Value) -> Diags {
        validate_config(config)
    }
    fn derived(p: &mut Value) {
        let v = outputs_config(p).map(|cfg| stage_outputs(&cfg)).unwrap_or(Value::Unknown);
        p.set_attr("stage_outputs", v);
    }
    async fn plan_lookups(aws: &Aws, p: &mut Value, prior: &Value) -> Diags {
        plan_lookups(aws, p, prior).await
    }
    fn owner_name(s: &Registry) -> String {
        s.name.clone()
    }
    fn id(s: &Registry) -> String {
        s.name.clone()
    }
    fn identity() -> &'static [(&'static str, &'static str)] {
        &[("name", "The registry's name.")]
    }
    async fn graph(s: &Registry, g: &GraphCx<'_, Aws>) -> Result<Graph<Aws>, Diags> {
        build_graph(s, Common::new(g).await?)
    }
    fn planned_outputs(p: &mut Value, pc: &PlannedChildren<'_, Aws>) {
        set_stage_field(p, |stage, now| (!now.is_null()).then(|| pc.identity(&format!("github_role_{}", stage_key(stage)))), "github_role_arn");
        let provider = match p.get("github") {
            Value::Null => Value::Null,
            g => match g.get("oidc_provider_arn") {
                Value::Null => pc.identity("oidc_provider"),
                v => v.clone(),
            },
        };
        p.set_attr("oidc_provider_arn", provider);
        p.set_attr("deployment_role_arn", pc.identity("deployment_role"));
    }
    fn outputs(st: &mut Value, cfg: &Registry, kids: &Kids<'_>) {
        let key = |stage: &str, kind: &str| format!("{kind}_{}", stage_key(stage));
        set_stage_field(st, |s, _| Some(opt(kids.output(&key(s, "repository"), "uri").map(str::to_string))), "repository_url");
        set_stage_field(st, |s, _| Some(opt(kids.output(&key(s, "repository"), "arn").map(str::to_string))), "repository_arn");
        set_stage_field(st, |s, now| (!now.is_null()).then(|| opt(kids.id(&key(s, "github_role")))), "github_role_arn");
        let provider = cfg.github.as_ref().and_then(|g| g.oidc_provider_arn.clone().or_else(|| kids.id("oidc_provider")));
        st.set_attr("oidc_provider_arn", opt(provider));
        st.set_attr("deployment_role_arn", opt(kids.id("deployment_role")));
    }

    fn import_seed(id: &str) -> Result<Registry, Diags> {
        let name = id.trim();
        let ok = name.len() <= 40 && regex::Regex::new(&format!("^(?:{NAME_RE})$")).map(|r| r.is_match(name)).unwrap_or(false);
        if !ok {
            return Err(Diagnostic::error("Invalid import ID", format!("Import a {TYPE_NAME} by its name, e.g. `terraform import {TYPE_NAME}.this sample-image`.")).into());
        }
        Ok(Registry { name: name.to_string(), ..Default::default() })
    }
    async fn from_observed(aws: &Aws, seed: &Registry, kids: &Kids<'_>) -> Result<Registry, Diags> {
        if seed.stages.is_empty() {
            // Nothing is in the graph yet: find the stages and what their children say under the registry's IAM path.
            let found = discover(aws, seed).await?;
            let record = Record::new();
            let outputs = BTreeMap::new();
            let mut cfg = read_config(seed, &Kids { record: &record, outputs: &outputs, observed: &found }, &aws.default_tags);
            // Whether the OIDC provider is this registry's is for its node to find out.
            if let Some(g) = cfg.github.as_mut() {
                g.oidc_provider_arn = None;
            }
            return Ok(cfg);
        }
        let mut cfg = read_config(seed, kids, &aws.default_tags);
        if !kids.observed.values().any(|o| o.contains_key("tags")) {
            cfg.tags = repository_tags(aws, &cfg, kids).await?;
        }
        Ok(cfg)
    }
}

// ------------------------------------------------------------------ import

fn import_err(e: impl std::fmt::Display) -> Diags {
    Diagnostic::error("Import failed", e.to_string()).into()
}

/// The stage `key` (a child key after `prefix`) stands for.
fn stage_of_key(key: &str, prefix: &str) -> Option<String> {
    key.strip_prefix(prefix).map(|k| k.replace('_', "-"))
}

/// The first round of an import: the registry's groups and roles under its IAM
/// path and its repositories named `<name>/<stage>`, as observed specs under
/// the child keys they will have (no child is in the graph yet). Groups and
/// roles cannot be found by stage before the stages are known; policies tell
/// each stage's repository when it has another name.
async fn discover(aws: &Aws, seed: &Registry) -> Result<BTreeMap<String, Spec>, Diags> {
    let path = iam_path(&seed.name);
    let mut seen: BTreeMap<String, Spec> = BTreeMap::new();
    let iam = aws.iam();
    let mut groups = iam.list_groups().path_prefix(&path).into_paginator().send();
    while let Some(page) = groups.next().await {
        for g in page.map_err(|e| import_err(aws_err("iam:ListGroups", e)))?.groups().iter().filter(|g| g.path() == path) {
            let Some(rest) = g.group_name().strip_prefix(&format!("{}-", seed.name)) else { continue };
            let Some((stage, who)) = Who::ALL.iter().find_map(|w| rest.strip_suffix(&format!("-{}", w.group_suffix())).map(|s| (s.to_string(), *w))) else { continue };
            let doc = match iam.get_group_policy().group_name(g.group_name()).policy_name(POLICY_NAME).send().await.map_err(|e| aws_err("iam:GetGroupPolicy", e)) {
                Ok(o) => parse_policy(o.policy_document()).unwrap_or(Json::Null),
                Err(e) if e.is_not_found() => Json::Null,
                Err(e) => return Err(import_err(e)),
            };
            seen.insert(format!("group_{}_{}", stage_key(&stage), who.attr()), crate::engine::spec(json!({"inline_policies": {POLICY_NAME: doc}})));
        }
    }
    let mut roles = iam.list_roles().path_prefix(&path).into_paginator().send();
    while let Some(page) = roles.next().await {
        for r in page.map_err(|e| import_err(aws_err("iam:ListRoles", e)))?.roles().iter().filter(|r| r.path() == path) {
            // ListRoles leaves tags out: the role's own record says which child it is.
            let got = iam.get_role().role_name(r.role_name()).send().await.map_err(|e| import_err(aws_err("iam:GetRole", e)))?;
            let Some(role) = got.role() else { continue };
            let tag = |k: &str| role.tags().iter().find(|t| t.key() == k).map(|t| t.value().to_string());
            if tag(crate::engine::OWNER_TAG).as_deref() != Some(&format!("{TYPE_NAME}/{}", seed.name)) {
                continue;
            }
            let Some(child) = tag(crate::engine::CHILD_TAG).filter(|c| c.starts_with("github_role_") || c == "deployment_role") else { continue };
            let policy = if child == "deployment_role" { DEPLOYMENT_POLICY_NAME } else { POLICY_NAME };
            let doc = match iam.get_role_policy().role_name(r.role_name()).policy_name(policy).send().await.map_err(|e| aws_err("iam:GetRolePolicy", e)) {
                Ok(o) => parse_policy(o.policy_document()).unwrap_or(Json::Null),
                Err(e) if e.is_not_found() => Json::Null,
                Err(e) => return Err(import_err(e)),
            };
            let trust = role.assume_role_policy_document().and_then(parse_policy).unwrap_or(Json::Null);
            seen.insert(child, crate::engine::spec(json!({"name": role.role_name(), "trust": trust, "inline_policies": {policy: doc}})));
        }
    }
    let mut repos = aws.ecr().describe_repositories().into_paginator().send();
    while let Some(page) = repos.next().await {
        for r in page.map_err(|e| import_err(aws_err("ecr:DescribeRepositories", e)))?.repositories() {
            let Some(stage) = r.repository_name().and_then(|n| n.strip_prefix(&format!("{}/", seed.name))) else { continue };
            if regex::Regex::new(&format!("^(?:{STAGE_RE})$")).is_ok_and(|re| re.is_match(stage)) {
                seen.insert(format!("repository_{}", stage_key(stage)), crate::engine::spec(json!({"name": r.repository_name()})));
            }
        }
    }
    Ok(seen)
}

/// The user's tags on the registry's first repository (ECR repositories'
/// observations leave tags out; a registry without GitHub roles has no other taggable child).
async fn repository_tags(aws: &Aws, cfg: &Registry, kids: &Kids<'_>) -> Result<Option<BTreeMap<String, String>>, Diags> {
    let Some(arn) = cfg.stages.keys().find_map(|s| kids.str_field(&format!("repository_{}", stage_key(s)), "arn")) else { return Ok(None) };
    let out = aws.ecr().list_tags_for_resource().resource_arn(&arn).send().await.map_err(|e| import_err(aws_err("ecr:ListTagsForResource", e)))?;
    let tags: Tags = out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    let mut observed = Spec::new();
    observed.insert("tags".into(), crate::engine::tags_json(&tags));
    let record = Record::new();
    let outputs = BTreeMap::new();
    let one = BTreeMap::from([("repository".to_string(), observed)]);
    let user = Kids { record: &record, outputs: &outputs, observed: &one }.user_tags("repository", &aws.default_tags);
    Ok(Some(user).filter(|t| !t.is_empty()))
}

/// The configuration the observed children imply, with defaults left unset.
fn read_config(seed: &Registry, kids: &Kids<'_>, default_tags: &Tags) -> Registry {
    let mut cfg = Registry { name: seed.name.clone(), ..Default::default() };
    let mut stages: BTreeSet<String> = seed.stages.keys().cloned().collect();
    for key in kids.observed.keys() {
        let stage = ["repository_", "github_role_"].iter().find_map(|p| stage_of_key(key, p)).or_else(|| {
            let rest = key.strip_prefix("group_")?;
            Who::ALL.iter().find_map(|w| rest.strip_suffix(&format!("_{}", w.attr()))).map(|s| s.replace('_', "-"))
        });
        stages.extend(stage);
    }
    let policy = |key: &str, name: &str| kids.field(key, "inline_policies").and_then(|p| p.get(name)).cloned().filter(|d| !d.is_null());
    let mut github_repo: Option<String> = None;
    let mut provider: Option<String> = None;
    // Subjects of a trust, with the repository they name (`repo:<owner>/<name>:<rest>`) noted.
    let mut read_trust = |key: &str| -> Vec<String> {
        let Some(t) = kids.field(key, "trust") else { return Vec::new() };
        let st = &t["Statement"][0];
        provider = provider.clone().or_else(|| st["Principal"]["Federated"].as_str().map(str::to_string));
        let cond = &st["Condition"];
        let sub = format!("{GITHUB_HOST}:sub");
        let list: Vec<String> =
            ["StringEquals", "StringLike"].iter().find_map(|op| cond[op][&sub].as_array()).into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect();
        list.iter()
            .filter_map(|s| {
                let rest = s.strip_prefix("repo:")?;
                let (owner, more) = rest.split_once('/')?;
                let (name, tail) = more.split_once(':')?;
                github_repo.get_or_insert_with(|| format!("{owner}/{name}"));
                Some(tail.to_string())
            })
            .collect()
    };
    for stage in &stages {
        let k = stage_key(stage);
        let mut st = Stage::default();
        let default_repo = default_repository(&seed.name, stage);
        let seed_repo = seed.stages.get(stage).and_then(|s| s.repository_name.clone());
        let from_policies = Who::ALL.iter().find_map(|w| policy(&format!("group_{k}_{}", w.attr()), POLICY_NAME)).or_else(|| policy(&format!("github_role_{k}"), POLICY_NAME));
        let repo =
            kids.str_field(&format!("repository_{k}"), "name").or(seed_repo).or_else(|| from_policies.as_ref().and_then(repository_in)).unwrap_or_else(|| default_repo.clone());
        st.repository_name = (repo != default_repo).then_some(repo);
        st.pull_principals = kids.field(&format!("repository_{k}"), "repository_policy").and_then(pull_principals_in);
        if kids.str_field(&format!("repository_{k}"), "image_tag_mutability").as_deref() == Some("IMMUTABLE") {
            st.image_tag_mutability = Some("IMMUTABLE".into());
        }
        let role_key = format!("github_role_{k}");
        for who in Who::ALL {
            let group = policy(&format!("group_{k}_{}", who.attr()), POLICY_NAME);
            let role = (who == Who::Github).then(|| policy(&role_key, POLICY_NAME)).flatten();
            let levels = group.or(role).map(|d| levels_in(&d)).unwrap_or_default();
            let default: Vec<String> = Stage::default().levels(stage, who).iter().map(|l| l.name().to_string()).collect();
            st.set(who, (levels != default).then_some(levels));
        }
        let tails = read_trust(&role_key);
        if !tails.is_empty() {
            let mut refs: Vec<String> = tails.iter().filter_map(|t| if t == "pull_request" { Some(t.clone()) } else { t.strip_prefix("ref:").map(str::to_string) }).collect();
            refs.sort();
            let env = tails.iter().find_map(|t| t.strip_prefix("environment:").map(str::to_string));
            let (default_refs, default_env) = Stage::default().trust(stage);
            if (refs.clone(), env.clone()) != (default_refs, default_env) {
                st.github_refs = (!refs.is_empty()).then_some(refs);
                st.github_environment = env;
            }
        }
        cfg.stages.insert(stage.clone(), st);
    }
    if let Some(role) = kids.observed("deployment_role") {
        let tails = read_trust("deployment_role");
        let branch = tails.iter().find_map(|t| t.strip_prefix("ref:refs/heads/").map(str::to_string));
        let doc = policy("deployment_role", DEPLOYMENT_POLICY_NAME).map(|d| d.to_string()).unwrap_or_default();
        let name = role.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
        let mut d = DeploymentRole {
            policy_json: doc,
            name: None,
            branch: branch.filter(|b| b != "master"),
            github_environment: tails.iter().find_map(|t| t.strip_prefix("environment:").map(str::to_string)),
        };
        if name != deployment_role_name(&Registry { name: seed.name.clone(), ..Default::default() }) {
            d.name = Some(name);
        }
        cfg.deployment_role = Some(d);
    }
    if let Some(repository) = github_repo {
        let ours = kids.id("oidc_provider").is_some();
        cfg.github = Some(Github { repository, oidc_provider_arn: if ours { None } else { provider } });
    }
    // Registry-wide settings, from any repository.
    if let Some(k) = cfg.stages.keys().map(|s| format!("repository_{}", stage_key(s))).find(|k| kids.observed(k).is_some_and(|o| o.contains_key("scan_on_push"))) {
        cfg.scan_on_push = (kids.field(&k, "scan_on_push").and_then(|v| v.as_bool()) == Some(false)).then_some(false);
        if kids.str_field(&k, "encryption_type").as_deref() == Some("KMS") {
            cfg.encryption_type = Some("KMS".into());
            // The key in use, unless it is the AWS managed key (what no `kms_key_arn` means).
            let managed = kids.field(&k, "kms_key_aws_managed").and_then(|v| v.as_bool()) == Some(true);
            cfg.kms_key_arn = kids.str_field(&k, "kms_key_in_use").filter(|_| !managed);
        }
        cfg.image_lifecycle = kids.field(&k, "lifecycle_policy").and_then(lifecycle_in);
    }
    // Tags, from a child whose observation reads them back (repositories' do not).
    if let Some(k) = kids.observed.iter().find(|(_, o)| o.contains_key("tags")).map(|(k, _)| k.clone()) {
        cfg.tags = Some(kids.user_tags(&k, default_tags)).filter(|t| !t.is_empty());
    }
    // Members: the users in every group of an identity (one group alone may have members added elsewhere).
    let mut members = Members::default();
    for who in Who::ALL {
        let groups: Vec<BTreeSet<String>> = cfg
            .stages
            .keys()
            .filter_map(|s| kids.field(&format!("group_{}_{}", stage_key(s), who.attr()), "all_members"))
            .map(|m| m.as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_string)).collect())
            .collect();
        let common: Vec<String> = groups.iter().skip(1).fold(groups.first().cloned().unwrap_or_default(), |acc, g| acc.intersection(g).cloned().collect()).into_iter().collect();
        let v = (!common.is_empty()).then_some(common);
        match who {
            Who::Developers => members.developers = v,
            Who::EndUsers => members.end_users = v,
            Who::Github => members.github = v,
        }
    }
    cfg.members = (members != Members::default()).then_some(members);
    cfg
}

pub fn resource() -> Arc<dyn Resource<Aws>> {
    Arc::new(CompositeResource::<ImageRegistry>::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common() -> Arc<Common> {
        Arc::new(Common { owner: crate::engine::Owner::new(TYPE_NAME, "sample-image"), tags: Default::default(), region: "us-east-1".into(), account: "123456789012".into() })
    }

    fn seed_registry() -> Registry {
        let stages = ["development", "master", "release"].iter().map(|s| (s.to_string(), Stage::default())).collect();
        Registry { name: "sample-image".into(), stages, github: Some(Github { repository: "example-org/sample-image".into(), oidc_provider_arn: None }), ..Default::default() }
    }

    fn names(v: &[Level]) -> Vec<&'static str> {
        v.iter().map(|l| l.name()).collect()
    }

    #[test]
    fn unset_levels_are_the_seeds_tables() {
        let st = Stage::default();
        assert_eq!(names(&st.levels("development", Who::Developers)), ["authorize", "read", "write", "metadata"]);
        assert_eq!(names(&st.levels("development", Who::EndUsers)), Vec::<&str>::new());
        assert_eq!(names(&st.levels("master", Who::Github)), ["authorize", "write"]);
        assert_eq!(names(&st.levels("release", Who::EndUsers)), ["authorize", "read"]);
        assert_eq!(names(&st.levels("staging", Who::Developers)), Vec::<&str>::new(), "other stages get nothing by default");
        let own = Stage { developers: Some(vec!["metadata".into(), "authorize".into()]), ..Default::default() };
        assert_eq!(names(&own.levels("master", Who::Developers)), ["authorize", "metadata"]);
    }

    #[test]
    fn policies_grant_each_level_on_its_resource() {
        let p = level_policy(&[Level::Authorize, Level::Write], "arn:aws:ecr:us-east-1:1:repository/r");
        let st = p["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!((st[0]["Sid"].as_str(), st[0]["Resource"].as_str()), (Some("Authorize"), Some("*")));
        assert_eq!(st[1]["Resource"], "arn:aws:ecr:us-east-1:1:repository/r");
        assert!(st[1]["Action"].as_array().unwrap().iter().any(|a| a == "ecr:PutImage"));
        assert_eq!(levels_in(&p), ["authorize", "write"]);
        assert_eq!(repository_in(&p).as_deref(), Some("r"));
    }

    #[test]
    fn github_trust_pins_the_audience_and_the_subjects() {
        let cfg = seed_registry();
        let master = cfg.subjects("master", &Stage::default());
        assert_eq!(master, ["repo:example-org/sample-image:environment:Master", "repo:example-org/sample-image:ref:refs/heads/master"]);
        let t = github_trust("arn:aws:iam::1:oidc-provider/token.actions.githubusercontent.com", &master);
        let cond = &t["Statement"][0]["Condition"];
        assert_eq!(cond["StringEquals"]["token.actions.githubusercontent.com:aud"], GITHUB_AUDIENCE);
        assert_eq!(cond["StringEquals"]["token.actions.githubusercontent.com:sub"], json!(master));
        let dev = cfg.subjects("development", &Stage::default());
        assert!(dev.contains(&"repo:example-org/sample-image:pull_request".to_string()));
        let t = github_trust("arn", &dev);
        assert!(t["Statement"][0]["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"].is_array(), "wildcards are matched with StringLike");
        let own = Stage { github_environment: Some("Prod".into()), ..Default::default() };
        assert_eq!(cfg.subjects("master", &own), ["repo:example-org/sample-image:environment:Prod"], "a stage's own trust replaces the seed's");
    }

    #[test]
    fn the_graph_has_a_group_per_identity_with_levels() {
        let g = build_graph(&seed_registry(), common()).unwrap();
        let wanted = g.wanted_keys();
        for k in ["oidc_provider", "repository_master", "group_master_developers", "group_master_github", "github_role_master", "group_release_end_users"] {
            assert!(wanted.contains(&k), "{k} in {wanted:?}");
        }
        assert!(!wanted.contains(&"group_master_end_users"), "end users have nothing in master");
        assert!(!wanted.contains(&"deployment_role"));
        let mut own = seed_registry();
        own.github.as_mut().unwrap().oidc_provider_arn = Some("arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com".into());
        let g = build_graph(&own, common()).unwrap();
        assert!(!g.wanted_keys().contains(&"oidc_provider"), "a supplied provider is not created");
    }

    #[test]
    fn lifecycle_rules_archive_what_the_user_says_and_read_back() {
        let defaults = seed_registry().lifecycle();
        let p = lifecycle_policy(&defaults);
        let rules = p["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules.iter().all(|r| r["action"] == json!({"type": "expire"})), "{p}");
        assert_eq!(lifecycle_in(&p), None, "the defaults read back as unset");
        let archive =
            Lifecycle { keep_tagged: Some(10), expire_untagged_days: None, archive_old_tagged: Some(true), archive_unpulled_days: Some(30), expire_archived_days: Some(180) };
        let cfg = Registry { image_lifecycle: Some(archive.clone()), ..seed_registry() };
        let p = lifecycle_policy(&cfg.lifecycle());
        let rules = p["rules"].as_array().unwrap();
        let priorities: Vec<i64> = rules.iter().map(|r| r["rulePriority"].as_i64().unwrap()).collect();
        assert_eq!(priorities, [1, 2, 3, 4]);
        assert_eq!(rules[1]["action"], json!({"type": "transition", "targetStorageClass": "archive"}));
        assert_eq!((rules[2]["selection"]["countType"].as_str(), rules[2]["selection"]["tagStatus"].as_str()), (Some("sinceImagePulled"), Some("any")));
        assert_eq!((rules[3]["selection"]["storageClass"].as_str(), rules[3]["selection"]["countNumber"].as_i64()), (Some("archive"), Some(180)));
        assert_eq!(lifecycle_in(&p), Some(archive), "import reads the block back");
    }

    #[test]
    fn pull_policy_names_accounts_as_roots_and_grants_pulls_only() {
        let c = common();
        assert_eq!(pull_policy(&c, &[]), None, "no principals, no repository policy");
        let given = vec!["111122223333".to_string(), "arn:aws:iam::444455556666:role/ci".to_string()];
        let p = pull_policy(&c, &given).unwrap();
        let st = &p["Statement"].as_array().unwrap()[..];
        assert_eq!(st.len(), 1);
        assert_eq!(st[0]["Principal"]["AWS"], json!(["arn:aws:iam::111122223333:root", "arn:aws:iam::444455556666:role/ci"]));
        assert_eq!(st[0]["Action"], json!(Level::Read.actions()));
        assert!(st[0].get("Resource").is_none() && st[0].get("Condition").is_none());
        assert_eq!(pull_principals_in(&p), Some(given));
    }

    fn config(stages: Value, extra: &[(&str, Value)]) -> Value {
        let mut m = BTreeMap::from([("name".to_string(), Value::string("sample-image")), ("stages".to_string(), stages)]);
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        Value::Object(m)
    }

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn set(v: &[&str]) -> Value {
        Value::Set(v.iter().map(|s| Value::string(*s)).collect())
    }

    fn paths(d: &Diags) -> Vec<String> {
        d.0.iter().map(|x| x.path.as_ref().map(|p| p.to_string()).unwrap_or_default()).collect()
    }

    #[test]
    fn validation_names_the_attribute() {
        let github = obj(&[("repository", Value::string("example-org/sample-image"))]);
        let stages = Value::Map(BTreeMap::from([
            ("qa".to_string(), obj(&[("developers", set(&["write"]))])),
            ("staging".to_string(), obj(&[("github", set(&["authorize", "write"]))])),
            ("nightly".to_string(), obj(&[("github_refs", set(&["refs/heads/main"]))])),
        ]));
        let d = validate_config(&config(stages, &[("github", github)]));
        assert_eq!(paths(&d), [r#"stages["nightly"].github_refs"#, r#"stages["qa"].developers"#, r#"stages["staging"].github_refs"#], "{d}");
        let dup = Value::Map(BTreeMap::from([
            ("a".to_string(), obj(&[("developers", set(&["authorize"])), ("repository_name", Value::string("sample-image/b"))])),
            ("b".to_string(), obj(&[("developers", set(&["authorize"]))])),
        ]));
        let d = validate_config(&config(dup, &[("members", obj(&[("end_users", set(&["bob"]))]))]));
        assert_eq!(paths(&d), [r#"stages["b"].repository_name"#, "members.end_users"], "{d}");
        let lifecycle = obj(&[("expire_archived_days", Value::int(120))]);
        let d = validate_config(&config(Value::Map(BTreeMap::from([("qa".to_string(), obj(&[]))])), &[("image_lifecycle", lifecycle)]));
        assert_eq!(paths(&d), ["image_lifecycle.expire_archived_days"], "nothing is archived: {d}");
        let lifecycle = obj(&[("expire_archived_days", Value::int(120)), ("archive_unpulled_days", Value::int(30))]);
        assert!(validate_config(&config(Value::Map(BTreeMap::from([("qa".to_string(), obj(&[]))])), &[("image_lifecycle", lifecycle)])).is_empty());
        let unknown = Value::Map(BTreeMap::from([("qa".to_string(), obj(&[("github", set(&["authorize", "write"])), ("github_refs", Value::Unknown)]))]));
        let github = obj(&[("repository", Value::string("example-org/sample-image"))]);
        assert!(validate_config(&config(unknown, &[("github", github)])).is_empty(), "refs not known yet are not missing refs");
    }
}
