//! Reads that refresh shares across concurrent operations (see [`super::batch`]):
//! ECS services (DescribeServices, 10 per call and cluster), EC2 security
//! groups (DescribeSecurityGroups by `group-id` filter, 100 per call),
//! CloudWatch log groups (DescribeLogGroups by `logGroupIdentifiers`, 50 per
//! call), ECR repositories (DescribeRepositories, 100 per call; one missing
//! name fails the whole call, so then each is read alone), ECS clusters
//! (DescribeClusters with settings, tags and configurations, 100 per call),
//! CodeBuild projects (BatchGetProjects, 100 per call), load balancers,
//! target groups and listener rules (DescribeLoadBalancers,
//! DescribeTargetGroups, DescribeRules by ARN, 20 per call),
//! image digests (DescribeImages by tag, 100 per call and repository) and IAM roles with their inline and attached policies.
//!
//! IAM has no batch read of roles. When many roles are asked for at once,
//! the account's roles are listed instead: `ListRoles` (description, path,
//! trust policy) and `GetAccountAuthorizationDetails` filtered to roles
//! (inline policies, attached policies, tags), each a page of up to 1000
//! roles per call. That costs the same whatever the number of roles asked
//! for, so it is used only when at least [`ROLE_LISTING_MIN`] roles wait and
//! reading them one by one would take more calls than the last listing did.
//! IAM groups likewise: one by one, `GetGroup` (with its members) and
//! `GetGroupPolicy` per inline policy; listed, `GetAccountAuthorizationDetails`
//! filtered to groups and users (a group's inline policies; each user's
//! groups, which give the members).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::types::LogGroup;
use aws_sdk_codebuild::types::Project;
use aws_sdk_ec2::types::{Filter, SecurityGroup};
use aws_sdk_ecr::types::{ImageIdentifier, Repository};
use aws_sdk_ecs::types::{Cluster, ClusterField, Service, ServiceField};
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, Rule, TargetGroup};
use aws_sdk_iam::types::EntityType;

use super::batch::Coalescer;
use super::{Aws, AwsError, aws_err};

/// How long the first read of a batch waits for others to join it, unless
/// `CXFLOW_READ_WINDOW_MS` says otherwise (0 turns coalescing off).
pub const WINDOW: Duration = Duration::from_millis(5);

fn window() -> Duration {
    std::env::var("CXFLOW_READ_WINDOW_MS").ok().and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_millis).unwrap_or(WINDOW)
}
/// DescribeServices takes at most 10 services.
const SERVICES_PER_CALL: usize = 10;
/// GetParameters takes at most 10 names.
const PARAMETERS_PER_CALL: usize = 10;
/// Filter values per DescribeSecurityGroups call.
const GROUPS_PER_CALL: usize = 100;
/// DescribeLoadBalancers takes at most 20 ARNs; DescribeRules and DescribeTargetGroups are kept to as many.
const LOAD_BALANCERS_PER_CALL: usize = 20;
const RULES_PER_CALL: usize = 20;
/// DescribeImages takes at most 100 image ids.
const IMAGES_PER_CALL: usize = 100;
/// DescribeClusters and BatchGetProjects take at most 100 names.
const CLUSTERS_PER_CALL: usize = 100;
const PROJECTS_PER_CALL: usize = 100;
/// DescribeRepositories takes at most 100 `repositoryNames`.
const REPOSITORIES_PER_CALL: usize = 100;
/// DescribeLogGroups takes at most 50 `logGroupIdentifiers`.
const LOG_GROUPS_PER_CALL: usize = 50;
/// Roles (or groups) waiting at once before the account's are listed instead of read one by one.
pub const ROLE_LISTING_MIN: usize = 4;
/// Entities per page of an account listing. IAM allows 1000, but a page of
/// 1000 roles with their policies is megabytes of XML, held with its parsed
/// form while it is filtered: at 200 a plan of 500 services peaks several
/// megabytes lower for a few more listing calls (docs/performance.md).
const ROLES_PER_PAGE: i32 = 200;

/// What a role read needs: the role, which inline policies, and whether attached policies matter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoleAsk {
    pub name: String,
    pub inline: Vec<String>,
    pub attached: bool,
}

