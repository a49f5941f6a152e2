//! The provider's functions: the small values of ECS (image URIs, parameter
//! ARNs, Fargate sizes) built and checked without string surgery. Each
//! error names the argument at fault; no function calls AWS.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;

use crate::engine::names::partition;
use crate::framework::{Function, FunctionError, Param, Signature, Type, Value};
use crate::resources::ecs_fargate_service::memory_options;

pub fn all() -> Vec<Arc<dyn Function>> {
    vec![Arc::new(EcrImageUri), Arc::new(SsmParameterArn), Arc::new(FargateMemoryOptions), Arc::new(SecretArns), Arc::new(ParseArn)]
}

fn matches(re: &str, s: &str) -> bool {
    Regex::new(&format!("^(?:{re})$")).is_ok_and(|r| r.is_match(s))
}

fn str_arg(args: &[Value], i: usize) -> &str {
    args.get(i).and_then(Value::as_str).unwrap_or_default()
}

fn account(args: &[Value], i: usize) -> Result<&str, FunctionError> {
    let a = str_arg(args, i);
    if matches("[0-9]{12}", a) { Ok(a) } else { Err(FunctionError::arg(i, format!("an AWS account ID is 12 digits, not {a:?}"))) }
}

fn region(args: &[Value], i: usize) -> Result<&str, FunctionError> {
    let r = str_arg(args, i);
    if matches("[a-z]{2}(-[a-z]+)+-[0-9]+", r) { Ok(r) } else { Err(FunctionError::arg(i, format!("{r:?} is not an AWS region name such as eu-west-2"))) }
}

fn param(name: &'static str, ty: Type, description: &'static str) -> Param {
    Param { name, ty, description }
}

pub const ECR_REPO_RE: &str = "(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*";
pub const ECR_REPO_RULE: &str = "an ECR repository name of 2 to 256 lowercase letters, digits, and . _ - / between them";
pub const DIGEST_RE: &str = "sha256:[a-f0-9]{64}";
pub const DIGEST_RULE: &str = "a digest `sha256:` followed by 64 lowercase hex digits";
pub const TAG_RE: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
pub const TAG_RULE: &str = "an image tag of up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`";
const SSM_NAME_RE: &str = "[A-Za-z0-9_./-]+";

struct EcrImageUri;

impl Function for EcrImageUri {
    fn signature(&self) -> Signature {
        Signature {
            name: "ecr_image_uri",
            summary: "The URI of an image in ECR",
            description: "The image URI of a repository in a private ECR registry, pinned by tag (`<registry>/<repository>:<tag>`) or by digest (`<registry>/<repository>@sha256:…`).",
            params: vec![
                param("account_id", Type::String, "The registry's AWS account ID (12 digits)."),
                param("region", Type::String, "The registry's region, such as `eu-west-2`."),
                param("repository", Type::String, "The repository name, such as `cxflow/app`."),
                param("tag_or_digest", Type::String, "An image tag, or a digest `sha256:` followed by 64 hex digits."),
            ],
            returns: Type::String,
        }
    }
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        let account = account(args, 0)?;
        let region = region(args, 1)?;
        let repo = str_arg(args, 2);
        if !(2..=256).contains(&repo.len()) || !matches(ECR_REPO_RE, repo) {
            return Err(FunctionError::arg(2, format!("{repo:?} is not an ECR repository name (2 to 256 lowercase letters, digits, and . _ - / between them)")));
        }
        let r = str_arg(args, 3);
        if !matches(DIGEST_RE, r) && !matches(TAG_RE, r) {
            return Err(FunctionError::arg(3, format!("{r:?} is neither an image tag (up to 128 letters, digits, _ . -) nor a digest sha256:<64 hex digits>")));
        }
        Ok(Value::string(ecr_image_uri(account, region, repo, r)))
    }
}

