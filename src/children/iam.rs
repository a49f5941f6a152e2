//! IAM roles (a trust policy, managed policies and named inline policies),
//! IAM groups (inline policies and members) and OIDC identity providers.
//! Documents arrive filled in (`Common::fill`), so desired and observed
//! policies compare as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::{Value as Json, json};

use super::{Common, spec_tags, tag_diff, tags_json, user_visible};
use crate::aws::reads::{GroupAsk, RoleAsk};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

/// IAM hands policy documents back URL-encoded; accept both forms.
pub fn parse_policy(doc: &str) -> Option<Json> {
    serde_json::from_str(doc).ok().or_else(|| serde_json::from_str(&percent_decode(doc)).ok())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A trust policy letting `service` assume the role, with optional conditions
/// (e.g. `{"StringEquals": {"aws:SourceAccount": "123456789012"}}`).
pub fn service_trust(service: &str, condition: Option<Json>) -> Json {
    let mut st = json!({"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"});
    if let Some(c) = condition {
        st["Condition"] = c;
    }
    json!({"Version": "2012-10-17", "Statement": [st]})
}

/// For import: a role's attached managed policies and one inline policy,
/// which a role kind observes only as far as its configuration names them.
pub async fn role_policies(aws: &Aws, role: &str, inline: &str) -> Result<(Vec<String>, Option<Json>), crate::aws::AwsError> {
    let out = aws.iam().list_attached_role_policies().role_name(role).send().await.map_err(|e| aws_err("iam:ListAttachedRolePolicies", e))?;
    let mut managed: Vec<String> = out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect();
    managed.sort();
    let doc = match aws.iam().get_role_policy().role_name(role).policy_name(inline).send().await.map_err(|e| aws_err("iam:GetRolePolicy", e)) {
        Ok(o) => parse_policy(o.policy_document()),
        Err(e) if gone(&e) => None,
        Err(e) => return Err(e),
    };
    Ok((managed, doc))
}

fn iam_tags(t: &Tags) -> Vec<Tag> {
    t.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

fn gone(e: &AwsError) -> bool {
    e.is_not_found()
}

pub struct RoleNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    /// IAM path, `/` or `/a/b/`.
    pub path: String,
    pub description: String,
    pub trust: Json,
    /// Managed policy ARNs to attach.
    pub managed: Vec<String>,
    /// Inline policies: name → document.
    pub inline: BTreeMap<String, Json>,
    /// False when the configuration supplies a role of its own instead.
    pub wanted: bool,
}

impl RoleNode {
    pub fn arn(&self) -> String {
        format!("arn:{}:iam::{}:role{}{}", self.c.partition(), self.c.account, self.path, self.name)
    }
    fn managed_set(&self) -> BTreeSet<String> {
        self.managed.iter().cloned().collect()
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn get(&self, aws: &Aws) -> Result<Option<aws_sdk_iam::types::Role>, NodeError> {
        match aws.iam().get_role().role_name(&self.name).send().await.map_err(|e| aws_err("iam:GetRole", e)) {
            Ok(o) => Ok(o.role),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    async fn attached(&self, aws: &Aws) -> Result<BTreeSet<String>, NodeError> {
        let out = aws.iam().list_attached_role_policies().role_name(&self.name).send().await.map_err(|e| aws_err("iam:ListAttachedRolePolicies", e))?;
        Ok(out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect())
    }
    async fn put_inline(&self, aws: &Aws, name: &str, doc: &Json) -> Result<(), NodeError> {
        aws.iam().put_role_policy().role_name(&self.name).policy_name(name).policy_document(doc.to_string()).send().await.map_err(|e| aws_err("iam:PutRolePolicy", e))?;
        Ok(())
    }
    async fn retag(&self, aws: &Aws, current: &Tags) -> Result<(), NodeError> {
        let (add, remove) = tag_diff(current, &self.wanted_tags());
        if !add.is_empty() {
            aws.iam().tag_role().role_name(&self.name).set_tags(Some(iam_tags(&add))).send().await.map_err(|e| aws_err("iam:TagRole", e))?;
        }
        if !remove.is_empty() {
            aws.iam().untag_role().role_name(&self.name).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("iam:UntagRole", e))?;
        }
        Ok(())
    }
}

/// IAM's tags as the engine wants them (without AWS's own).
fn tag_map(t: &[Tag]) -> Tags {
    user_visible(t.iter().map(|t| (t.key().to_string(), t.value().to_string())))
}

fn role_tags(r: &aws_sdk_iam::types::Role) -> Tags {
    tag_map(r.tags())
}

#[async_trait]
impl Node<Aws> for RoleNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("IAM role {}", self.name)
    }
    fn spec(&self) -> Spec {
        let managed: Vec<String> = self.managed_set().into_iter().collect();
        spec(json!({
            "name": self.name, "path": self.path, "description": self.description, "trust": self.trust, "managed_policies": managed,
            "inline_policies": self.inline, "tags": tags_json(&self.wanted_tags()),
        }))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name", "path"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(self.arn()))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(match self.get(aws).await? {
            None => Found::None,
            Some(r) => Found::Tagged(Identity::new(r.arn()), role_tags(&r)),
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .iam()
            .create_role()
            .role_name(&self.name)
            .path(&self.path)
            .description(&self.description)
            .assume_role_policy_document(self.trust.to_string())
            .set_tags(Some(iam_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("iam:CreateRole", e))?;
        let arn = out.role().map(|r| r.arn().to_string()).filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("iam:CreateRole"))?;
        for (name, doc) in &self.inline {
            self.put_inline(aws, name, doc).await.map_err(|e| e.with_id(&arn))?;
        }
        for p in &self.managed {
            aws.iam().attach_role_policy().role_name(&self.name).policy_arn(p).send().await.map_err(|e| NodeError::from(aws_err("iam:AttachRolePolicy", e)).with_id(&arn))?;
        }
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, _id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let ask = RoleAsk { name: self.name.clone(), inline: self.inline.keys().cloned().collect(), attached: !self.managed.is_empty() };
        let Some(role) = aws.read_role(ask).await? else { return Ok(None) };
        let trust = role.trust.as_deref().and_then(parse_policy).unwrap_or(Json::Null);
        let inline: serde_json::Map<String, Json> = role.inline.iter().map(|(n, d)| (n.clone(), parse_policy(d).unwrap_or(Json::Null))).collect();
        let description = role.description.unwrap_or_default();
        let tags = user_visible(role.tags);
        let mut s = spec(json!({"name": role.name, "path": role.path, "description": description, "trust": trust, "inline_policies": inline, "tags": tags_json(&tags)}));
        if !self.managed.is_empty() {
            // Policies attached outside Terraform are left alone: only the configured ones are compared.
            let attached: Vec<String> = role.attached.intersection(&self.managed_set()).cloned().collect();
            s.insert("managed_policies".into(), json!(attached));
        }
        Ok(Some(s))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        if base.get("description").is_some_and(|d| d != &json!(self.description)) {
            aws.iam().update_role().role_name(&self.name).description(&self.description).send().await.map_err(|e| aws_err("iam:UpdateRole", e))?;
        }
        if base.get("trust") != Some(&self.trust) {
            aws.iam()
                .update_assume_role_policy()
                .role_name(&self.name)
                .policy_document(self.trust.to_string())
                .send()
                .await
                .map_err(|e| aws_err("iam:UpdateAssumeRolePolicy", e))?;
        }
        let had: BTreeMap<String, Json> =
            base.get("inline_policies").and_then(Json::as_object).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        for (name, doc) in &self.inline {
            if had.get(name) != Some(doc) {
                self.put_inline(aws, name, doc).await?;
            }
        }
        for name in had.keys().filter(|n| !self.inline.contains_key(*n)) {
            match aws.iam().delete_role_policy().role_name(&self.name).policy_name(name).send().await.map_err(|e| aws_err("iam:DeleteRolePolicy", e)) {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let had_managed: BTreeSet<String> =
            base.get("managed_policies").and_then(Json::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
        let want = self.managed_set();
        for p in want.difference(&had_managed) {
            aws.iam().attach_role_policy().role_name(&self.name).policy_arn(p).send().await.map_err(|e| aws_err("iam:AttachRolePolicy", e))?;
        }
        // Only what this resource attached before is detached: other attachments are someone else's.
        for p in had_managed.difference(&want) {
            match aws.iam().detach_role_policy().role_name(&self.name).policy_arn(p).send().await.map_err(|e| aws_err("iam:DetachRolePolicy", e)) {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.get(aws).await?.map(|r| role_tags(&r)).unwrap_or_default(),
        };
        self.retag(aws, &current).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, _id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        let iam = aws.iam();
        match iam.list_role_policies().role_name(&self.name).send().await.map_err(|e| aws_err("iam:ListRolePolicies", e)) {
            Ok(out) => {
                for p in out.policy_names() {
                    match iam.delete_role_policy().role_name(&self.name).policy_name(p).send().await.map_err(|e| aws_err("iam:DeleteRolePolicy", e)) {
                        Ok(_) => {}
                        Err(e) if gone(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        for p in self.attached(aws).await? {
            match iam.detach_role_policy().role_name(&self.name).policy_arn(&p).send().await.map_err(|e| aws_err("iam:DetachRolePolicy", e)) {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match iam.delete_role().role_name(&self.name).send().await.map_err(|e| aws_err("iam:DeleteRole", e)) {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, _id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.iam().tag_role().role_name(&self.name).set_tags(Some(iam_tags(&[(k, v)].into()))).send().await.map_err(|e| aws_err("iam:TagRole", e))?;
        Ok(())
    }
}

// ------------------------------------------------------------------ IAM groups

/// An IAM group with inline policies and (optionally) members. IAM groups
/// cannot carry tags, so ownership comes from the record and the group's
/// path: a group found under the child's name is taken over only when it
/// sits at the composite's own path and the dependency named in `owner_dep`
/// (a taggable child, judged by its lease first) is this composite's.
pub struct GroupNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    /// IAM path, `/a/b/`: the composite's own (`/cxflow/<name>/`).
    pub path: String,
    /// Inline policies: name → document.
    pub inline: BTreeMap<String, Json>,
    /// IAM users this resource adds; members added elsewhere are left alone.
    pub members: BTreeSet<String>,
    /// The child whose ownership the group's follows (created first, deleted after).
    pub owner_dep: String,
    pub wanted: bool,
}

impl GroupNode {
    pub fn arn(&self) -> String {
        format!("arn:{}:iam::{}:group{}{}", self.c.partition(), self.c.account, self.path, self.name)
    }
    /// The group and every member's name (GetGroup pages through the members).
    async fn get(&self, aws: &Aws) -> Result<Option<(aws_sdk_iam::types::Group, BTreeSet<String>)>, NodeError> {
        let mut pages = aws.iam().get_group().group_name(&self.name).into_paginator().send();
        let mut group = None;
        let mut users = BTreeSet::new();
        while let Some(page) = pages.next().await {
            match page.map_err(|e| aws_err("iam:GetGroup", e)) {
                Ok(p) => {
                    users.extend(p.users().iter().map(|u| u.user_name().to_string()));
                    if group.is_none() {
                        group = p.group().cloned();
                    }
                }
                Err(e) if gone(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(group.map(|g| (g, users)))
    }
    async fn put_inline(&self, aws: &Aws, name: &str, doc: &Json) -> Result<(), NodeError> {
        aws.iam().put_group_policy().group_name(&self.name).policy_name(name).policy_document(doc.to_string()).send().await.map_err(|e| aws_err("iam:PutGroupPolicy", e))?;
        Ok(())
    }
    async fn add_member(&self, aws: &Aws, user: &str) -> Result<(), NodeError> {
        aws.iam().add_user_to_group().group_name(&self.name).user_name(user).send().await.map_err(|e| aws_err("iam:AddUserToGroup", e))?;
        Ok(())
    }
    async fn remove_member(&self, aws: &Aws, user: &str) -> Result<(), NodeError> {
        match aws.iam().remove_user_from_group().group_name(&self.name).user_name(user).send().await.map_err(|e| aws_err("iam:RemoveUserFromGroup", e)) {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn string_set(v: Option<&Json>) -> BTreeSet<String> {
    v.and_then(Json::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[async_trait]
impl Node<Aws> for GroupNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        vec![self.owner_dep.as_str()]
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("IAM group {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({"name": self.name, "path": self.path, "inline_policies": self.inline, "members": self.members}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name", "path"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(self.arn()))
    }
    fn find_deps(&self) -> Vec<&str> {
        vec![self.owner_dep.as_str()]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(match self.get(aws).await? {
            None => Found::None,
            Some((g, _)) if g.path() == self.path => Found::Derived(Identity::new(g.arn())),
            Some((g, _)) => Found::Foreign(format!("{} exists under the IAM path {}, not {}, so this resource did not create it", self.describe(), g.path(), self.path)),
        })
    }
    async fn create(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws.iam().create_group().group_name(&self.name).path(&self.path).send().await.map_err(|e| aws_err("iam:CreateGroup", e))?;
        let arn = out.group().map(|g| g.arn().to_string()).filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("iam:CreateGroup"))?;
        // Each policy and each member is a call of its own and none depends on another: all at once.
        let policies = self.inline.iter().map(|(name, doc)| futures::future::Either::Left(self.put_inline(aws, name, doc)));
        let members = self.members.iter().map(|user| futures::future::Either::Right(self.add_member(aws, user)));
        futures::future::try_join_all(policies.chain(members)).await.map_err(|e| e.with_id(&arn))?;
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, _id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let ask = GroupAsk { name: self.name.clone(), inline: self.inline.keys().cloned().collect() };
        let Some(group) = aws.read_group(ask).await? else { return Ok(None) };
        let inline: serde_json::Map<String, Json> = group.inline.iter().map(|(n, d)| (n.clone(), parse_policy(d).unwrap_or(Json::Null))).collect();
        // Members added outside Terraform are someone else's: only the configured ones are compared.
        let members: BTreeSet<&String> = group.members.intersection(&self.members).collect();
        Ok(Some(spec(json!({
            "name": group.name, "path": group.path, "inline_policies": inline, "members": members, "all_members": group.members,
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let had: BTreeMap<String, Json> =
            base.get("inline_policies").and_then(Json::as_object).map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        for (name, doc) in &self.inline {
            if had.get(name) != Some(doc) {
                self.put_inline(aws, name, doc).await?;
            }
        }
        for name in had.keys().filter(|n| !self.inline.contains_key(*n)) {
            match aws.iam().delete_group_policy().group_name(&self.name).policy_name(name).send().await.map_err(|e| aws_err("iam:DeleteGroupPolicy", e)) {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let had_members = string_set(base.get("members"));
        for user in self.members.difference(&had_members) {
            self.add_member(aws, user).await?;
        }
        // Only members this resource added before are removed: other members are someone else's.
        for user in had_members.difference(&self.members) {
            self.remove_member(aws, user).await?;
        }
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, _id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // IAM deletes a group only once it has no members and no policies.
        let Some((_, users)) = self.get(aws).await? else { return Ok(()) };
        let iam = aws.iam();
        for user in &users {
            self.remove_member(aws, user).await?;
        }
        let names = match iam.list_group_policies().group_name(&self.name).send().await.map_err(|e| aws_err("iam:ListGroupPolicies", e)) {
            Ok(out) => out.policy_names().to_vec(),
            Err(e) if gone(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for p in names {
            match iam.delete_group_policy().group_name(&self.name).policy_name(&p).send().await.map_err(|e| aws_err("iam:DeleteGroupPolicy", e)) {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let attached = iam.list_attached_group_policies().group_name(&self.name).send().await.map_err(|e| aws_err("iam:ListAttachedGroupPolicies", e))?;
        for p in attached.attached_policies().iter().filter_map(|p| p.policy_arn()) {
            match iam.detach_group_policy().group_name(&self.name).policy_arn(p).send().await.map_err(|e| aws_err("iam:DetachGroupPolicy", e)) {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match iam.delete_group().group_name(&self.name).send().await.map_err(|e| aws_err("iam:DeleteGroup", e)) {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

// ------------------------------------------------------------------ IAM OIDC identity provider

/// An IAM OpenID Connect identity provider (one per issuer and account): its
/// issuer host, the client IDs (audiences) it accepts, and tags. No
/// thumbprints are sent: IAM secures the well-known issuers (GitHub's among
/// them) with its own library of trusted root certificates.
pub struct OidcProviderNode {
    pub c: Arc<Common>,
    pub key: String,
    /// The issuer without `https://`, e.g. `token.actions.githubusercontent.com`.
    pub host: String,
    pub client_ids: BTreeSet<String>,
    /// Why another provider for this issuer cannot be used as is, and what to do instead.
    pub taken_hint: String,
    pub wanted: bool,
}

impl OidcProviderNode {
    pub fn arn(&self) -> String {
        format!("arn:{}:iam::{}:oidc-provider/{}", self.c.partition(), self.c.account, self.host)
    }
    fn wanted_tags(&self) -> Tags {
        self.c.tags_for(&self.key, None)
    }
    async fn get(&self, aws: &Aws, arn: &str) -> Result<Option<aws_sdk_iam::operation::get_open_id_connect_provider::GetOpenIdConnectProviderOutput>, NodeError> {
        match aws.iam().get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await.map_err(|e| aws_err("iam:GetOpenIDConnectProvider", e)) {
            Ok(o) => Ok(Some(o)),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    /// The account's provider for this issuer, judged by its owner tag.
    async fn look(&self, aws: &Aws) -> Result<Found, NodeError> {
        let arn = self.arn();
        let Some(o) = self.get(aws, &arn).await? else { return Ok(Found::None) };
        let tags = provider_tags(&o);
        // There is one provider per issuer and account: one this provider did not make
        // for this composite is used by naming it, never taken over.
        Ok(match tags.get(crate::engine::OWNER_TAG) {
            Some(owner) if owner == self.c.owner.tag_value() => Found::Tagged(Identity::new(arn), tags),
            Some(owner) => Found::Foreign(format!("{} exists and belongs to {owner}. {}", self.describe(), self.taken_hint)),
            None => Found::Foreign(format!("{} exists and was not created by this provider. {}", self.describe(), self.taken_hint)),
        })
    }
    /// Why the account's provider for this issuer cannot be this composite's,
    /// when one exists that is not (the message `find` refuses it with), for a
    /// check at plan time.
    pub async fn taken(&self, aws: &Aws) -> Result<Option<String>, NodeError> {
        Ok(match self.look(aws).await? {
            Found::Foreign(why) => Some(why),
            _ => None,
        })
    }
    /// Roles whose trust names provider `arn` as their federated principal.
    async fn trusting_roles(aws: &Aws, arn: &str) -> Result<Vec<String>, NodeError> {
        let mut found = Vec::new();
        let mut pages = aws.iam().list_roles().into_paginator().send();
        while let Some(page) = pages.next().await {
            for r in page.map_err(|e| aws_err("iam:ListRoles", e))?.roles() {
                let trust = r.assume_role_policy_document().and_then(parse_policy).unwrap_or(Json::Null);
                let statements = match &trust["Statement"] {
                    Json::Array(a) => a.clone(),
                    one => vec![one.clone()],
                };
                let names = |p: &Json| match p {
                    Json::String(s) => s == arn,
                    Json::Array(a) => a.iter().any(|x| x == arn),
                    _ => false,
                };
                if statements.iter().any(|st| names(&st["Principal"]["Federated"])) {
                    found.push(r.role_name().to_string());
                }
            }
        }
        Ok(found)
    }
    async fn retag(&self, aws: &Aws, arn: &str, current: &Tags) -> Result<(), NodeError> {
        let (add, remove) = tag_diff(current, &self.wanted_tags());
        if !add.is_empty() {
            aws.iam()
                .tag_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .set_tags(Some(iam_tags(&add)))
                .send()
                .await
                .map_err(|e| aws_err("iam:TagOpenIDConnectProvider", e))?;
        }
        if !remove.is_empty() {
            aws.iam()
                .untag_open_id_connect_provider()
                .open_id_connect_provider_arn(arn)
                .set_tag_keys(Some(remove))
                .send()
                .await
                .map_err(|e| aws_err("iam:UntagOpenIDConnectProvider", e))?;
        }
        Ok(())
    }
}

fn provider_tags(o: &aws_sdk_iam::operation::get_open_id_connect_provider::GetOpenIdConnectProviderOutput) -> Tags {
    tag_map(o.tags())
}

#[async_trait]
impl Node<Aws> for OidcProviderNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn describe(&self) -> String {
        format!("IAM OIDC provider {}", self.host)
    }
    fn spec(&self) -> Spec {
        spec(json!({"url": self.host, "client_ids": self.client_ids, "tags": tags_json(&self.wanted_tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["url"]
    }
    fn planned_identity(&self) -> Option<Identity> {
        Some(Identity::new(self.arn()))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        self.look(aws).await
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .iam()
            .create_open_id_connect_provider()
            .url(format!("https://{}", self.host))
            .set_client_id_list(Some(self.client_ids.iter().cloned().collect()))
            .set_tags(Some(iam_tags(&self.c.create_tags(&self.key, None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("iam:CreateOpenIDConnectProvider", e))?;
        let arn = out.open_id_connect_provider_arn().filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("iam:CreateOpenIDConnectProvider"))?;
        Ok(Made::id(arn))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(o) = self.get(aws, &id.id).await? else { return Ok(None) };
        let url = o.url().unwrap_or_default().trim_start_matches("https://").to_string();
        let client_ids: BTreeSet<&str> = o.client_id_list().iter().map(String::as_str).collect();
        Ok(Some(spec(json!({"url": url, "client_ids": client_ids, "tags": tags_json(&provider_tags(&o))}))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let had = string_set(base.get("client_ids"));
        for c in self.client_ids.difference(&had) {
            aws.iam()
                .add_client_id_to_open_id_connect_provider()
                .open_id_connect_provider_arn(&id.id)
                .client_id(c)
                .send()
                .await
                .map_err(|e| aws_err("iam:AddClientIDToOpenIDConnectProvider", e))?;
        }
        for c in had.difference(&self.client_ids) {
            aws.iam()
                .remove_client_id_from_open_id_connect_provider()
                .open_id_connect_provider_arn(&id.id)
                .client_id(c)
                .send()
                .await
                .map_err(|e| aws_err("iam:RemoveClientIDFromOpenIDConnectProvider", e))?;
        }
        let current = match spec_tags(base) {
            Some(t) => t,
            None => self.get(aws, &id.id).await?.map(|o| provider_tags(&o)).unwrap_or_default(),
        };
        self.retag(aws, &id.id, &current).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        // The account's one provider for an issuer may be named by other
        // states' roles (another registry's `oidc_provider_arn`): deleting it
        // would lock their workflows out, so it stays while any role trusts it.
        // This composite's own roles are deleted before it (they come `After`).
        let users = Self::trusting_roles(aws, &id.id).await?;
        if !users.is_empty() {
            tracing::warn!(target: "cxflow::children::iam", provider = %id.id, roles = ?users, "{} is kept: roles outside this resource still trust it", self.describe());
            return Ok(());
        }
        match aws.iam().delete_open_id_connect_provider().open_id_connect_provider_arn(&id.id).send().await.map_err(|e| aws_err("iam:DeleteOpenIDConnectProvider", e)) {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.iam()
            .tag_open_id_connect_provider()
            .open_id_connect_provider_arn(&id.id)
            .set_tags(Some(iam_tags(&[(k, v)].into())))
            .send()
            .await
            .map_err(|e| aws_err("iam:TagOpenIDConnectProvider", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn policies_parse_plain_and_url_encoded() {
        assert_eq!(super::parse_policy("%7B%22a%22%3A1%7D"), Some(serde_json::json!({"a": 1})));
        assert_eq!(super::parse_policy("{\"a\": 1}"), Some(serde_json::json!({"a": 1})));
        assert_eq!(super::parse_policy("not json"), None);
    }

    #[test]
    fn service_trust_carries_conditions() {
        let t = super::service_trust("ecs-tasks.amazonaws.com", Some(serde_json::json!({"StringEquals": {"aws:SourceAccount": "1"}})));
        assert_eq!(t["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"], "1");
        assert_eq!(t["Statement"][0]["Principal"]["Service"], "ecs-tasks.amazonaws.com");
    }
}