/// A role as a read saw it. Policy documents are as IAM returns them (URL-encoded JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleRead {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub description: Option<String>,
    pub trust: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The asked-for inline policies that exist: name → document.
    pub inline: BTreeMap<String, String>,
    /// Attached managed policy ARNs (empty unless asked for).
    pub attached: BTreeSet<String>,
}

type RoleAnswer = Result<RoleRead, AwsError>;

/// What a group read needs: the group and which inline policies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupAsk {
    pub name: String,
    pub inline: Vec<String>,
}

/// A group as a read saw it, with every member's user name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupRead {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub inline: BTreeMap<String, String>,
    pub members: BTreeSet<String>,
}

type GroupAnswer = Result<GroupRead, AwsError>;

pub struct Reads {
    services: Coalescer<String, Service>,
    groups: Coalescer<String, SecurityGroup>,
    log_groups: Coalescer<String, LogGroup>,
    repositories: Coalescer<String, Repository>,
    clusters: Coalescer<String, Cluster>,
    load_balancers: Coalescer<String, LoadBalancer>,
    rules: Coalescer<String, Rule>,
    target_groups: Coalescer<String, TargetGroup>,
    digests: Coalescer<String, String>,
    projects: Coalescer<String, Project>,
    parameters: Coalescer<String, aws_sdk_ssm::types::Parameter>,
    roles: Coalescer<RoleAsk, RoleAnswer>,
    iam_groups: Coalescer<GroupAsk, GroupAnswer>,
    /// Calls the last account-wide role listing took (2 before the first).
    listing_calls: AtomicUsize,
    /// Calls the last account-wide group listing took.
    group_listing_calls: AtomicUsize,
}

impl Default for Reads {
    fn default() -> Reads {
        let w = window();
        // A zero window reads every key alone.
        let max = |n: usize| if w.is_zero() { 1 } else { n };
        Reads {
            services: Coalescer::new(w, max(SERVICES_PER_CALL)),
            groups: Coalescer::new(w, max(GROUPS_PER_CALL)),
            log_groups: Coalescer::new(w, max(LOG_GROUPS_PER_CALL)),
            repositories: Coalescer::new(w, max(REPOSITORIES_PER_CALL)),
            clusters: Coalescer::new(w, max(CLUSTERS_PER_CALL)),
            load_balancers: Coalescer::new(w, max(LOAD_BALANCERS_PER_CALL)),
            rules: Coalescer::new(w, max(RULES_PER_CALL)),
            target_groups: Coalescer::new(w, max(RULES_PER_CALL)),
            digests: Coalescer::new(w, max(IMAGES_PER_CALL)),
            projects: Coalescer::new(w, max(PROJECTS_PER_CALL)),
            parameters: Coalescer::new(w, max(PARAMETERS_PER_CALL)),
            roles: Coalescer::new(w, max(usize::MAX)),
            iam_groups: Coalescer::new(w, max(usize::MAX)),
            listing_calls: AtomicUsize::new(2),
            group_listing_calls: AtomicUsize::new(1),
        }
    }
}

