//! Data sources through the bundled Terraform 1.15 on moto, checked with the
//! AWS SDK: `cxflow_ecs_service` reads a service the provider made (and
//! follows a forced deployment and a count change), `cxflow_image` resolves
//! an image pushed with the SDK by tag and by digest (and its scan); missing
//! objects are errors naming them; bad input fails `terraform validate`
//! naming the attribute.

mod common;

use aws_smithy_types::date_time::Format;
use common::aws::Aws;
use common::*;
use serde_json::{Value as Json, json};

const CLUSTER: &str = "dsrc";
const REPO: &str = "team/app";

fn outputs(wd: &Workdir) -> Json {
    let r = wd.tf(&["output", "-json"]);
    r.expect_ok("terraform output -json");
    let all: Json = serde_json::from_str(&r.stdout).expect("outputs are JSON");
    all.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["value"].clone())).collect()
}

fn service_config(subnets: &[String], service: &str) -> String {
    let mut s = provider_block("");
    s.push_str(&cluster_and_service_hcl(CLUSTER, subnets, ""));
    s.push_str(&format!(
        r#"
data "cxflow_ecs_service" "web" {{
  cluster = cxflow_ecs_cluster.c.name
  service = {service}
}}

output "svc" {{
  value = data.cxflow_ecs_service.web
}}
"#
    ));
    s
}

fn ts(t: Option<&aws_smithy_types::DateTime>) -> Json {
    t.map(|t| json!(t.fmt(Format::DateTime).unwrap())).unwrap_or(Json::Null)
}

/// What DescribeServices and DescribeTaskDefinition say, in the data source's shape.
fn expected_service(aws: &Aws) -> Json {
    block_on(async {
        let out = aws.ecs.describe_services().cluster(CLUSTER).services("web").send().await.unwrap();
        let s = &out.services()[0];
        let td_arn = s.task_definition().unwrap();
        let td = aws.ecs.describe_task_definition().task_definition(td_arn).send().await.unwrap();
        let td = td.task_definition().unwrap();
        let images: serde_json::Map<String, Json> = td.container_definitions().iter().map(|c| (c.name().unwrap().to_string(), json!(c.image().unwrap()))).collect();
        let deployments: Vec<Json> = s
            .deployments()
            .iter()
            .map(|d| {
                json!({
                    "id": d.id(), "status": d.status(), "task_definition_arn": d.task_definition(),
                    "desired_count": d.desired_count(), "running_count": d.running_count(),
                    "rollout_state": d.rollout_state().map(|r| r.as_str()), "created_at": ts(d.created_at()),
                })
            })
            .collect();
        json!({
            "cluster": CLUSTER, "service": "web",
            "arn": s.service_arn(), "status": s.status(),
            "task_definition_arn": td_arn, "task_definition_revision": td.revision(),
            "images": images, "image": td.container_definitions()[0].image(),
            "desired_count": s.desired_count(), "running_count": s.running_count(), "pending_count": s.pending_count(),
            "launch_type": s.launch_type().map(|l| l.as_str()),
            "deployments": deployments,
        })
    })
}

#[test]
fn ecs_service_reads_what_aws_reports() {
    let tf = bundled_terraform();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    let (_, subnets, _) = block_on(aws.alb_fixture("dsrc-alb"));
    let wd = Workdir::new(&tf, Some(&moto));
    // The first plan cannot know the service's name yet: the read happens during apply.
    wd.write("main.tf", &service_config(&subnets, "cxflow_ecs_fargate_service.web.name"));
    wd.apply().expect_ok("apply");
    let got = &outputs(&wd)["svc"];
    let want = expected_service(&aws);
    assert_eq!(got, &want, "the data source equals DescribeServices/DescribeTaskDefinition");
    assert_eq!(got["image"], "public.ecr.aws/nginx/nginx:1.27");
    assert_eq!(got["images"], json!({"app": "public.ecr.aws/nginx/nginx:1.27"}));
    assert_eq!(got["launch_type"], "FARGATE");
    assert_eq!(got["deployments"].as_array().map(Vec::len), Some(1), "{got}");
    let first_deployment = got["deployments"][0]["id"].clone();

    // ---- a forced deployment and a new desired count outside Terraform: the next read follows
    block_on(async { aws.ecs.update_service().cluster(CLUSTER).service("web").force_new_deployment(true).desired_count(2).send().await.unwrap() });
    wd.tf(&["apply", "-refresh-only", "-auto-approve"]).expect_ok("refresh");
    let got = &outputs(&wd)["svc"];
    assert_eq!(got, &expected_service(&aws), "the data source follows the service");
    assert_eq!(got["desired_count"], 2, "{got}");
    let primary: Vec<&Json> = got["deployments"].as_array().unwrap().iter().filter(|d| d["status"] == "PRIMARY").collect();
    assert_eq!(primary.len(), 1, "{got}");
    assert_ne!(primary[0]["id"], first_deployment, "a new primary deployment: {got}");

    // ---- a service that does not exist is an error naming it, with AWS's reason
    let mut missing = service_config(&subnets, "\"nope\"");
    missing = missing.replace("output \"svc\"", "output \"unused\"");
    wd.write("main.tf", &missing);
    let r = wd.tf(&["plan"]);
    r.expect_fail("plan with a missing service");
    assert!(r.all().contains("ECS service not found"), "{}", r.all());
    assert!(r.all().contains("\"nope\"") && r.all().contains("MISSING"), "names the service and AWS's reason:\n{}", r.all());

    // ---- a missing cluster: AWS's error, named
    wd.write("main.tf", &service_config(&subnets, "\"web\"").replace("cluster = cxflow_ecs_cluster.c.name\n  service", "cluster = \"nocluster\"\n  service"));
    let r = wd.tf(&["plan"]);
    r.expect_fail("plan with a missing cluster");
    assert!(r.all().contains("ClusterNotFoundException") && r.all().contains("nocluster"), "{}", r.all());

    wd.write("main.tf", &service_config(&subnets, "\"web\""));
    wd.destroy().expect_ok("destroy");
}

