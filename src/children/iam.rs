//! IAM roles: a trust policy, managed policies and named inline policies.
//! Documents arrive filled in (`Common::fill`), so desired and observed
//! policies compare as JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde_json::{Value as Json, json};

use super::{Common, spec_tags, tag_diff, tags_json, user_visible};
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

fn role_tags(r: &aws_sdk_iam::types::Role) -> Tags {
    user_visible(r.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())))
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
        let Some(role) = self.get(aws).await? else { return Ok(None) };
        let trust = role.assume_role_policy_document().and_then(parse_policy).unwrap_or(Json::Null);
        let mut inline = serde_json::Map::new();
        for name in self.inline.keys() {
            match aws.iam().get_role_policy().role_name(&self.name).policy_name(name).send().await.map_err(|e| aws_err("iam:GetRolePolicy", e)) {
                Ok(o) => {
                    inline.insert(name.clone(), parse_policy(o.policy_document()).unwrap_or(Json::Null));
                }
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let description = role.description().unwrap_or_default();
        let mut s = spec(
            json!({"name": role.role_name(), "path": role.path(), "description": description, "trust": trust, "inline_policies": inline, "tags": tags_json(&role_tags(&role))}),
        );
        if !self.managed.is_empty() {
            // Policies attached outside Terraform are left alone: only the configured ones are compared.
            let attached: Vec<String> = self.attached(aws).await?.intersection(&self.managed_set()).cloned().collect();
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