impl Aws {
    /// The ECS service `name` of `cluster` with its tags, unless it is missing or INACTIVE (deleted).
    pub async fn read_service(&self, cluster: &str, name: &str) -> Result<Option<Service>, AwsError> {
        self.reads
            .services
            .load(cluster, name.to_string(), |names| async move {
                let out = self
                    .ecs()
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(names))
                    .include(ServiceField::Tags)
                    .send()
                    .await
                    .map_err(|e| aws_err("ecs:DescribeServices", e))?;
                let mut found = HashMap::new();
                for s in out.services().iter().filter(|s| s.status() != Some("INACTIVE")) {
                    for k in [s.service_name(), s.service_arn()].into_iter().flatten() {
                        found.insert(k.to_string(), s.clone());
                    }
                }
                Ok(found)
            })
            .await
    }

    /// The security group `id`, if it exists.
    pub async fn read_security_group(&self, id: &str) -> Result<Option<SecurityGroup>, AwsError> {
        self.reads
            .groups
            .load("", id.to_string(), |ids| async move {
                let filter = Filter::builder().name("group-id").set_values(Some(ids)).build();
                let mut found = HashMap::new();
                let mut token = None;
                loop {
                    let out =
                        self.ec2().describe_security_groups().filters(filter.clone()).set_next_token(token).send().await.map_err(|e| aws_err("ec2:DescribeSecurityGroups", e))?;
                    for g in out.security_groups() {
                        if let Some(id) = g.group_id() {
                            found.insert(id.to_string(), g.clone());
                        }
                    }
                    token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
                    if token.is_none() {
                        return Ok(found);
                    }
                }
            })
            .await
    }

    /// The log group `name` of the provider's region, if it exists.
    pub async fn read_log_group(&self, name: &str) -> Result<Option<LogGroup>, AwsError> {
        self.reads
            .log_groups
            .load("", name.to_string(), |names| async move {
                let mut found = HashMap::new();
                let mut token = None;
                loop {
                    let out = self
                        .logs()
                        .describe_log_groups()
                        .set_log_group_identifiers(Some(names.clone()))
                        .set_next_token(token)
                        .send()
                        .await
                        .map_err(|e| aws_err("logs:DescribeLogGroups", e))?;
                    for g in out.log_groups() {
                        if let Some(n) = g.log_group_name() {
                            found.insert(n.to_string(), g.clone());
                        }
                    }
                    token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
                    if token.is_none() {
                        return Ok(found);
                    }
                }
            })
            .await
    }

    /// The SSM parameter `name` (its value decrypted when `decrypt`), unless
    /// missing: GetParameters answers a missing name in `InvalidParameters`,
    /// not with an error. Decrypted and plain reads are separate batches.
    pub async fn read_parameter(&self, name: &str, decrypt: bool) -> Result<Option<aws_sdk_ssm::types::Parameter>, AwsError> {
        let group = if decrypt { "decrypted" } else { "plain" };
        self.reads
            .parameters
            .load(group, name.to_string(), |names| async move {
                let out = self.ssm().get_parameters().set_names(Some(names)).with_decryption(decrypt).send().await.map_err(|e| aws_err("ssm:GetParameters", e))?;
                Ok(out.parameters().iter().filter_map(|p| Some((p.name()?.to_string(), p.clone()))).collect())
            })
            .await
    }

    /// The ECS cluster `id` (name or ARN) with its settings, tags and configuration, unless missing or INACTIVE.
    pub async fn read_cluster(&self, id: &str) -> Result<Option<Cluster>, AwsError> {
        self.reads
            .clusters
            .load("", id.to_string(), |ids| async move {
                let out = self
                    .ecs()
                    .describe_clusters()
                    .set_clusters(Some(ids))
                    .include(ClusterField::Settings)
                    .include(ClusterField::Tags)
                    .include(ClusterField::Configurations)
                    .send()
                    .await
                    .map_err(|e| aws_err("ecs:DescribeClusters", e))?;
                let mut found = HashMap::new();
                for c in out.clusters().iter().filter(|c| c.status() != Some("INACTIVE")) {
                    for k in [c.cluster_name(), c.cluster_arn()].into_iter().flatten() {
                        found.insert(k.to_string(), c.clone());
                    }
                }
                Ok(found)
            })
            .await
    }

    /// The CodeBuild project `name`, if it exists.
    pub async fn read_project(&self, name: &str) -> Result<Option<Project>, AwsError> {
        self.reads
            .projects
            .load("", name.to_string(), |names| async move {
                let out = self.codebuild().batch_get_projects().set_names(Some(names)).send().await.map_err(|e| aws_err("codebuild:BatchGetProjects", e))?;
                let mut found = HashMap::new();
                for p in out.projects() {
                    for k in [p.name(), p.arn()].into_iter().flatten() {
                        found.insert(k.to_string(), p.clone());
                    }
                }
                Ok(found)
            })
            .await
    }

    /// The load balancer `arn`, if it exists.
    pub async fn read_load_balancer(&self, arn: &str) -> Result<Option<LoadBalancer>, AwsError> {
        let one = |arns: Vec<String>| async move {
            let out =
                self.elbv2().describe_load_balancers().set_load_balancer_arns(Some(arns)).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeLoadBalancers", e))?;
            Ok(out.load_balancers().iter().filter_map(|l| Some((l.load_balancer_arn()?.to_string(), l.clone()))).collect())
        };
        self.reads.load_balancers.load("", arn.to_string(), |arns| each_alone_if_one_is_missing(arns, one)).await
    }

    /// The target group `arn`, if it exists.
    pub async fn read_target_group(&self, arn: &str) -> Result<Option<TargetGroup>, AwsError> {
        let one = |arns: Vec<String>| async move {
            let out = self.elbv2().describe_target_groups().set_target_group_arns(Some(arns)).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTargetGroups", e))?;
            Ok(out.target_groups().iter().filter_map(|t| Some((t.target_group_arn()?.to_string(), t.clone()))).collect())
        };
        self.reads.target_groups.load("", arn.to_string(), |arns| each_alone_if_one_is_missing(arns, one)).await
    }

    /// The listener rule `arn`, if it exists.
    pub async fn read_rule(&self, arn: &str) -> Result<Option<Rule>, AwsError> {
        let one = |arns: Vec<String>| async move {
            let out = self.elbv2().describe_rules().set_rule_arns(Some(arns)).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeRules", e))?;
            Ok(out.rules().iter().filter_map(|r| Some((r.rule_arn()?.to_string(), r.clone()))).collect())
        };
        self.reads.rules.load("", arn.to_string(), |arns| each_alone_if_one_is_missing(arns, one)).await
    }

    /// The digest of `tag` in the ECR repository `repository` (of account
    /// `registry`, else the caller's); `None` when the tag or the repository does not exist.
    pub async fn read_image_digest(&self, registry: Option<&str>, repository: &str, tag: &str) -> Result<Option<String>, AwsError> {
        let group = format!("{}/{repository}", registry.unwrap_or(""));
        self.reads
            .digests
            .load(&group, tag.to_string(), |tags| async move {
                let one = |tags: Vec<String>| async move {
                    let ids = tags.iter().map(|t| ImageIdentifier::builder().image_tag(t).build()).collect();
                    let out = self
                        .ecr()
                        .describe_images()
                        .set_registry_id(registry.map(str::to_string))
                        .repository_name(repository)
                        .set_image_ids(Some(ids))
                        .send()
                        .await
                        .map_err(|e| aws_err("ecr:DescribeImages", e));
                    let out = match out {
                        Err(e) if e.is_code(&["RepositoryNotFoundException"]) => return Ok(HashMap::new()),
                        r => r?,
                    };
                    let mut found = HashMap::new();
                    for d in out.image_details() {
                        if let Some(dg) = d.image_digest() {
                            for t in d.image_tags().iter().filter(|t| tags.contains(t)) {
                                found.insert(t.clone(), dg.to_string());
                            }
                        }
                    }
                    Ok(found)
                };
                each_alone_if_one_is_missing(tags, one).await
            })
            .await
    }

    /// The ECR repository `name` of the provider's account, if it exists.
    pub async fn read_repository(&self, name: &str) -> Result<Option<Repository>, AwsError> {
        self.reads
            .repositories
            .load("", name.to_string(), |names| async move {
                let describe = |names: Vec<String>| async move {
                    let out = self.ecr().describe_repositories().set_repository_names(Some(names)).send().await.map_err(|e| aws_err("ecr:DescribeRepositories", e))?;
                    Ok::<_, AwsError>(out.repositories().iter().filter_map(|r| Some((r.repository_name()?.to_string(), r.clone()))).collect::<HashMap<_, _>>())
                };
                each_alone_if_one_is_missing(names, describe).await
            })
            .await
    }

    /// The role `ask.name` with the inline and attached policies it asks for, if it exists.
    pub async fn read_role(&self, ask: RoleAsk) -> Result<Option<RoleRead>, AwsError> {
        let name = ask.name.clone();
        let r = self.reads.roles.load("", ask, |asks| self.fetch_roles(asks)).await?;
        match r {
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(e)) => Err(e),
            None => {
                tracing::debug!(target: "cxflow::aws", role = name.as_str(), "role not found");
                Ok(None)
            }
        }
    }

    async fn fetch_roles(&self, asks: Vec<RoleAsk>) -> Result<HashMap<RoleAsk, RoleAnswer>, AwsError> {
        let one_by_one: usize = asks.iter().map(|a| 1 + a.inline.len() + usize::from(a.attached)).sum();
        let mut out = HashMap::new();
        let mut rest = asks;
        if rest.len() >= ROLE_LISTING_MIN && one_by_one > self.reads.listing_calls.load(Ordering::Relaxed) {
            let listing = self.list_roles(&rest).await;
            let (listed, calls) = match listing {
                Ok(l) => l,
                Err(e) if denied(&e) => {
                    tracing::info!(target: "cxflow::aws", error = %e, "the account's roles cannot be listed: roles are read one by one");
                    self.reads.listing_calls.store(usize::MAX, Ordering::Relaxed);
                    (HashMap::new(), usize::MAX)
                }
                Err(e) => return Err(e),
            };
            if calls != usize::MAX {
                self.reads.listing_calls.store(calls, Ordering::Relaxed);
            }
            tracing::debug!(target: "cxflow::aws", roles = rest.len(), calls, "roles read from the account's listing");
            let mut unsure = Vec::new();
            for ask in rest {
                match listed.get(&ask.name) {
                    Some(Listed { role: Some(r), detail: Some(d) }) => {
                        out.insert(ask.clone(), Ok(role_from_listing(r, d, &ask)));
                    }
                    // No listing (refused): read it alone.
                    _ if calls == usize::MAX => unsure.push(ask),
                    // In neither listing: it does not exist.
                    Some(Listed { role: None, detail: None }) | None => {}
                    // Created or deleted between the two listings: read it alone.
                    Some(_) => unsure.push(ask),
                }
            }
            rest = unsure;
        }
        let reads = futures::future::join_all(rest.iter().map(|a| self.read_role_alone(a))).await;
        for (ask, r) in rest.into_iter().zip(reads) {
            match r {
                Ok(None) => {}
                Ok(Some(r)) => {
                    out.insert(ask, Ok(r));
                }
                Err(e) => {
                    out.insert(ask, Err(e));
                }
            }
        }
        Ok(out)
    }

    /// The IAM group `ask.name` with its members and the inline policies it asks for, if it exists.
    pub async fn read_group(&self, ask: GroupAsk) -> Result<Option<GroupRead>, AwsError> {
        match self.reads.iam_groups.load("", ask, |asks| self.fetch_groups(asks)).await? {
            Some(Ok(g)) => Ok(Some(g)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }

    async fn fetch_groups(&self, asks: Vec<GroupAsk>) -> Result<HashMap<GroupAsk, GroupAnswer>, AwsError> {
        let one_by_one: usize = asks.iter().map(|a| 1 + a.inline.len()).sum();
        let mut out = HashMap::new();
        if asks.len() >= ROLE_LISTING_MIN && one_by_one > self.reads.group_listing_calls.load(Ordering::Relaxed) {
            match self.list_groups(&asks).await {
                Ok((listed, calls)) => {
                    self.reads.group_listing_calls.store(calls, Ordering::Relaxed);
                    for ask in asks {
                        if let Some(g) = listed.get(&ask.name) {
                            let mut g = g.clone();
                            g.inline.retain(|n, _| ask.inline.contains(n));
                            out.insert(ask, Ok(g));
                        }
                    }
                    return Ok(out);
                }
                Err(e) if denied(&e) => {
                    tracing::info!(target: "cxflow::aws", error = %e, "the account's groups cannot be listed: groups are read one by one");
                    self.reads.group_listing_calls.store(usize::MAX, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let reads = futures::future::join_all(asks.iter().map(|a| self.read_group_alone(a))).await;
        for (ask, r) in asks.into_iter().zip(reads) {
            match r {
                Ok(None) => {}
                Ok(Some(g)) => {
                    out.insert(ask, Ok(g));
                }
                Err(e) => {
                    out.insert(ask, Err(e));
                }
            }
        }
        Ok(out)
    }

    async fn read_group_alone(&self, ask: &GroupAsk) -> Result<Option<GroupRead>, AwsError> {
        let iam = self.iam();
        let mut pages = iam.get_group().group_name(&ask.name).into_paginator().send();
        let mut g: Option<GroupRead> = None;
        while let Some(page) = pages.next().await {
            match page.map_err(|e| aws_err("iam:GetGroup", e)) {
                Ok(p) => {
                    let r = g.get_or_insert_with(|| {
                        let group = p.group();
                        GroupRead {
                            name: group.map(|x| x.group_name().to_string()).unwrap_or_default(),
                            path: group.map(|x| x.path().to_string()).unwrap_or_default(),
                            arn: group.map(|x| x.arn().to_string()).unwrap_or_default(),
                            ..Default::default()
                        }
                    });
                    r.members.extend(p.users().iter().map(|u| u.user_name().to_string()));
                }
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let Some(mut g) = g else { return Ok(None) };
        for p in &ask.inline {
            match iam.get_group_policy().group_name(&ask.name).policy_name(p).send().await.map_err(|e| aws_err("iam:GetGroupPolicy", e)) {
                Ok(o) => {
                    g.inline.insert(p.clone(), o.policy_document().to_string());
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(g))
    }

    /// The asked groups with their inline policies and members, from one
    /// listing of the account's groups and users; and the calls it took.
    async fn list_groups(&self, asks: &[GroupAsk]) -> Result<(HashMap<String, GroupRead>, usize), AwsError> {
        let wanted: BTreeSet<&str> = asks.iter().map(|a| a.name.as_str()).collect();
        let mut listed: HashMap<String, GroupRead> = HashMap::new();
        let mut memberships: Vec<(String, String)> = Vec::new();
        let mut calls = 0;
        let mut marker = None;
        loop {
            let out = self
                .iam()
                .get_account_authorization_details()
                .filter(EntityType::Group)
                .filter(EntityType::User)
                .max_items(ROLES_PER_PAGE)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| aws_err("iam:GetAccountAuthorizationDetails", e))?;
            calls += 1;
            for d in out.group_detail_list().iter().filter(|d| d.group_name().is_some_and(|n| wanted.contains(n))) {
                let name = d.group_name().unwrap_or_default().to_string();
                listed.insert(
                    name.clone(),
                    GroupRead {
                        name,
                        path: d.path().unwrap_or_default().to_string(),
                        arn: d.arn().unwrap_or_default().to_string(),
                        inline: d.group_policy_list().iter().filter_map(|p| Some((p.policy_name()?.to_string(), p.policy_document()?.to_string()))).collect(),
                        members: BTreeSet::new(),
                    },
                );
            }
            for u in out.user_detail_list() {
                for g in u.group_list().iter().filter(|g| wanted.contains(g.as_str())) {
                    memberships.push((g.clone(), u.user_name().unwrap_or_default().to_string()));
                }
            }
            marker = out.marker().filter(|_| out.is_truncated()).map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        for (g, user) in memberships {
            if let Some(r) = listed.get_mut(&g) {
                r.members.insert(user);
            }
        }
        Ok((listed, calls))
    }

    async fn read_role_alone(&self, ask: &RoleAsk) -> Result<Option<RoleRead>, AwsError> {
        let iam = self.iam();
        let role = match iam.get_role().role_name(&ask.name).send().await.map_err(|e| aws_err("iam:GetRole", e)) {
            Ok(o) => match o.role {
                Some(r) => r,
                None => return Ok(None),
            },
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut r = RoleRead {
            name: role.role_name().to_string(),
            path: role.path().to_string(),
            arn: role.arn().to_string(),
            description: role.description().map(str::to_string),
            trust: role.assume_role_policy_document().map(str::to_string),
            tags: role.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
            ..Default::default()
        };
        for p in &ask.inline {
            match iam.get_role_policy().role_name(&ask.name).policy_name(p).send().await.map_err(|e| aws_err("iam:GetRolePolicy", e)) {
                Ok(o) => {
                    r.inline.insert(p.clone(), o.policy_document().to_string());
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        if ask.attached {
            let mut marker = None;
            loop {
                let out = iam.list_attached_role_policies().role_name(&ask.name).set_marker(marker).send().await.map_err(|e| aws_err("iam:ListAttachedRolePolicies", e))?;
                r.attached.extend(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)));
                marker = out.marker().filter(|_| out.is_truncated()).map(str::to_string);
                if marker.is_none() {
                    break;
                }
            }
        }
        Ok(Some(r))
    }

    /// The asked roles as both listings of the account's roles show them, and the calls it took.
    async fn list_roles(&self, asks: &[RoleAsk]) -> Result<(HashMap<String, Listed>, usize), AwsError> {
        let wanted: BTreeSet<&str> = asks.iter().map(|a| a.name.as_str()).collect();
        let iam = self.iam();
        let mut listed: HashMap<String, Listed> = HashMap::new();
        let mut calls = 0;
        let mut marker = None;
        loop {
            let out = iam.list_roles().max_items(ROLES_PER_PAGE).set_marker(marker).send().await.map_err(|e| aws_err("iam:ListRoles", e))?;
            calls += 1;
            for r in out.roles().iter().filter(|r| wanted.contains(r.role_name())) {
                listed.entry(r.role_name().to_string()).or_default().role = Some(r.clone());
            }
            marker = out.marker().filter(|_| out.is_truncated()).map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        let mut marker = None;
        loop {
            let out = iam
                .get_account_authorization_details()
                .filter(EntityType::Role)
                .max_items(ROLES_PER_PAGE)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| aws_err("iam:GetAccountAuthorizationDetails", e))?;
            calls += 1;
            for d in out.role_detail_list().iter().filter(|d| d.role_name().is_some_and(|n| wanted.contains(n))) {
                listed.entry(d.role_name().unwrap_or_default().to_string()).or_default().detail = Some(d.clone());
            }
            marker = out.marker().filter(|_| out.is_truncated()).map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        Ok((listed, calls))
    }
}

/// One call for `keys`, for APIs that fail the whole call when one key does
/// not exist (DescribeLoadBalancers, DescribeRules, DescribeImages): then
/// each key is asked alone, and a key not found alone is absent.
async fn each_alone_if_one_is_missing<F, Fut, V>(keys: Vec<String>, one: F) -> Result<HashMap<String, V>, AwsError>
where
    F: Fn(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<HashMap<String, V>, AwsError>>,
{
    match one(keys.clone()).await {
        Err(e) if e.is_not_found() && keys.len() > 1 => {
            let mut found = HashMap::new();
            for r in futures::future::join_all(keys.into_iter().map(|k| one(vec![k]))).await {
                match r {
                    Ok(m) => found.extend(m),
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        }
        Err(e) if e.is_not_found() => Ok(HashMap::new()),
        r => r,
    }
}

/// A listing the caller may not make (its policy allows the single reads only).
fn denied(e: &AwsError) -> bool {
    e.is_code(&["AccessDenied", "AccessDeniedException", "UnauthorizedOperation"])
}

#[derive(Default)]
struct Listed {
    role: Option<aws_sdk_iam::types::Role>,
    detail: Option<aws_sdk_iam::types::RoleDetail>,
}

fn role_from_listing(r: &aws_sdk_iam::types::Role, d: &aws_sdk_iam::types::RoleDetail, ask: &RoleAsk) -> RoleRead {
    RoleRead {
        name: r.role_name().to_string(),
        path: r.path().to_string(),
        arn: r.arn().to_string(),
        description: r.description().map(str::to_string),
        // The authorization details are the later of the two reads.
        trust: d.assume_role_policy_document().or(r.assume_role_policy_document()).map(str::to_string),
        tags: d.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
        inline: d
            .role_policy_list()
            .iter()
            .filter(|p| p.policy_name().is_some_and(|n| ask.inline.iter().any(|a| a == n)))
            .filter_map(|p| Some((p.policy_name()?.to_string(), p.policy_document()?.to_string())))
            .collect(),
        attached: if ask.attached { d.attached_managed_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect() } else { BTreeSet::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn missing(op: &str) -> AwsError {
        AwsError { operation: op.into(), code: Some("ImageNotFoundException".into()), message: "The image does not exist".into(), unreachable: false }
    }

    #[tokio::test]
    async fn one_missing_key_is_asked_again_key_by_key() {
        let asked = Mutex::new(Vec::new());
        let one = |keys: Vec<String>| {
            asked.lock().unwrap().push(keys.clone());
            async move {
                if keys.iter().any(|k| k == "gone") {
                    return Err(missing("ecr:DescribeImages"));
                }
                Ok(keys.into_iter().map(|k| (k.clone(), k.len())).collect::<HashMap<_, _>>())
            }
        };
        let got = each_alone_if_one_is_missing(vec!["a".into(), "gone".into(), "ccc".into()], one).await.expect("no error");
        assert_eq!(got, HashMap::from([("a".to_string(), 1), ("ccc".to_string(), 3)]));
        assert_eq!(asked.lock().unwrap().len(), 4, "the batch, then each key alone");
        // Any other error is every key's.
        let failing = |_keys: Vec<String>| async {
            Err::<HashMap<String, usize>, _>(AwsError { code: Some("AccessDenied".into()), message: "User is not authorized".into(), ..missing("ecr:DescribeImages") })
        };
        let e = each_alone_if_one_is_missing(vec!["a".into(), "b".into()], failing).await.expect_err("denied");
        assert!(denied(&e));
    }
}
