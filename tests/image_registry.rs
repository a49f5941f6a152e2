//! cxflow_image_registry end to end: seed 002's three tables reproduced by
//! the defaults and read back from IAM policy by policy, the GitHub trust of
//! every stage, lifecycle (expire and archive) and scanning, an image pushed
//! with exactly the write level's calls, cross-account pull through a
//! repository policy, membership, a level changed in place, import, two
//! registries on the account's one OIDC provider, KMS encryption, and
//! destroy leaving what was there before.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::aws::{Aws, OWNER_TAG, children};
use common::*;
use serde_json::Value as Json;

const ACCOUNT: &str = "123456789012";
const PROVIDER_ARN: &str = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
const REPO: &str = "example-org/sample-image";

/// Seed 002's tables: stage → identity → levels ("End Users" and the rest as the seed's README has them).
fn seed_tables() -> BTreeMap<&'static str, BTreeMap<&'static str, Vec<&'static str>>> {
    BTreeMap::from([
        (
            "development",
            BTreeMap::from([("developers", vec!["authorize", "read", "write", "metadata"]), ("end_users", vec![]), ("github", vec!["authorize", "read", "write", "metadata"])]),
        ),
        ("master", BTreeMap::from([("developers", vec!["authorize", "read", "metadata"]), ("end_users", vec![]), ("github", vec!["authorize", "write"])])),
        ("release", BTreeMap::from([("developers", vec!["authorize", "read", "metadata"]), ("end_users", vec!["authorize", "read"]), ("github", vec!["authorize", "write"])])),
    ])
}

/// What each level must grant, from the ECR user guide (pull, push) and the
/// service authorization reference (the describe and list actions).
fn level_actions(level: &str) -> BTreeSet<&'static str> {
    let v: &[&str] = match level {
        "authorize" => &["ecr:GetAuthorizationToken"],
        "read" => &["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
        "write" => &["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"],
        "metadata" => &[
            "ecr:DescribeImageScanFindings",
            "ecr:DescribeImages",
            "ecr:DescribeRepositories",
            "ecr:GetLifecyclePolicy",
            "ecr:GetLifecyclePolicyPreview",
            "ecr:GetRepositoryPolicy",
            "ecr:ListImages",
            "ecr:ListTagsForResource",
        ],
        other => panic!("no level {other}"),
    };
    v.iter().copied().collect()
}

fn sid(level: &str) -> String {
    let mut c = level.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

fn group_suffix(who: &str) -> &'static str {
    match who {
        "developers" => "developers",
        "end_users" => "end-users",
        _ => "github",
    }
}

fn repo_arn(stage: &str) -> String {
    format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/sample-image/{stage}")
}

fn config(body: &str) -> String {
    format!("{}\n{body}\n", provider_block(""))
}

/// Who may pull from the release repository from other accounts in the seed's test.
const PULLERS: &str = r#"pull_principals = ["111122223333", "arn:aws:iam::444455556666:role/deploy"]"#;

fn seed_config(master_developers: &str, release: &str) -> String {
    config(&format!(
        r#"
resource "cxflow_image_registry" "sample" {{
  name = "sample-image"
  github {{
    repository = "{REPO}"
  }}
  stages = {{
    development = {{}}
    master      = {{ {master_developers} }}
    release     = {{
      image_tag_mutability = "IMMUTABLE"
      {release}
    }}
  }}
  image_lifecycle {{
    keep_tagged          = 30
    expire_untagged_days = 7
  }}
  members {{
    developers = ["alice"]
    end_users  = ["bob"]
  }}
  deployment_role {{
    github_environment = "Deployment"
    policy_json = jsonencode({{
      Version   = "2012-10-17"
      Statement = [{{ Effect = "Allow", Action = "cloudformation:DescribeStacks", Resource = "arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/sample-*/*" }}]
    }})
  }}
  tags = {{ App = "sample-image" }}
}}
"#
    ))
}

fn list(v: &Json) -> BTreeSet<String> {
    match v {
        Json::String(s) => BTreeSet::from([s.clone()]),
        Json::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => BTreeSet::new(),
    }
}

/// Every statement of a policy as `Sid → (actions, resources)`; the document is
/// Allow-only with nothing else in it.
fn statements(doc: &Json) -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for st in doc["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow", "{doc}");
        assert!(st.get("Condition").is_none() && st.get("NotAction").is_none() && st.get("NotResource").is_none(), "{doc}");
        out.insert(st["Sid"].as_str().unwrap().to_string(), (list(&st["Action"]), list(&st["Resource"])));
    }
    out
}

