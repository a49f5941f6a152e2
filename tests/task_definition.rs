//! The task definition in full through cxflow_ecs_fargate_service: every
//! container and task setting created, read back with the AWS SDK, planned
//! empty, updated in place and imported; task role policies with drift;
//! images decided by configuration, by digest or by CI.

mod common;

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{ContainerDefinition, TaskDefinition};
use common::aws::Aws;
use common::*;
use serde_json::{Value as Json, json};

const CLUSTER: &str = "tdfull";
const REPO: &str = "backend-flask";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/backend-flask:v1";
const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cruddur/db-AbCdEf:password::";
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const XRAY: &str = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess";

fn subnets(aws: &Aws) -> Vec<String> {
    block_on(async {
        let out = aws.ec2.describe_subnets().send().await.unwrap();
        let mut s: Vec<String> = out.subnets().iter().filter(|s| s.default_for_az() == Some(true)).filter_map(|s| s.subnet_id().map(str::to_string)).collect();
        s.sort();
        s.truncate(2);
        s
    })
}

/// An image manifest whose digest moto derives from its one layer.
fn push(aws: &Aws, tag: &str, layer: char) -> String {
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let manifest = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": d('c')},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": d(layer)}]
    });
    block_on(async {
        let out = aws.ecr.put_image().repository_name(REPO).image_manifest(manifest.to_string()).image_tag(tag).send().await.unwrap();
        out.image().unwrap().image_id().unwrap().image_digest().unwrap().to_string()
    })
}

/// The service with every group of settings; `app_env` and `policy` vary between steps.
fn config(subnets: &[String], app_env: &str, policy: &str) -> String {
    let subnets = subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let mut s = provider_block("");
    s.push_str(&format!(
        r#"
resource "cxflow_ecs_fargate_service" "full" {{
  name    = "full"
  cluster = "{CLUSTER}"
  cpu     = 1024
  memory  = 2048

  runtime_platform {{
    cpu_architecture = "ARM64"
  }}
  ephemeral_storage_gib = 40

  volume {{
    name = "data"
    efs {{
      file_system_id    = "fs-0123456789abcdef0"
      access_point_id   = "fsap-0123456789abcdef0"
      iam_authorization = true
    }}
  }}
  volume {{
    name = "scratch"
  }}

  task_role_policy_arns = ["{XRAY}"]
  task_role_policy_json = jsonencode({{
    Version   = "2012-10-17"
    Statement = [{{ Sid = "Metrics", Effect = "Allow", Action = "cloudwatch:PutMetricData", Resource = "*" }}]
  }})
  secrets_kms_key_arns = ["{KMS_KEY}"]

  log_router {{
    container_log_options = {{ Name = "cloudwatch", region = "us-east-1", log_group_name = "/full/app" }}
  }}

  container {{
    name               = "app"
    image              = "{IMAGE}"
    image_policy       = "{policy}"
    cpu                = 512
    memory             = 1024
    memory_reservation = 512
    entry_point        = ["/bin/sh", "-c"]
    command            = ["exec gunicorn app:app"]
    working_directory  = "/srv"
    user               = "1000:1000"
    readonly_root_filesystem = true
    stop_timeout       = 30
    docker_labels      = {{ team = "backend" }}
    environment        = {{ MODE = "{app_env}" }}
    secrets            = {{ DB_PASSWORD = "{SECRET_ARN}" }}

    port_mapping {{
      container_port = 8080
      name           = "http"
      app_protocol   = "http"
    }}
    port_mapping {{
      container_port = 8125
      protocol       = "udp"
      name           = "statsd"
    }}
    ulimit {{
      name       = "nofile"
      soft_limit = 4096
      hard_limit = 8192
    }}
    linux_parameters {{
      init_process_enabled = true
      capabilities {{
        add  = ["SYS_PTRACE"]
        drop = ["NET_RAW"]
      }}
    }}
    mount_point {{
      source_volume  = "data"
      container_path = "/data"
    }}
    mount_point {{
      source_volume  = "scratch"
      container_path = "/tmp"
    }}
    depends_on {{
      container = "migrate"
      condition = "SUCCESS"
    }}
  }}

  container {{
    name      = "migrate"
    image     = "public.ecr.aws/docker/library/busybox:1.36"
    essential = false
    memory    = 256
    command   = ["true"]
  }}

  network {{
    subnet_ids = [{subnets}]
  }}
}}
"#
    ));
    s
}