/// `<account>.dkr.ecr.<region>.<domain>/<repository>` then `@<digest>` or
/// `:<tag>`; the arguments are already checked. The data source `cxflow_image` uses it too.
pub fn ecr_image_uri(account: &str, region: &str, repository: &str, tag_or_digest: &str) -> String {
    let sep = if matches(DIGEST_RE, tag_or_digest) { '@' } else { ':' };
    let domain = if partition(region) == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("{account}.dkr.ecr.{region}.{domain}/{repository}{sep}{tag_or_digest}")
}

/// An SSM parameter name's problem, if it has one.
fn ssm_name_problem(name: &str) -> Option<String> {
    let bare = name.trim_start_matches('/');
    if bare.is_empty() || name.len() > 2048 || !matches(SSM_NAME_RE, name) {
        return Some(format!("{name:?} is not an SSM parameter name (letters, digits and _ . - /, at most 2048 characters)"));
    }
    if name.contains('/') && !name.starts_with('/') {
        return Some(format!("{name:?}: a name with a hierarchy starts with /"));
    }
    if name.contains("//") || name.ends_with('/') {
        return Some(format!("{name:?} has an empty path segment"));
    }
    let lower = bare.to_ascii_lowercase();
    if lower.starts_with("aws") || lower.starts_with("ssm") {
        return Some(format!("{name:?}: names starting with aws or ssm are reserved"));
    }
    None
}

fn ssm_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:{}:ssm:{region}:{account}:parameter/{}", partition(region), name.trim_start_matches('/'))
}

struct SsmParameterArn;

impl Function for SsmParameterArn {
    fn signature(&self) -> Signature {
        Signature {
            name: "ssm_parameter_arn",
            summary: "The ARN of an SSM parameter",
            description: "The ARN of an SSM parameter from its region, account and name (with or without the leading `/`), for a container's `secrets` or an IAM policy.",
            params: vec![
                param("region", Type::String, "The parameter's region, such as `eu-west-2`."),
                param("account_id", Type::String, "The parameter's AWS account ID (12 digits)."),
                param("name", Type::String, "The parameter's name, such as `/cxflow/production/gitlab/token`."),
            ],
            returns: Type::String,
        }
    }
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        let region = region(args, 0)?;
        let account = account(args, 1)?;
        let name = str_arg(args, 2);
        if let Some(p) = ssm_name_problem(name) {
            return Err(FunctionError::arg(2, p));
        }
        Ok(Value::string(ssm_arn(region, account, name)))
    }
}

struct FargateMemoryOptions;

impl Function for FargateMemoryOptions {
    fn signature(&self) -> Signature {
        Signature {
            name: "fargate_memory_options",
            summary: "The memory sizes Fargate allows for a CPU size",
            description: "Every task memory size in MiB that Fargate allows with `cpu` units, smallest first (for a variable's validation or a default).",
            params: vec![param("cpu", Type::Number, "Task CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384.")],
            returns: Type::list(Type::Number),
        }
    }
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        let cpu = args.first().and_then(Value::as_i64);
        match cpu.and_then(memory_options) {
            Some(m) => Ok(Value::List(m.into_iter().map(Value::int).collect())),
            None => Err(FunctionError::arg(0, "Fargate's task CPU sizes are 256, 512, 1024, 2048, 4096, 8192 and 16384")),
        }
    }
}

/// The parts of an ARN: partition, service, region, account and resource.
fn arn_parts(arn: &str) -> Option<[&str; 5]> {
    let mut it = arn.splitn(6, ':');
    let (Some("arn"), Some(p), Some(s), Some(r), Some(a), Some(res)) = (it.next(), it.next(), it.next(), it.next(), it.next(), it.next()) else { return None };
    (!p.is_empty() && !s.is_empty() && !res.is_empty()).then_some([p, s, r, a, res])
}