/// Push an image whose digest moto derives from its one layer; returns the digest.
fn push(aws: &Aws, tag: &str, layer: char, config_size: i64) -> String {
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config_size, "digest": d('c')},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": d(layer)}]
    });
    block_on(async {
        let out = aws.ecr.put_image().repository_name(REPO).image_manifest(manifest.to_string()).image_tag(tag).send().await.unwrap();
        out.image().unwrap().image_id().unwrap().image_digest().unwrap().to_string()
    })
}

fn image_config(blocks: &str) -> String {
    let mut s = provider_block("");
    s.push_str(blocks);
    s
}

/// DescribeImages' answer for a digest, in the data source's shape (less the inputs and the scan).
fn expected_image(aws: &Aws, digest: &str) -> Json {
    block_on(async {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_digest(digest).build();
        let out = aws.ecr.describe_images().repository_name(REPO).image_ids(id).send().await.unwrap();
        let img = &out.image_details()[0];
        let mut tags = img.image_tags().to_vec();
        tags.sort();
        json!({
            "digest": img.image_digest(),
            "image_uri": format!("{}.dkr.ecr.us-east-1.amazonaws.com/{REPO}@{digest}", img.registry_id().unwrap()),
            "tags": tags,
            "pushed_at": ts(img.image_pushed_at()),
            "size_bytes": img.image_size_in_bytes(),
        })
    })
}

fn pick(v: &Json, keys: &[&str]) -> Json {
    keys.iter().map(|k| (k.to_string(), v[*k].clone())).collect::<serde_json::Map<_, _>>().into()
}