fn state(wd: &Workdir) -> Json {
    wd.state_attrs("cxflow_ecs_fargate_service", "full")
}

fn children(wd: &Workdir) -> BTreeMap<String, String> {
    common::aws::children(wd, "cxflow_ecs_fargate_service", "full")
}

fn running(aws: &Aws) -> (String, TaskDefinition) {
    block_on(async {
        let s = aws.ecs.describe_services().cluster(CLUSTER).services("full").send().await.unwrap();
        let arn = s.services()[0].task_definition().unwrap().to_string();
        let td = aws.ecs.describe_task_definition().task_definition(&arn).send().await.unwrap();
        (s.services()[0].service_arn().unwrap().to_string(), td.task_definition().unwrap().clone())
    })
}

fn container<'a>(td: &'a TaskDefinition, name: &str) -> &'a ContainerDefinition {
    td.container_definitions().iter().find(|c| c.name() == Some(name)).unwrap_or_else(|| panic!("container {name}"))
}

fn inline(aws: &Aws, role_arn: &str, name: &str) -> Option<Json> {
    let role = role_arn.rsplit('/').next().unwrap().to_string();
    block_on(async { aws.iam.get_role_policy().role_name(role).policy_name(name).send().await.ok().and_then(|p| cxflow::children::iam::parse_policy(p.policy_document())) })
}

fn attached(aws: &Aws, role_arn: &str) -> Vec<String> {
    let role = role_arn.rsplit('/').next().unwrap().to_string();
    block_on(async {
        let out = aws.iam.list_attached_role_policies().role_name(role).send().await.unwrap();
        let mut v: Vec<String> = out.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect();
        v.sort();
        v
    })
}

