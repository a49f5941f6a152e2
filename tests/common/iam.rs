//! The IAM lint every composite's roles and groups go through: each inline policy passes
//! `parliament` with no finding and grants no reading of secrets, decryption
//! or image push on `*`; each managed policy attached to a role is one that
//! docs/design.md lists by ARN (the docs say exactly what each role may do).

use super::aws::Aws;
use super::repo_root;

/// One role's (or group's) policies: inline (name, document) and attached managed ARNs.
#[derive(Debug)]
pub struct RolePolicies {
    pub role: String,
    pub inline: Vec<(String, String)>,
    pub managed: Vec<String>,
}

/// The policies of the roles named (role names, not ARNs).
pub async fn policies(aws: &Aws, roles: &[String]) -> Vec<RolePolicies> {
    let mut out = Vec::new();
    for role in roles {
        let mut inline = Vec::new();
        for name in aws.iam.list_role_policies().role_name(role).send().await.unwrap().policy_names() {
            let d = aws.iam.get_role_policy().role_name(role).policy_name(name).send().await.unwrap();
            let doc = cxflow::children::iam::parse_policy(d.policy_document()).map(|v| v.to_string()).unwrap_or_else(|| panic!("policy {role}/{name} does not parse"));
            inline.push((name.to_string(), doc));
        }
        let attached = aws.iam.list_attached_role_policies().role_name(role).send().await.unwrap();
        let managed = attached.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect();
        out.push(RolePolicies { role: role.clone(), inline, managed });
    }
    out
}

/// The policies of the groups named (group names, not ARNs), in the same shape.
pub async fn group_policies(aws: &Aws, groups: &[String]) -> Vec<RolePolicies> {
    let mut out = Vec::new();
    for group in groups {
        let mut inline = Vec::new();
        for name in aws.iam.list_group_policies().group_name(group).send().await.unwrap().policy_names() {
            let d = aws.iam.get_group_policy().group_name(group).policy_name(name).send().await.unwrap();
            let doc = cxflow::children::iam::parse_policy(d.policy_document()).map(|v| v.to_string()).unwrap_or_else(|| panic!("policy {group}/{name} does not parse"));
            inline.push((name.to_string(), doc));
        }
        let attached = aws.iam.list_attached_group_policies().group_name(group).send().await.unwrap();
        let managed = attached.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect();
        out.push(RolePolicies { role: format!("group {group}"), inline, managed });
    }
    out
}

/// Actions that must never apply to every resource.
fn forbidden_on_star(a: &str) -> bool {
    a == "ssm:*"
        || a == "kms:Decrypt"
        || a == "secretsmanager:GetSecretValue"
        || a == "ssm:GetParameters"
        || a == "ecr:*"
        || ["ecr:Put", "ecr:Upload", "ecr:InitiateLayer", "ecr:CompleteLayer"].iter().any(|p| a.starts_with(p))
}

/// Every finding for these roles; empty when they are what the docs say.
pub fn findings(roles: &[RolePolicies]) -> Vec<String> {
    let design = std::fs::read_to_string(repo_root().join("docs/design.md")).unwrap();
    let linter = repo_root().join(".tools/venv/bin/parliament");
    let mut out = Vec::new();
    for r in roles {
        for arn in &r.managed {
            if !design.contains(arn.as_str()) {
                out.push(format!("{}: managed policy {arn} is attached but docs/design.md does not list it", r.role));
            }
        }
        for (name, doc) in &r.inline {
            let run = std::process::Command::new(&linter).args(["--string", doc, "--json"]).stdin(std::process::Stdio::null()).output().unwrap();
            assert!(run.status.success() || !run.stdout.is_empty(), "parliament ran: {}", String::from_utf8_lossy(&run.stderr));
            let found = String::from_utf8_lossy(&run.stdout);
            if !found.trim().is_empty() {
                out.push(format!("{}/{name}: parliament: {found}\n{doc}", r.role));
            }
            let v: serde_json::Value = serde_json::from_str(doc).unwrap();
            for st in v["Statement"].as_array().into_iter().flatten() {
                let list = |x: &serde_json::Value| -> Vec<String> {
                    match x {
                        serde_json::Value::String(s) => vec![s.clone()],
                        serde_json::Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                        _ => vec![],
                    }
                };
                let star = list(&st["Resource"]).iter().any(|r| r == "*");
                for a in list(&st["Action"]).iter().filter(|a| star && forbidden_on_star(a)) {
                    out.push(format!("{}/{name} grants {a} on *: {doc}", r.role));
                }
            }
        }
    }
    out
}