#[test]
fn image_resolves_by_tag_and_digest() {
    let tf = bundled_terraform();
    let moto = Moto::start();
    let aws = Aws::new(&moto);
    block_on(async { aws.ecr.create_repository().repository_name(REPO).send().await.unwrap() });
    let v1 = push(&aws, "v1", 'a', 7023);
    // The same manifest again under a second tag: one image with two tags.
    assert_eq!(push(&aws, "stable", 'a', 7023), v1);
    let v2 = push(&aws, "v2", 'b', 9100);
    assert_ne!(v1, v2);

    let wd = Workdir::new(&tf, Some(&moto));
    wd.write(
        "main.tf",
        &image_config(&format!(
            r#"
data "cxflow_image" "by_tag" {{
  repository = "{REPO}"
  tag        = "v1"
}}

data "cxflow_image" "by_digest" {{
  repository = "{REPO}"
  digest     = "{v2}"
}}

output "by_tag" {{
  value = data.cxflow_image.by_tag
}}

output "by_digest" {{
  value = data.cxflow_image.by_digest
}}
"#
        )),
    );
    wd.apply().expect_ok("apply");
    let out = outputs(&wd);
    let keys = ["digest", "image_uri", "tags", "pushed_at", "size_bytes"];
    assert_eq!(pick(&out["by_tag"], &keys), expected_image(&aws, &v1), "by tag: {}", out["by_tag"]);
    assert_eq!(out["by_tag"]["digest"], json!(v1));
    assert_eq!(out["by_tag"]["tags"], json!(["stable", "v1"]));
    assert_eq!(out["by_tag"]["size_bytes"], 7023);
    assert_eq!(pick(&out["by_digest"], &keys), expected_image(&aws, &v2), "by digest: {}", out["by_digest"]);
    assert_eq!(out["by_digest"]["tags"], json!(["v2"]));
    assert!(out["by_digest"]["image_uri"].as_str().unwrap().ends_with(&format!("/{REPO}@{v2}")));
    for o in [&out["by_tag"], &out["by_digest"]] {
        assert_eq!(o["scan_status"], Json::Null, "never scanned: {o}");
        assert_eq!(o["scan_findings"], json!({}), "never scanned: {o}");
    }

    // ---- after a scan: its status and the counts DescribeImageScanFindings reports
    let counts = block_on(async {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder().image_tag("v1").build();
        aws.ecr.start_image_scan().repository_name(REPO).image_id(id.clone()).send().await.unwrap();
        let f = aws.ecr.describe_image_scan_findings().repository_name(REPO).image_id(id).send().await.unwrap();
        let counts: serde_json::Map<String, Json> =
            f.image_scan_findings().unwrap().finding_severity_counts().unwrap().iter().map(|(k, v)| (k.as_str().to_string(), json!(v))).collect();
        (f.image_scan_status().unwrap().status().unwrap().as_str().to_string(), Json::Object(counts))
    });
    assert!(!counts.1.as_object().unwrap().is_empty(), "moto reports findings: {counts:?}");
    wd.tf(&["apply", "-refresh-only", "-auto-approve"]).expect_ok("refresh");
    let out = outputs(&wd);
    assert_eq!(out["by_tag"]["scan_status"], json!(counts.0));
    assert_eq!(out["by_tag"]["scan_findings"], counts.1);
    assert_eq!(out["by_digest"]["scan_findings"], json!({}), "the other image was not scanned");

    // ---- a tag that moved: the same data source now resolves to the new digest
    assert_eq!(push(&aws, "v1", 'b', 9100), v2);
    wd.tf(&["apply", "-refresh-only", "-auto-approve"]).expect_ok("refresh after the tag moved");
    assert_eq!(outputs(&wd)["by_tag"]["digest"], json!(v2));

    // ---- a missing tag and a missing repository are errors naming them
    wd.write("main.tf", &image_config(&format!("data \"cxflow_image\" \"x\" {{\n  repository = \"{REPO}\"\n  tag        = \"nope\"\n}}\n")));
    let r = wd.tf(&["plan"]);
    r.expect_fail("plan with a missing tag");
    assert!(r.all().contains("ECR image not found") && r.all().contains("tagged \"nope\"") && r.all().contains(REPO), "{}", r.all());
    wd.write("main.tf", &image_config("data \"cxflow_image\" \"x\" {\n  repository = \"no/such\"\n  tag        = \"v1\"\n}\n"));
    let r = wd.tf(&["plan"]);
    r.expect_fail("plan with a missing repository");
    assert!(r.all().contains("ECR repository not found") && r.all().contains("\"no/such\""), "{}", r.all());
}

#[test]
fn bad_input_fails_validate_naming_the_attribute() {
    let tf = bundled_terraform();
    let wd = Workdir::new(&tf, None);
    let digest = format!("sha256:{}", "d".repeat(64));
    // Each case: the block's body, the summary, and the configuration line Terraform quotes (the attribute's own).
    let cases = [
        (format!("  repository = \"app\"\n  tag        = \"v1\"\n  digest     = \"{digest}\""), "Conflicting tag and digest", format!("digest     = \"{digest}\"")),
        ("  repository = \"app\"".to_string(), "Missing tag or digest", "".to_string()),
        ("  repository = \"Bad_Repo\"\n  tag        = \"v1\"".to_string(), "repository", "repository = \"Bad_Repo\"".to_string()),
        ("  repository = \"app\"\n  tag        = \"-bad\"".to_string(), "tag", "tag        = \"-bad\"".to_string()),
        ("  repository = \"app\"\n  digest     = \"sha256:xyz\"".to_string(), "digest", "digest     = \"sha256:xyz\"".to_string()),
        ("  repository  = \"app\"\n  tag         = \"v1\"\n  registry_id = \"12\"".to_string(), "registry_id", "registry_id = \"12\"".to_string()),
    ];
    for (body, summary, line) in &cases {
        wd.write("main.tf", &image_config(&format!("data \"cxflow_image\" \"x\" {{\n{body}\n}}\n")));
        let r = wd.tf(&["validate"]);
        r.expect_fail(&format!("validate {body}"));
        assert!(r.all().contains(summary), "{summary}:\n{}", r.all());
        assert!(r.all().contains(line.as_str()), "the diagnostic points at {line:?}:\n{}", r.all());
    }
    for (attrs, line) in [("  cluster = \"bad cluster\"\n  service = \"web\"", "cluster = \"bad cluster\""), ("  cluster = \"c\"\n  service = \"we/b\"", "service = \"we/b\"")] {
        wd.write("main.tf", &image_config(&format!("data \"cxflow_ecs_service\" \"x\" {{\n{attrs}\n}}\n")));
        let r = wd.tf(&["validate"]);
        r.expect_fail(&format!("validate {attrs}"));
        assert!(r.all().contains(line), "the diagnostic points at {line:?}:\n{}", r.all());
    }
    // A good configuration validates.
    wd.write("main.tf", &image_config("data \"cxflow_image\" \"x\" {\n  repository = \"team/app\"\n  tag        = \"v1\"\n}\n"));
    wd.tf(&["validate"]).expect_ok("validate a good configuration");
}