#[test]
fn task_definition_in_full() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    block_on(async {
        aws.ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap();
        aws.ecr.create_repository().repository_name(REPO).send().await.unwrap();
    });
    let first = push(&aws, "v1", 'a');
    let subnets = subnets(&aws);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));

    // 1. Create: every setting reaches the task definition.
    wd.write("main.tf", &config(&subnets, "one", "digest"));
    wd.apply().expect_ok("apply of the full service");
    let (svc_arn, td) = running(&aws);
    assert_eq!(td.runtime_platform().and_then(|r| r.cpu_architecture()).map(|a| a.as_str()), Some("ARM64"));
    assert_eq!(td.ephemeral_storage().map(|e| e.size_in_gib()), Some(40));
    let vols: BTreeMap<&str, _> = td.volumes().iter().map(|v| (v.name().unwrap(), v.efs_volume_configuration())).collect();
    let efs = vols["data"].expect("an EFS volume");
    assert_eq!(efs.file_system_id(), "fs-0123456789abcdef0");
    assert_eq!(efs.transit_encryption().map(|t| t.as_str()), Some("ENABLED"));
    let auth = efs.authorization_config().unwrap();
    assert_eq!((auth.access_point_id(), auth.iam().map(|i| i.as_str())), (Some("fsap-0123456789abcdef0"), Some("ENABLED")));
    assert!(vols["scratch"].is_none(), "a bind volume");

    let app = container(&td, "app");
    assert!(app.image().unwrap().ends_with(&format!("/backend-flask@{first}")), "digest pinned: {:?}", app.image());
    assert_eq!(app.docker_labels().unwrap().get("cxflow.image-tag").map(String::as_str), Some("v1"));
    assert_eq!(app.docker_labels().unwrap().get("team").map(String::as_str), Some("backend"));
    assert_eq!((app.cpu(), app.memory(), app.memory_reservation()), (512, Some(1024), Some(512)));
    let ports: Vec<(i32, &str, Option<&str>, Option<&str>)> =
        app.port_mappings().iter().map(|p| (p.container_port().unwrap(), p.protocol().unwrap().as_str(), p.name(), p.app_protocol().map(|a| a.as_str()))).collect();
    assert_eq!(ports, vec![(8080, "tcp", Some("http"), Some("http")), (8125, "udp", Some("statsd"), None)]);
    assert_eq!((app.entry_point(), app.command()), (&["/bin/sh".to_string(), "-c".to_string()][..], &["exec gunicorn app:app".to_string()][..]));
    assert_eq!((app.working_directory(), app.user(), app.readonly_root_filesystem(), app.stop_timeout()), (Some("/srv"), Some("1000:1000"), Some(true), Some(30)));
    let u = &app.ulimits()[0];
    assert_eq!((u.name().as_str(), u.soft_limit(), u.hard_limit()), ("nofile", 4096, 8192));
    let lp = app.linux_parameters().unwrap();
    assert_eq!(lp.init_process_enabled(), Some(true));
    assert_eq!((lp.capabilities().unwrap().add(), lp.capabilities().unwrap().drop()), (&["SYS_PTRACE".to_string()][..], &["NET_RAW".to_string()][..]));
    let mounts: Vec<(&str, &str)> = app.mount_points().iter().map(|m| (m.source_volume().unwrap(), m.container_path().unwrap())).collect();
    assert_eq!(mounts, vec![("data", "/data"), ("scratch", "/tmp")]);
    assert_eq!((app.depends_on()[0].container_name(), app.depends_on()[0].condition().as_str()), ("migrate", "SUCCESS"));
    assert_eq!(app.secrets()[0].value_from(), SECRET_ARN);
    // FireLens: the router first, the others logging through it with the given options.
    let router = container(&td, "log_router");
    assert_eq!(router.firelens_configuration().unwrap().r#type().as_str(), "fluentbit");
    assert_eq!(router.log_configuration().unwrap().log_driver().as_str(), "awslogs", "the router logs to the service's log group");
    let lc = app.log_configuration().unwrap();
    assert_eq!(lc.log_driver().as_str(), "awsfirelens");
    assert_eq!(lc.options().unwrap().get("Name").map(String::as_str), Some("cloudwatch"));
    assert_eq!(container(&td, "migrate").essential(), Some(false));

    // The roles: exactly what the configuration names.
    let st = state(&wd);
    let exec = st["execution_role_arn"].as_str().unwrap().to_string();
    let task = st["task_role_arn"].as_str().unwrap().to_string();
    let ep = inline(&aws, &exec, "cxflow-execution").unwrap();
    let find = |doc: &Json, sid: &str| doc["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).cloned();
    assert_eq!(find(&ep, "Secrets").unwrap()["Resource"], json!(["arn:aws:secretsmanager:us-east-1:123456789012:secret:cruddur/db-AbCdEf"]));
    assert_eq!(find(&ep, "DecryptViaService").unwrap()["Resource"], json!([KMS_KEY]), "kms:Decrypt on the named key only");
    assert_eq!(attached(&aws, &task), vec![XRAY.to_string()]);
    assert_eq!(find(&inline(&aws, &task, "cxflow-task").unwrap(), "Metrics").unwrap()["Action"], "cloudwatch:PutMetricData");
    let efs_doc = inline(&aws, &task, "cxflow-efs").unwrap();
    let efs_st = &efs_doc["Statement"][0];
    assert_eq!(efs_st["Action"], json!(["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]));
    assert_eq!(efs_st["Resource"], "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-0123456789abcdef0");
    assert_eq!(efs_st["Condition"]["ArnEquals"]["elasticfilesystem:AccessPointArn"], "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0");
    let lint: Vec<common::iam::RolePolicies> = block_on(common::iam::policies(&aws, &[exec.rsplit('/').next().unwrap().to_string(), task.rsplit('/').next().unwrap().to_string()]))
        .into_iter()
        .map(|mut r| {
            r.managed.clear(); // the user's choice, not the provider's
            r
        })
        .collect();
    let found = common::iam::findings(&lint);
    assert!(found.is_empty(), "{found:#?}");

    // 2. Equivalent definitions never plan a change.
    let p = wd.plan_code();
    assert_eq!(p.code, 0, "plan after apply:\n{}", p.all());

    // 3. One update in place: a new revision, the same service.
    let before = children(&wd);
    wd.write("main.tf", &config(&subnets, "two", "digest"));
    wd.apply().expect_ok("apply with a changed variable");
    let (svc2, td2) = running(&aws);
    assert_eq!(svc2, svc_arn, "the service is updated, not replaced");
    assert!(td2.revision() > td.revision());
    assert_eq!(container(&td2, "app").environment()[0].value(), Some("two"));
    let changed = common::aws::changed_keys(&before, &children(&wd));
    assert_eq!(changed, vec!["task_definition".to_string()], "only the task definition changed");

    // 4. Digest: a re-pushed tag is a new digest in the plan, and apply runs it.
    let second = push(&aws, "v1", 'b');
    wd.tf(&["plan", "-out=p.tfplan"]).expect_ok("plan after the re-push");
    let shown: Json = serde_json::from_str(&wd.tf(&["show", "-json", "p.tfplan"]).stdout).unwrap();
    let images = &shown["resource_changes"][0]["change"]["after"]["images"];
    assert!(images["app"].as_str().unwrap().ends_with(&second), "{images}");
    wd.tf(&["apply", "p.tfplan"]).expect_ok("apply the new digest");
    assert!(container(&running(&aws).1, "app").image().unwrap().ends_with(&second));
    assert_eq!(wd.plan_code().code, 0);

    // 5. Task role policies: drift reported and repaired; a policy attached out of band is left alone.
    let role = task.rsplit('/').next().unwrap().to_string();
    block_on(async {
        let doc = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Metrics", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]});
        aws.iam.put_role_policy().role_name(&role).policy_name("cxflow-task").policy_document(doc.to_string()).send().await.unwrap();
        aws.iam.attach_role_policy().role_name(&role).policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess").send().await.unwrap();
    });
    let drift = wd.plan_code();
    assert_eq!(drift.code, 2, "the changed inline policy is drift:\n{}", drift.all());
    assert!(drift.all().contains("task_role"), "{}", drift.all());
    wd.apply().expect_ok("repair the task role");
    assert_eq!(find(&inline(&aws, &task, "cxflow-task").unwrap(), "Metrics").unwrap()["Action"], "cloudwatch:PutMetricData");
    assert_eq!(
        attached(&aws, &task),
        vec!["arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess".to_string(), "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess".to_string()],
        "left alone"
    );
    assert_eq!(wd.plan_code().code, 0);

    // 6. Import recovers every setting: an empty plan. (Import takes every
    //    attached policy as configured: the one attached by hand goes first.)
    block_on(async { aws.iam.detach_role_policy().role_name(&role).policy_arn("arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess").send().await.unwrap() });
    let imp = Workdir::new(&bundled_terraform(), Some(&moto));
    imp.write("main.tf", &config(&subnets, "two", "digest"));
    imp.tf(&["import", "cxflow_ecs_fargate_service.full", &format!("{CLUSTER}/full")]).expect_ok("import");
    let p = imp.plan_code();
    assert_eq!(p.code, 0, "plan after import:\n{}", p.all());

    // 7. Destroy leaves nothing tagged.
    wd.destroy().expect_ok("destroy");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
}

fn two_services(subnets: &[String], ext_mode: &str) -> String {
    let subnets = subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let mut s = provider_block("");
    for (name, policy, mode) in [("ext", "external", ext_mode), ("cfg", "config", "a")] {
        s.push_str(&format!(
            r#"
resource "cxflow_ecs_fargate_service" "{name}" {{
  name    = "{name}"
  cluster = "{CLUSTER}"
  cpu     = 256
  memory  = 512
  container {{
    name         = "app"
    image        = "public.ecr.aws/nginx/nginx:1.0"
    image_policy = "{policy}"
    port         = 80
    environment  = {{ MODE = "{mode}" }}
  }}
  network {{
    subnet_ids = [{subnets}]
  }}
}}
"#
        ));
    }
    s
}

/// What a CI job does: register a copy of the running revision with another image, and deploy it.
fn ci_deploy(aws: &Aws, service: &str, image: &str) -> String {
    block_on(async {
        let s = aws.ecs.describe_services().cluster(CLUSTER).services(service).send().await.unwrap();
        let cur = aws.ecs.describe_task_definition().task_definition(s.services()[0].task_definition().unwrap()).send().await.unwrap();
        let td = cur.task_definition().unwrap();
        let defs: Vec<ContainerDefinition> = td
            .container_definitions()
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.image = Some(image.to_string());
                c
            })
            .collect();
        let out = aws
            .ecs
            .register_task_definition()
            .family(td.family().unwrap())
            .set_container_definitions(Some(defs))
            .cpu(td.cpu().unwrap())
            .memory(td.memory().unwrap())
            .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .set_execution_role_arn(td.execution_role_arn().map(str::to_string))
            .set_task_role_arn(td.task_role_arn().map(str::to_string))
            .send()
            .await
            .unwrap();
        let arn = out.task_definition().unwrap().task_definition_arn().unwrap().to_string();
        aws.ecs.update_service().cluster(CLUSTER).service(service).task_definition(&arn).send().await.unwrap();
        arn
    })
}

fn running_of(aws: &Aws, service: &str) -> (String, TaskDefinition) {
    block_on(async {
        let s = aws.ecs.describe_services().cluster(CLUSTER).services(service).send().await.unwrap();
        let arn = s.services()[0].task_definition().unwrap().to_string();
        let td = aws.ecs.describe_task_definition().task_definition(&arn).send().await.unwrap();
        (arn, td.task_definition().unwrap().clone())
    })
}

/// Actions Terraform plans per resource address.
fn plan_actions(wd: &Workdir) -> BTreeMap<String, Vec<String>> {
    wd.tf(&["plan", "-out=p.tfplan"]).expect_ok("plan");
    let shown: Json = serde_json::from_str(&wd.tf(&["show", "-json", "p.tfplan"]).stdout).unwrap();
    shown["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["address"].as_str().unwrap().to_string(), r["change"]["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()))
        .collect()
}

/// `external`: a revision CI deployed is not drift and is never reverted, and
/// a revision Terraform registers for another change carries CI's image.
/// `config` (the default): the same CI deploy is drift, and apply restores
/// the configured image.
#[test]
fn images_owned_by_ci_or_by_configuration() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = Aws::new(&moto);
    block_on(async { aws.ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap() });
    let subnets = subnets(&aws);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &two_services(&subnets, "a"));
    wd.apply().expect_ok("apply both services");
    let (ext_first, _) = running_of(&aws, "ext");

    // CI deploys image 2.0 to both services.
    let ext_ci = ci_deploy(&aws, "ext", "public.ecr.aws/nginx/nginx:2.0");
    let cfg_ci = ci_deploy(&aws, "cfg", "public.ecr.aws/nginx/nginx:2.0");
    let actions = plan_actions(&wd);
    assert_eq!(actions["cxflow_ecs_fargate_service.ext"], vec!["no-op"], "CI's revision is not drift under external: {actions:?}");
    assert_eq!(actions["cxflow_ecs_fargate_service.cfg"], vec!["update"], "the configured image wins by default: {actions:?}");
    wd.tf(&["apply", "p.tfplan"]).expect_ok("apply");
    let st = wd.state_attrs("cxflow_ecs_fargate_service", "ext");
    assert_eq!(st["task_definition_arn"], ext_ci.as_str(), "the state follows CI's revision");
    assert_eq!(st["images"]["app"], "public.ecr.aws/nginx/nginx:2.0");
    let (ext_now, _) = running_of(&aws, "ext");
    assert_eq!(ext_now, ext_ci, "never reverted");
    let (cfg_now, cfg_td) = running_of(&aws, "cfg");
    assert_ne!(cfg_now, cfg_ci, "reverted to the configuration");
    assert_eq!(container(&cfg_td, "app").image(), Some("public.ecr.aws/nginx/nginx:1.0"));
    assert_eq!(plan_actions(&wd).values().flatten().filter(|a| *a != "no-op").count(), 0, "in sync");

    // Another change to the external service: the new revision keeps CI's image, and the plan says so.
    wd.write("main.tf", &two_services(&subnets, "b"));
    wd.tf(&["plan", "-out=p.tfplan"]).expect_ok("plan the variable change");
    let shown: Json = serde_json::from_str(&wd.tf(&["show", "-json", "p.tfplan"]).stdout).unwrap();
    let ext = shown["resource_changes"].as_array().unwrap().iter().find(|r| r["address"] == "cxflow_ecs_fargate_service.ext").unwrap();
    assert_eq!(ext["change"]["after"]["images"]["app"], "public.ecr.aws/nginx/nginx:2.0", "the plan names the image it will use");
    wd.tf(&["apply", "p.tfplan"]).expect_ok("apply the variable change");
    let (ext_third, td) = running_of(&aws, "ext");
    assert!(ext_third != ext_ci && ext_third != ext_first, "a new revision");
    assert_eq!(container(&td, "app").image(), Some("public.ecr.aws/nginx/nginx:2.0"), "CI's image carried");
    assert_eq!(container(&td, "app").environment()[0].value(), Some("b"));
    assert_eq!(plan_actions(&wd).values().flatten().filter(|a| *a != "no-op").count(), 0, "in sync");

    // Destroy leaves nothing tagged: the revisions before CI's are found by their tags.
    wd.destroy().expect_ok("destroy");
    assert_eq!(block_on(aws.owned_leftovers()), Vec::<String>::new());
}