/// The policy granting `levels` on stage `stage`'s repository must be exactly this.
fn assert_grants(what: &str, doc: &Json, stage: &str, levels: &[&str]) {
    let got = statements(doc);
    let want: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = levels
        .iter()
        .map(|l| {
            let resource = if *l == "authorize" { "*".to_string() } else { repo_arn(stage) };
            (sid(l), (level_actions(l).into_iter().map(str::to_string).collect(), BTreeSet::from([resource])))
        })
        .collect();
    assert_eq!(got, want, "{what}: exactly the levels {levels:?} on {stage}'s repository");
}

async fn group_policy(aws: &Aws, group: &str) -> Option<(String, Json, BTreeSet<String>)> {
    let g = match aws.iam.get_group().group_name(group).send().await {
        Ok(g) => g,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_entity_exception()) => return None,
        Err(e) => panic!("GetGroup {group}: {e:?}"),
    };
    let names = aws.iam.list_group_policies().group_name(group).send().await.unwrap().policy_names().to_vec();
    assert_eq!(names, ["cxflow-registry"], "{group}: one inline policy");
    assert!(aws.iam.list_attached_group_policies().group_name(group).send().await.unwrap().attached_policies().is_empty(), "{group}: no managed policy");
    let d = aws.iam.get_group_policy().group_name(group).policy_name(&names[0]).send().await.unwrap();
    let users = g.users().iter().map(|u| u.user_name().to_string()).collect();
    Some((g.group().unwrap().path().to_string(), cxflow::children::iam::parse_policy(d.policy_document()).unwrap(), users))
}

async fn role(aws: &Aws, name: &str) -> (Json, BTreeMap<String, Json>) {
    let r = aws.iam.get_role().role_name(name).send().await.unwrap_or_else(|e| panic!("GetRole {name}: {e:?}"));
    let r = r.role().unwrap();
    assert_eq!(r.path(), "/cxflow/sample-image/", "{name}: under the registry's IAM path");
    let trust = cxflow::children::iam::parse_policy(r.assume_role_policy_document().unwrap()).unwrap();
    let mut inline = BTreeMap::new();
    for p in aws.iam.list_role_policies().role_name(name).send().await.unwrap().policy_names() {
        let d = aws.iam.get_role_policy().role_name(name).policy_name(p).send().await.unwrap();
        inline.insert(p.clone(), cxflow::children::iam::parse_policy(d.policy_document()).unwrap());
    }
    assert!(aws.iam.list_attached_role_policies().role_name(name).send().await.unwrap().attached_policies().is_empty(), "{name}: no managed policy");
    (trust, inline)
}

/// IAM's `StringLike`: `*` matches any run of characters, `?` any one.
fn like(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    fn go(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    go(&p, &s)
}

/// Whether a GitHub Actions token with these claims may assume the role,
/// evaluating the trust's one statement as IAM does.
fn admits(trust: &Json, aud: &str, sub: &str) -> bool {
    let st = &trust["Statement"].as_array().unwrap()[..];
    assert_eq!(st.len(), 1, "{trust}");
    let st = &st[0];
    assert_eq!((st["Effect"].as_str(), st["Action"].as_str()), (Some("Allow"), Some("sts:AssumeRoleWithWebIdentity")), "{trust}");
    assert_eq!(st["Principal"]["Federated"], PROVIDER_ARN, "{trust}");
    let claims = BTreeMap::from([("token.actions.githubusercontent.com:aud", aud), ("token.actions.githubusercontent.com:sub", sub)]);
    let cond = st["Condition"].as_object().unwrap();
    assert!(cond.keys().all(|op| op == "StringEquals" || op == "StringLike"), "{trust}");
    let aud_pinned = cond.get("StringEquals").is_some_and(|c| c["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com");
    assert!(aud_pinned, "aud is pinned to sts.amazonaws.com: {trust}");
    cond.iter().all(|(op, keys)| {
        keys.as_object().unwrap().iter().all(|(k, want)| {
            let have = claims.get(k.as_str()).unwrap_or_else(|| panic!("the trust tests an unexpected key {k}: {trust}"));
            list(want).iter().any(|w| if op == "StringLike" { like(w, have) } else { w == have })
        })
    })
}

fn sub(tail: &str) -> String {
    format!("repo:{REPO}:{tail}")
}

fn users(m: &Moto, names: &[&str]) {
    let aws = Aws::new(m);
    block_on(async {
        for n in names {
            aws.iam.create_user().user_name(*n).send().await.unwrap();
        }
    });
}

/// Push one image with the write level's calls: upload a layer and a config
/// blob, then put the manifest naming them.
async fn push(aws: &Aws, repository: &str, tag: &str) -> String {
    use sha2::Digest;
    let mut digests = Vec::new();
    for blob in [b"layer-bytes".to_vec(), b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec()] {
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(&blob));
        let up = aws.ecr.initiate_layer_upload().repository_name(repository).send().await.unwrap();
        let id = up.upload_id().unwrap().to_string();
        aws.ecr
            .upload_layer_part()
            .repository_name(repository)
            .upload_id(&id)
            .part_first_byte(0)
            .part_last_byte(blob.len() as i64 - 1)
            .layer_part_blob(aws_sdk_ecr::primitives::Blob::new(blob.clone()))
            .send()
            .await
            .unwrap();
        aws.ecr.complete_layer_upload().repository_name(repository).upload_id(&id).layer_digests(&digest).send().await.unwrap();
        digests.push((digest, blob.len()));
    }
    let avail = aws.ecr.batch_check_layer_availability().repository_name(repository).layer_digests(&digests[0].0).send().await.unwrap();
    assert_eq!(avail.layers()[0].layer_availability().map(|a| a.as_str()), Some("AVAILABLE"), "the uploaded layer is in {repository}");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": digests[1].1, "digest": digests[1].0},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": digests[0].1, "digest": digests[0].0}],
    })
    .to_string();
    aws.ecr.put_image().repository_name(repository).image_manifest(&manifest).image_tag(tag).send().await.unwrap();
    manifest
}