/// `checkmarx/password` → `CHECKMARX_PASSWORD`: a key as an environment variable name.
fn env_name(key: &str) -> String {
    let mut s: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

struct SecretArns;

impl Function for SecretArns {
    fn signature(&self) -> Signature {
        Signature {
            name: "secret_arns",
            summary: "A container's `secrets` map from SSM keys under one path",
            description: "Environment variable name → SSM parameter ARN for each key under a path prefix (as `cxflow_secret_sync` writes them): `checkmarx/password` becomes `CHECKMARX_PASSWORD`. Two keys that give the same name are refused.",
            params: vec![
                param("prefix_arn", Type::String, "The ARN of the path prefix, such as `arn:aws:ssm:eu-west-2:123456789012:parameter/cxflow/production`."),
                param("keys", Type::list(Type::String), "Keys relative to the prefix, such as `gitlab/token`."),
            ],
            returns: Type::map(Type::String),
        }
    }
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        let prefix = str_arg(args, 0);
        let bad_prefix = || FunctionError::arg(0, format!("{prefix:?} is not the ARN of an SSM parameter path (arn:<partition>:ssm:<region>:<account>:parameter/<path>)"));
        let [_, service, region, account, resource] = arn_parts(prefix).ok_or_else(bad_prefix)?;
        let path = resource.strip_prefix("parameter/").ok_or_else(bad_prefix)?;
        if service != "ssm" || region.is_empty() || !matches("[0-9]{12}", account) || path.is_empty() {
            return Err(bad_prefix());
        }
        let keys = args.get(1).and_then(Value::elements).unwrap_or_default();
        if keys.is_empty() {
            return Err(FunctionError::arg(1, "give at least one key"));
        }
        // Variable name → (key, ARN), so a clash can name both keys.
        let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
        for k in keys {
            let key = k.as_str().unwrap_or_default();
            let name = format!("/{}/{}", path.trim_matches('/'), key);
            if key.is_empty() || key.starts_with('/') {
                return Err(FunctionError::arg(1, format!("{key:?}: a key is relative to the prefix, without a leading /")));
            }
            if let Some(p) = ssm_name_problem(&name) {
                return Err(FunctionError::arg(1, format!("key {key:?}: {p}")));
            }
            let env = env_name(key);
            if let Some((other, _)) = out.get(&env) {
                return Err(FunctionError::arg(1, format!("keys {other:?} and {key:?} both give the variable {env}")));
            }
            out.insert(env, (key.to_string(), ssm_arn(region, account, &name)));
        }
        Ok(Value::Map(out.into_iter().map(|(env, (_, arn))| (env, Value::string(arn))).collect()))
    }
}

struct ParseArn;

impl Function for ParseArn {
    fn signature(&self) -> Signature {
        Signature {
            name: "parse_arn",
            summary: "The parts of an ARN",
            description: "An ARN's `partition`, `service`, `region`, `account_id` and `resource` (the region is empty for global services such as IAM, the account for S3 buckets).",
            params: vec![param("arn", Type::String, "An ARN, such as `arn:aws:ecs:eu-west-2:123456789012:service/prod/web`.")],
            returns: parsed_arn_type(),
        }
    }
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError> {
        let arn = str_arg(args, 0);
        let [p, s, r, a, res] = arn_parts(arn).ok_or_else(|| FunctionError::arg(0, format!("{arn:?} is not an ARN (arn:<partition>:<service>:<region>:<account>:<resource>)")))?;
        let fields = [("partition", p), ("service", s), ("region", r), ("account_id", a), ("resource", res)];
        Ok(Value::Object(fields.iter().map(|(k, v)| (k.to_string(), Value::string(*v))).collect()))
    }
}

