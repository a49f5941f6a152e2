//! IAM roles: a trust policy for one service principal, AWS managed policies
//! and one inline policy. Policy documents may use `{account}`, `{partition}`
//! and `{region}`, filled in when the role is written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::{Common, account_id, tag_diff};
use crate::aws::{Aws, aws_err};
use crate::engine::{Cx, Found, Made, Node, NodeError, Observed};

pub struct RoleNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub service: String,
    /// Managed policy ARNs (may use `{partition}`).
    pub managed: Vec<String>,
    pub inline_name: String,
    pub inline: serde_json::Value,
}

/// IAM hands policy documents back URL-encoded; accept both forms.
pub fn parse_policy(doc: &str) -> Option<serde_json::Value> {
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

impl RoleNode {
    fn trust(&self) -> serde_json::Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": self.service}, "Action": "sts:AssumeRole"}]})
    }
    async fn fill(&self, aws: &Aws, s: &str) -> Result<String, NodeError> {
        let account = account_id(aws).await?;
        Ok(s.replace("{account}", &account).replace("{partition}", self.c.partition()).replace("{region}", &self.c.region))
    }
    /// The inline policy as it should be written.
    pub async fn inline_policy(&self, aws: &Aws) -> Result<String, NodeError> {
        self.fill(aws, &self.inline.to_string()).await
    }
    async fn managed_arns(&self, aws: &Aws) -> Result<BTreeSet<String>, NodeError> {
        let mut out = BTreeSet::new();
        for m in &self.managed {
            out.insert(self.fill(aws, m).await?);
        }
        Ok(out)
    }
    /// ARNs of the managed policies attached to the role now.
    async fn attached(&self, aws: &Aws) -> Result<BTreeSet<String>, NodeError> {
        Ok(aws
            .iam()
            .list_attached_role_policies()
            .role_name(&self.name)
            .send()
            .await
            .map_err(|e| aws_err("iam:ListAttachedRolePolicies", e))?
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect())
    }

    async fn reconcile(&self, aws: &Aws) -> Result<(), NodeError> {
        let iam = aws.iam();
        let want = self.managed_arns(aws).await?;
        let have = self.attached(aws).await?;
        for arn in want.difference(&have) {
            iam.attach_role_policy().role_name(&self.name).policy_arn(arn).send().await.map_err(|e| aws_err("iam:AttachRolePolicy", e))?;
        }
        for arn in have.difference(&want) {
            iam.detach_role_policy().role_name(&self.name).policy_arn(arn).send().await.map_err(|e| aws_err("iam:DetachRolePolicy", e))?;
        }
        iam.put_role_policy()
            .role_name(&self.name)
            .policy_name(&self.inline_name)
            .policy_document(self.inline_policy(aws).await?)
            .send()
            .await
            .map_err(|e| aws_err("iam:PutRolePolicy", e))?;
        iam.update_assume_role_policy().role_name(&self.name).policy_document(self.trust().to_string()).send().await.map_err(|e| aws_err("iam:UpdateAssumeRolePolicy", e))?;
        let current = self.tags(aws).await?;
        let (add, remove) = tag_diff(&current, &self.c.tags_for(&self.key, None));
        if !add.is_empty() {
            let tags = add.iter().filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok()).collect();
            iam.tag_role().role_name(&self.name).set_tags(Some(tags)).send().await.map_err(|e| aws_err("iam:TagRole", e))?;
        }
        if !remove.is_empty() {
            iam.untag_role().role_name(&self.name).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("iam:UntagRole", e))?;
        }
        Ok(())
    }
    async fn tags(&self, aws: &Aws) -> Result<BTreeMap<String, String>, NodeError> {
        let out = aws.iam().list_role_tags().role_name(&self.name).send().await.map_err(|e| aws_err("iam:ListRoleTags", e))?;
        Ok(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
    }
}

#[async_trait]
impl Node<Aws> for RoleNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn describe(&self) -> String {
        format!("IAM role {}", self.name)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"name": self.name, "service": self.service, "managed": self.managed, "inline": self.inline, "tags": self.c.tags_for(&self.key, None)})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        match aws.iam().get_role().role_name(&self.name).send().await {
            Err(e) => {
                let e = aws_err("iam:GetRole", e);
                if e.is_not_found() { Ok(Found::None) } else { Err(e.into()) }
            }
            Ok(out) => {
                let arn = out.role().map(|r| r.arn().to_string()).unwrap_or_default();
                let tags = self.tags(aws).await?;
                Ok(self.c.owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_found(arn, &format!("IAM role {}", self.name)))
            }
        }
    }
    async fn create(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let tags = self.c.tags_for(&self.key, None).iter().filter_map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build().ok()).collect();
        let out = aws
            .iam()
            .create_role()
            .role_name(&self.name)
            .assume_role_policy_document(self.trust().to_string())
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_err("iam:CreateRole", e))?;
        let arn = out.role().map(|r| r.arn().to_string()).unwrap_or_default();
        self.reconcile(aws).await.map_err(|e| e.with_id(&arn))?;
        Ok(Made::id(arn))
    }
    async fn read(&self, aws: &Aws, _id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        match aws.iam().get_role().role_name(&self.name).send().await {
            Err(e) => {
                let e = aws_err("iam:GetRole", e);
                return if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) };
            }
            Ok(_) => {}
        }
        let doc = aws.iam().get_role_policy().role_name(&self.name).policy_name(&self.inline_name).send().await;
        let have = doc.ok().and_then(|d| parse_policy(d.policy_document()));
        let want: Option<serde_json::Value> = serde_json::from_str(&self.inline_policy(aws).await?).ok();
        if have != want {
            return Ok(Observed::Drifted("inline policy differs".into()));
        }
        if self.attached(aws).await? != self.managed_arns(aws).await? {
            return Ok(Observed::Drifted("managed policies differ".into()));
        }
        Ok(Observed::InSync)
    }
    async fn update(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.reconcile(aws).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, _id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        let iam = aws.iam();
        if let Ok(out) = iam.list_attached_role_policies().role_name(&self.name).send().await {
            for p in out.attached_policies() {
                if let Some(arn) = p.policy_arn() {
                    let _ = iam.detach_role_policy().role_name(&self.name).policy_arn(arn).send().await;
                }
            }
        }
        if let Ok(out) = iam.list_role_policies().role_name(&self.name).send().await {
            for n in out.policy_names() {
                let _ = iam.delete_role_policy().role_name(&self.name).policy_name(n).send().await;
            }
        }
        match iam.delete_role().role_name(&self.name).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = aws_err("iam:DeleteRole", e);
                if e.is_not_found() { Ok(()) } else { Err(e.into()) }
            }
        }
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
}