#[test]
fn the_seed_tables_trust_lifecycle_and_a_push_with_defaults() {
    let moto = Moto::start();
    users(&moto, &["alice", "bob", "carol"]);
    let aws = Aws::new(&moto);
    let before = Snapshot::take(&moto);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));

    // Step 1: apply the seed's three stages with every level left to its default.
    wd.write("main.tf", &seed_config("", PULLERS));
    wd.apply().expect_ok("apply");
    assert_eq!(wd.plan_code().code, 0, "the plan after the apply is empty");

    // Step 2: every stage × identity: a group with exactly the table's levels, or no group.
    block_on(async {
        let mut linted = Vec::new();
        for (stage, table) in seed_tables() {
            for (who, levels) in &table {
                let group = format!("sample-image-{stage}-{}", group_suffix(who));
                match group_policy(&aws, &group).await {
                    None => assert!(levels.is_empty(), "{group} exists: {who} has {levels:?} in {stage}"),
                    Some((path, doc, _)) => {
                        assert!(!levels.is_empty(), "{group} grants {doc} though the table gives {who} nothing in {stage}");
                        assert_eq!(path, "/cxflow/sample-image/", "{group}: the registry's IAM path");
                        assert_grants(&group, &doc, stage, levels);
                        linted.push(group);
                    }
                }
            }
            // The stage's GitHub role holds GitHub's levels there.
            let (trust, inline) = role(&aws, &format!("sample-image-{stage}-github")).await;
            assert_eq!(inline.keys().collect::<Vec<_>>(), ["cxflow-registry"]);
            assert_grants(&format!("{stage} GitHub role"), &inline["cxflow-registry"], stage, &table["github"]);
            assert!(!admits(&trust, "sts.amazonaws.com", &format!("repo:other-org/sample-image:ref:refs/heads/{stage}")), "{stage}: another repository is refused");
            assert!(!admits(&trust, "other-audience", &sub("environment:Release")), "{stage}: another audience is refused");
        }
        // Step 3: each stage's refs and environment, and nothing else.
        let (dev, _) = role(&aws, "sample-image-development-github").await;
        for tail in ["pull_request", "ref:refs/heads/feature/login", "ref:refs/heads/master", "environment:Development"] {
            assert!(admits(&dev, "sts.amazonaws.com", &sub(tail)), "development admits {tail}");
        }
        assert!(!admits(&dev, "sts.amazonaws.com", &sub("ref:refs/tags/v1.0")), "development refuses tags");
        let (master, _) = role(&aws, "sample-image-master-github").await;
        assert!(admits(&master, "sts.amazonaws.com", &sub("ref:refs/heads/master")));
        assert!(admits(&master, "sts.amazonaws.com", &sub("environment:Master")));
        for tail in ["pull_request", "ref:refs/heads/feature/login", "ref:refs/heads/master-old", "environment:Release"] {
            assert!(!admits(&master, "sts.amazonaws.com", &sub(tail)), "master refuses {tail}");
        }
        let (release, _) = role(&aws, "sample-image-release-github").await;
        assert!(admits(&release, "sts.amazonaws.com", &sub("environment:Release")));
        for tail in ["ref:refs/heads/master", "pull_request", "environment:Master"] {
            assert!(!admits(&release, "sts.amazonaws.com", &sub(tail)), "release refuses {tail}");
        }
        // The deployment role: master (and its environment) only, with the user's policy.
        let (deploy, inline) = role(&aws, "sample-image-deployment").await;
        assert!(admits(&deploy, "sts.amazonaws.com", &sub("ref:refs/heads/master")) && admits(&deploy, "sts.amazonaws.com", &sub("environment:Deployment")));
        assert!(!admits(&deploy, "sts.amazonaws.com", &sub("pull_request")) && !admits(&deploy, "sts.amazonaws.com", &sub("ref:refs/heads/develop")));
        assert_eq!(inline["cxflow-deployment"]["Statement"][0]["Action"], "cloudformation:DescribeStacks");

        // Step 4: parliament finds nothing in any group's or role's policy.
        let roles: Vec<String> = ["development", "master", "release"].iter().map(|s| format!("sample-image-{s}-github")).collect();
        let mut all = common::iam::policies(&aws, &roles).await;
        all.extend(common::iam::group_policies(&aws, &linted).await);
        let found = common::iam::findings(&all);
        assert!(found.is_empty(), "IAM findings:\n{}", found.join("\n"));

        // Step 5: the OIDC provider, members, scanning, mutability and the lifecycle policy.
        let p = aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(PROVIDER_ARN).send().await.unwrap();
        assert_eq!(p.client_id_list(), ["sts.amazonaws.com"]);
        assert!(p.tags().iter().any(|t| t.key() == OWNER_TAG && t.value() == "cxflow_image_registry/sample-image"));
        for stage in ["development", "master", "release"] {
            let (_, _, members) = group_policy(&aws, &format!("sample-image-{stage}-developers")).await.unwrap();
            assert_eq!(members, BTreeSet::from(["alice".to_string()]), "alice is a developer in {stage}");
        }
        assert_eq!(group_policy(&aws, "sample-image-release-end-users").await.unwrap().2, BTreeSet::from(["bob".to_string()]));
        for (stage, mutability) in [("development", "MUTABLE"), ("master", "MUTABLE"), ("release", "IMMUTABLE")] {
            let name = format!("sample-image/{stage}");
            let r = aws.ecr.describe_repositories().repository_names(&name).send().await.unwrap().repositories()[0].clone();
            assert_eq!(r.image_scanning_configuration().map(|c| c.scan_on_push()), Some(true), "{name} scans on push");
            assert_eq!(r.image_tag_mutability().map(|m| m.as_str()), Some(mutability));
            assert_eq!(r.encryption_configuration().map(|e| e.encryption_type().as_str()), Some("AES256"));
            let text = aws.ecr.get_lifecycle_policy().repository_name(&name).send().await.unwrap().lifecycle_policy_text().unwrap().to_string();
            let rules: Json = serde_json::from_str(&text).unwrap();
            let by_status: BTreeMap<String, Json> =
                rules["rules"].as_array().unwrap().iter().map(|r| (r["selection"]["tagStatus"].as_str().unwrap().to_string(), r.clone())).collect();
            assert_eq!(by_status.keys().collect::<Vec<_>>(), ["tagged", "untagged"], "{text}");
            let (tagged, untagged) = (&by_status["tagged"], &by_status["untagged"]);
            assert_eq!((tagged["selection"]["countType"].as_str(), tagged["selection"]["countNumber"].as_i64()), (Some("imageCountMoreThan"), Some(30)), "{text}");
            assert_eq!(tagged["selection"]["tagPatternList"], serde_json::json!(["*"]));
            assert_eq!((untagged["selection"]["countType"].as_str(), untagged["selection"]["countNumber"].as_i64()), (Some("sinceImagePushed"), Some(7)), "{text}");
            assert!(rules["rules"].as_array().unwrap().iter().all(|r| r["action"]["type"] == "expire"));
        }

        // Step 5b: cross-account pulls from release only, with exactly the read level's actions.
        let policy = aws.ecr.get_repository_policy().repository_name("sample-image/release").send().await.unwrap();
        let doc: Json = serde_json::from_str(policy.policy_text().unwrap()).unwrap();
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 1, "{doc}");
        assert_eq!((st[0]["Effect"].as_str(), st[0]["Sid"].as_str()), (Some("Allow"), Some("CrossAccountPull")), "{doc}");
        let principals = list(&st[0]["Principal"]["AWS"]);
        assert_eq!(principals, BTreeSet::from(["arn:aws:iam::111122223333:root".to_string(), "arn:aws:iam::444455556666:role/deploy".to_string()]), "an account ID is its root");
        assert_eq!(list(&st[0]["Action"]), level_actions("read").into_iter().map(str::to_string).collect(), "pull actions and nothing else");
        assert!(st[0].get("Resource").is_none() && st[0].get("Condition").is_none() && st[0].get("NotAction").is_none(), "{doc}");
        for stage in ["development", "master"] {
            let e = aws.ecr.get_repository_policy().repository_name(format!("sample-image/{stage}")).send().await.unwrap_err();
            assert!(e.as_service_error().is_some_and(|s| s.is_repository_policy_not_found_exception()), "{stage} has no repository policy: {e:?}");
        }
        // parliament reads identity policies: give it the statement with the resource a repository policy applies to.
        let mut linted = doc.clone();
        linted["Statement"][0]["Resource"] = Json::String(repo_arn("release"));
        let pull = common::iam::RolePolicies { role: "sample-image/release repository policy".into(), inline: vec![("pull".into(), linted.to_string())], managed: vec![] };
        let found = common::iam::findings(&[pull]);
        assert!(found.is_empty(), "repository policy findings:\n{}", found.join("\n"));

        // Step 6: push an image to master with the write level's calls, and read it back.
        let manifest = push(&aws, "sample-image/master", "1.0.0").await;
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("1.0.0").build();
        let got = aws.ecr.batch_get_image().repository_name("sample-image/master").image_ids(id).send().await.unwrap();
        assert_eq!(got.images()[0].image_manifest(), Some(manifest.as_str()));
    });

    // Step 7: the outputs are what exists.
    let a = wd.state_attrs("cxflow_image_registry", "sample");
    let master = &a["stage_outputs"]["master"];
    assert_eq!(master["repository_url"], format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/sample-image/master"));
    assert_eq!(master["repository_arn"], repo_arn("master"));
    assert_eq!(master["github_role_arn"], format!("arn:aws:iam::{ACCOUNT}:role/cxflow/sample-image/sample-image-master-github"));
    assert_eq!(master["group_names"], serde_json::json!({"developers": "sample-image-master-developers", "github": "sample-image-master-github"}));
    assert_eq!(master["permissions"]["github"], serde_json::json!(["authorize", "write"]));
    assert_eq!(a["oidc_provider_arn"], PROVIDER_ARN);
    assert_eq!(a["deployment_role_arn"], format!("arn:aws:iam::{ACCOUNT}:role/cxflow/sample-image/sample-image-deployment"));

    // Step 8: a member added elsewhere stays; a level given in place changes one policy.
    block_on(async { aws.iam.add_user_to_group().group_name("sample-image-master-developers").user_name("carol").send().await.unwrap() });
    let record = children(&wd, "cxflow_image_registry", "sample");
    wd.write("main.tf", &seed_config(r#"developers = ["authorize", "read", "write", "metadata"]"#, PULLERS));
    wd.apply().expect_ok("apply with write for master's developers");
    assert_eq!(children(&wd, "cxflow_image_registry", "sample"), record, "an update in place: every child keeps its identity");
    block_on(async {
        let (_, doc, members) = group_policy(&aws, "sample-image-master-developers").await.unwrap();
        assert_grants("master developers", &doc, "master", &["authorize", "read", "write", "metadata"]);
        assert_eq!(members, BTreeSet::from(["alice".to_string(), "carol".to_string()]), "carol, added elsewhere, stays");
    });
    assert_eq!(wd.plan_code().code, 0, "converged");

    // Step 9: import by name rebuilds the configuration; the plan after it is empty.
    wd.tf(&["state", "rm", "cxflow_image_registry.sample"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_image_registry.sample", "sample-image"]).expect_ok("import");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "empty plan after import:\n{}", p.stdout);
    assert_eq!(children(&wd, "cxflow_image_registry", "sample"), record, "import records the same children");

    // Step 9b: a repository policy set elsewhere on master is drift, and removing pull_principals deletes release's.
    block_on(async {
        let foreign =
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Elsewhere","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999988887777:root"},"Action":"ecr:BatchGetImage"}]}"#;
        aws.ecr.set_repository_policy().repository_name("sample-image/master").policy_text(foreign).send().await.unwrap();
    });
    wd.tf(&["apply", "-refresh-only", "-auto-approve"]).expect_ok("refresh");
    let drift = wd.state_attrs("cxflow_image_registry", "sample")["drift"].clone();
    assert!(drift["repository_master"].as_str().is_some_and(|d| d.contains("repository_policy")), "the foreign policy is drift: {drift}");
    wd.write("main.tf", &seed_config(r#"developers = ["authorize", "read", "write", "metadata"]"#, ""));
    wd.apply().expect_ok("apply without pull_principals");
    block_on(async {
        for stage in ["master", "release"] {
            let e = aws.ecr.get_repository_policy().repository_name(format!("sample-image/{stage}")).send().await.unwrap_err();
            assert!(e.as_service_error().is_some_and(|s| s.is_repository_policy_not_found_exception()), "{stage}'s repository policy is deleted: {e:?}");
        }
    });
    assert_eq!(children(&wd, "cxflow_image_registry", "sample"), record, "policies change in place");
    assert_eq!(wd.plan_code().code, 0, "converged without repository policies");

    // Step 10: a stage removed from the map takes its repository, groups and role with it; the others stay as they are.
    wd.write("main.tf", &seed_config(r#"developers = ["authorize", "read", "write", "metadata"]"#, "").replace("    development = {}\n", ""));
    wd.apply().expect_ok("apply without the development stage");
    let now = children(&wd, "cxflow_image_registry", "sample");
    let kept: BTreeMap<String, String> = record.iter().filter(|(k, _)| !k.contains("development")).map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(now, kept, "exactly development's children are gone");
    block_on(async {
        assert!(aws.ecr.describe_repositories().repository_names("sample-image/development").send().await.is_err(), "development's repository is deleted");
        assert!(group_policy(&aws, "sample-image-development-developers").await.is_none());
        assert!(aws.iam.get_role().role_name("sample-image-development-github").send().await.is_err());
    });
    assert_eq!(wd.plan_code().code, 0, "converged without the stage");

    // Step 11: destroy leaves what was there before (the users, no longer in any group).
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&before), after.removed_since(&before)), (vec![], vec![]), "destroy leaves exactly what existed before");
}

/// Registries on stages of their own names with lifecycle rules that archive,
/// and two registries (two states) on the account's one GitHub OIDC provider:
/// the second is told at plan time to name it, and the first, dropping GitHub
/// while the second still trusts the provider, keeps it.
#[test]
fn custom_stages_archiving_and_a_shared_oidc_provider() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let before = Snapshot::take(&moto);
    let first = Workdir::new(&bundled_terraform(), Some(&moto));
    let registry = |name: &str, github: &str| {
        config(&format!(
            r#"
resource "cxflow_image_registry" "r" {{
  name = "{name}"
  {github}
  stages = {{
    staging = {{
      developers      = ["authorize", "read", "write"]
      github          = ["authorize", "write"]
      github_refs     = ["refs/tags/v*"]
      repository_name = "{name}-staging-images"
    }}
  }}
  image_lifecycle {{
    keep_tagged           = 10
    archive_old_tagged    = true
    archive_unpulled_days = 30
    expire_archived_days  = 180
  }}
  tags = {{ Team = "{name}" }}
}}
"#
        ))
    };
    let with_github = format!("github {{\n    repository = \"{REPO}\"\n  }}");
    let with_provider = format!("github {{\n    repository = \"{REPO}\"\n    oidc_provider_arn = \"{PROVIDER_ARN}\"\n  }}");
    let without_github = |name: &str| registry(name, "").replace("      github_refs     = [\"refs/tags/v*\"]\n", "");
    let provider_exists = || block_on(aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(PROVIDER_ARN).send()).is_ok();

    // Step 1: the first registry creates the provider; its lifecycle policy archives and expires what the block says.
    first.write("main.tf", &registry("first", &with_github));
    first.apply().expect_ok("apply the first registry");
    block_on(async {
        let (_, doc, _) = group_policy(&aws, "first-staging-developers").await.unwrap();
        let got = statements(&doc);
        assert_eq!(got["Read"].1, BTreeSet::from([format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/first-staging-images")]), "the stage's own repository");
        assert!(group_policy(&aws, "first-staging-end-users").await.is_none());
        let r = aws.iam.get_role().role_name("first-staging-github").send().await.unwrap();
        let trust = cxflow::children::iam::parse_policy(r.role().unwrap().assume_role_policy_document().unwrap()).unwrap();
        let cond = &trust["Statement"][0]["Condition"];
        assert_eq!(cond["StringLike"]["token.actions.githubusercontent.com:sub"], serde_json::json!([sub("ref:refs/tags/v*")]));
        let text = aws.ecr.get_lifecycle_policy().repository_name("first-staging-images").send().await.unwrap().lifecycle_policy_text().unwrap().to_string();
        let rules: Json = serde_json::from_str(&text).unwrap();
        let summary: Vec<(String, String, String, i64, String)> = rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let sel = &r["selection"];
                let action = format!("{}{}", r["action"]["type"].as_str().unwrap(), r["action"]["targetStorageClass"].as_str().map(|c| format!(" to {c}")).unwrap_or_default());
                (
                    sel["tagStatus"].as_str().unwrap().into(),
                    sel["storageClass"].as_str().unwrap_or("standard").into(),
                    sel["countType"].as_str().unwrap().into(),
                    sel["countNumber"].as_i64().unwrap(),
                    action,
                )
            })
            .collect();
        let s = |a: &str| a.to_string();
        assert_eq!(
            summary,
            [
                (s("untagged"), s("standard"), s("sinceImagePushed"), 14, s("expire")),
                (s("tagged"), s("standard"), s("imageCountMoreThan"), 10, s("transition to archive")),
                (s("any"), s("standard"), s("sinceImagePulled"), 30, s("transition to archive")),
                (s("any"), s("archive"), s("sinceImageTransitioned"), 180, s("expire")),
            ],
            "{text}"
        );
        let priorities: Vec<i64> = rules["rules"].as_array().unwrap().iter().map(|r| r["rulePriority"].as_i64().unwrap()).collect();
        assert_eq!(priorities, [1, 2, 3, 4], "rules on any come last: {text}");
    });
    assert_eq!(first.plan_code().code, 0, "the plan after the apply is empty");

    // Step 2: a second registry (another state) that would create the provider too fails at plan time, naming the way out.
    let second = Workdir::new(&bundled_terraform(), Some(&moto));
    second.write("main.tf", &registry("second", &with_github));
    let refused = second.tf(&["plan", "-input=false"]);
    refused.expect_fail("a second provider for the same issuer");
    let msg = refused.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(msg.contains("belongs to cxflow_image_registry/first") && msg.contains("oidc_provider_arn") && msg.contains(PROVIDER_ARN), "{msg}");
    let applied = second.apply();
    applied.expect_fail("the apply is refused the same way");
    assert!(children(&second, "cxflow_image_registry", "r").is_empty(), "nothing recorded for the refused create");
    let leftover = Snapshot::take(&moto);
    assert!(!leftover.0.iter().any(|l| l.contains("second")), "the refused plan and apply made nothing: {:?}", leftover.added_since(&before));

    // Step 3: naming the provider works; import rebuilds it as named, with an empty plan.
    second.write("main.tf", &registry("second", &with_provider));
    second.apply().expect_ok("apply the second registry on the first one's provider");
    assert_eq!(second.state_attrs("cxflow_image_registry", "r")["oidc_provider_arn"], PROVIDER_ARN);
    assert!(!children(&second, "cxflow_image_registry", "r").contains_key("oidc_provider"));
    second.tf(&["state", "rm", "cxflow_image_registry.r"]).expect_ok("state rm");
    second.tf(&["import", "cxflow_image_registry.r", "second"]).expect_ok("import the second registry");
    let p = second.plan_code();
    assert_eq!(p.code, 0, "empty plan after importing a registry on a provider it did not create:\n{}", p.stdout);

    // Step 4: the first registry drops GitHub while the second still trusts the provider: its roles go, the provider stays.
    first.write("main.tf", &without_github("first"));
    first.apply().expect_ok("apply the first registry without github");
    let kids = children(&first, "cxflow_image_registry", "r");
    assert!(kids.contains_key("group_staging_github") && !kids.contains_key("github_role_staging") && !kids.contains_key("oidc_provider"), "{kids:?}");
    assert!(block_on(aws.iam.get_role().role_name("first-staging-github").send()).is_err(), "the first registry's GitHub role is deleted");
    assert!(provider_exists(), "the provider the second registry's role trusts stays");
    assert_eq!(second.plan_code().code, 0, "the second registry is untouched");

    // Step 5: the second registry's destroy never deletes a provider it only named.
    second.destroy().expect_ok("destroy the second registry");
    assert!(provider_exists(), "a named provider is not the second registry's to delete");

    // Step 6: GitHub again in the first registry takes its own provider back (its lease is in this directory's journal) ...
    first.write("main.tf", &registry("first", &with_github));
    first.apply().expect_ok("apply the first registry with github again");
    assert_eq!(children(&first, "cxflow_image_registry", "r").get("oidc_provider").map(String::as_str), Some(PROVIDER_ARN), "the provider is recorded again");
    assert_eq!(first.plan_code().code, 0, "converged");

    // Step 7: ... and without GitHub, no role trusting it any more, the provider goes.
    first.write("main.tf", &without_github("first"));
    first.apply().expect_ok("apply without github");
    assert!(!provider_exists(), "the provider went with the github block");
    first.tf(&["state", "rm", "cxflow_image_registry.r"]).expect_ok("state rm");
    first.tf(&["import", "cxflow_image_registry.r", "first"]).expect_ok("import without github");
    let p = first.plan_code();
    assert_eq!(p.code, 0, "empty plan after import (tags read from the repository, the archive rules from its lifecycle policy):\n{}", p.stdout);
    first.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&before), after.removed_since(&before)), (vec![], vec![]), "nothing left");
}

/// KMS encryption (and scanning off), with the AWS managed key (ECR reports the key it chose: no
/// drift) and with a key of the user's: repositories encrypted as asked, empty
/// plans after apply and after import with either key (import asks KMS whose
/// key it is), and a key change replacing the registry.
#[test]
fn kms_encryption_is_read_back_and_plans_empty() {
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    let before = Snapshot::take(&moto);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    let kms = aws_sdk_kms::Client::new(&moto.sdk());
    let key = block_on(kms.create_key().send()).unwrap().key_metadata().unwrap().arn().unwrap().to_string();
    let registry = |kms: &str| {
        config(&format!(
            r#"
resource "cxflow_image_registry" "enc" {{
  name            = "enc"
  encryption_type = "KMS"
  scan_on_push    = false
  {kms}
  stages = {{
    qa = {{ developers = ["authorize", "read"] }}
  }}
}}
"#
        ))
    };
    let encryption = || {
        block_on(async {
            let r = aws.ecr.describe_repositories().repository_names("enc/qa").send().await.unwrap().repositories()[0].clone();
            assert_eq!(r.image_scanning_configuration().map(|c| c.scan_on_push()), Some(false), "scan_on_push = false reaches the repository");
            let e = r.encryption_configuration().unwrap().clone();
            (e.encryption_type().as_str().to_string(), e.kms_key().map(str::to_string))
        })
    };

    // Step 1: KMS with the AWS managed key: ECR names the key it uses, which is no drift.
    wd.write("main.tf", &registry(""));
    wd.apply().expect_ok("apply with the AWS managed key");
    let (kind, chosen) = encryption();
    assert_eq!(kind, "KMS");
    assert!(chosen.is_some(), "ECR reports the key it chose");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "the plan after the apply is empty:\n{}", p.stdout);
    wd.tf(&["apply", "-refresh-only", "-auto-approve"]).expect_ok("refresh");
    assert_eq!(wd.state_attrs("cxflow_image_registry", "enc")["drift"], serde_json::json!({}), "the managed key is no drift");
    let managed = block_on(kms.describe_key().key_id("alias/aws/ecr").send()).unwrap().key_metadata().unwrap().clone();
    assert_eq!((managed.arn(), managed.key_manager().map(|m| m.as_str())), (chosen.as_deref(), Some("AWS")), "the key ECR chose is the AWS managed alias/aws/ecr");
    // Import tells the AWS managed key from one of the user's: no `kms_key_arn`, so no replacement.
    wd.tf(&["state", "rm", "cxflow_image_registry.enc"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_image_registry.enc", "enc"]).expect_ok("import with the AWS managed key");
    assert!(wd.state_attrs("cxflow_image_registry", "enc")["kms_key_arn"].is_null(), "import names no key for the AWS managed one");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "empty plan after importing a repository on the AWS managed key:\n{}", p.stdout);

    // Step 2: a key of the user's replaces the registry (ECR cannot re-encrypt a repository), and is used.
    wd.write("main.tf", &registry(&format!("kms_key_arn     = \"{key}\"")));
    let p = wd.plan_code();
    assert!(p.code == 2 && p.stdout.contains("must be replaced"), "a key change replaces the registry:\n{}", p.stdout);
    wd.apply().expect_ok("apply with the user's key");
    assert_eq!(encryption(), ("KMS".to_string(), Some(key.clone())));
    assert_eq!(wd.plan_code().code, 0, "converged on the user's key");
    wd.tf(&["state", "rm", "cxflow_image_registry.enc"]).expect_ok("state rm");
    wd.tf(&["import", "cxflow_image_registry.enc", "enc"]).expect_ok("import with the user's key");
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "empty plan after import (the key and scanning read back):\n{}", p.stdout);

    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&before), after.removed_since(&before)), (vec![], vec![]), "nothing left");
}