fn parsed_arn_type() -> Type {
    Type::object(["partition", "service", "region", "account_id", "resource"].map(|k| (k, Type::String)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::string(v)
    }

    #[test]
    fn image_uris_by_tag_and_digest() {
        let f = EcrImageUri;
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(f.call(&[s("123456789012"), s("eu-west-2"), s("cxflow/app"), s("v1.2")]).unwrap(), s("123456789012.dkr.ecr.eu-west-2.amazonaws.com/cxflow/app:v1.2"));
        assert_eq!(f.call(&[s("123456789012"), s("cn-north-1"), s("app"), s(&digest)]).unwrap(), s(&format!("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app@{digest}")));
        assert_eq!(f.call(&[s("12345"), s("eu-west-2"), s("app"), s("v1")]).unwrap_err().argument, Some(0));
        assert_eq!(f.call(&[s("123456789012"), s("Europe"), s("app"), s("v1")]).unwrap_err().argument, Some(1));
        assert_eq!(f.call(&[s("123456789012"), s("eu-west-2"), s("App"), s("v1")]).unwrap_err().argument, Some(2));
        assert_eq!(f.call(&[s("123456789012"), s("eu-west-2"), s("app"), s("sha256:xyz")]).unwrap_err().argument, Some(3));
    }

    #[test]
    fn parameter_arns() {
        let f = SsmParameterArn;
        assert_eq!(f.call(&[s("us-gov-west-1"), s("123456789012"), s("/a/b")]).unwrap(), s("arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/a/b"));
        assert_eq!(f.call(&[s("eu-west-2"), s("123456789012"), s("flat")]).unwrap(), s("arn:aws:ssm:eu-west-2:123456789012:parameter/flat"));
        for bad in ["a/b", "/a//b", "/aws/x", "/a b", "/", "/a/"] {
            assert_eq!(f.call(&[s("eu-west-2"), s("123456789012"), s(bad)]).unwrap_err().argument, Some(2), "{bad}");
        }
    }

    #[test]
    fn memory_options_follow_fargate() {
        let f = FargateMemoryOptions;
        assert_eq!(f.call(&[Value::int(256)]).unwrap(), Value::List([512, 1024, 2048].map(Value::int).to_vec()));
        let Value::List(m) = f.call(&[Value::int(4096)]).unwrap() else { panic!() };
        assert_eq!((m.len(), m.first().and_then(Value::as_i64), m.last().and_then(Value::as_i64)), (23, Some(8192), Some(30720)));
        assert_eq!(f.call(&[Value::int(300)]).unwrap_err().argument, Some(0));
    }

    #[test]
    fn secrets_map_from_keys() {
        let f = SecretArns;
        let keys = Value::List(vec![s("gitlab/token"), s("checkmarx/password")]);
        let v = f.call(&[s("arn:aws:ssm:eu-west-2:123456789012:parameter/cxflow/production"), keys]).unwrap();
        let m = v.entries().unwrap();
        assert_eq!(m["GITLAB_TOKEN"], s("arn:aws:ssm:eu-west-2:123456789012:parameter/cxflow/production/gitlab/token"));
        assert_eq!(m["CHECKMARX_PASSWORD"], s("arn:aws:ssm:eu-west-2:123456789012:parameter/cxflow/production/checkmarx/password"));
        let clash = Value::List(vec![s("a/b"), s("a-b")]);
        let e = f.call(&[s("arn:aws:ssm:eu-west-2:123456789012:parameter/p"), clash]).unwrap_err();
        assert_eq!(e.argument, Some(1));
        assert!(e.text.contains("A_B"), "{}", e.text);
        assert_eq!(f.call(&[s("arn:aws:ecs:eu-west-2:123456789012:cluster/p"), Value::List(vec![s("k")])]).unwrap_err().argument, Some(0));
        assert_eq!(f.call(&[s("arn:aws:ssm:eu-west-2:123456789012:parameter/p"), Value::List(vec![])]).unwrap_err().argument, Some(1));
    }

    #[test]
    fn arns_parse() {
        let v = ParseArn.call(&[s("arn:aws:iam::123456789012:role/a/b:c")]).unwrap();
        assert_eq!((v.get("service").as_str(), v.get("region").as_str(), v.get("resource").as_str()), (Some("iam"), Some(""), Some("role/a/b:c")));
        assert_eq!(ParseArn.call(&[s("not-an-arn")]).unwrap_err().argument, Some(0));
        for f in all() {
            let sig = f.signature();
            assert!(!sig.params.is_empty() && !sig.summary.is_empty(), "{}", sig.name);
        }
    }
}
