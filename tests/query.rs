//! `terraform query` (Terraform 1.14+) with the bundled Terraform 1.15: a
//! `list "cxflow_secret_sync"` block finds parameters made by hand with the
//! AWS SDK, `-generate-config-out` writes a resource and an import block,
//! and planning with them imports the object with no other change.

mod common;

use aws_sdk_ssm::types::ParameterType;
use common::*;

const SECRET: &str = "Pw-QUERY-HUNTER2-never-listed";

fn ssm(m: &Moto) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&m.sdk())
}

fn put(m: &Moto, name: &str, value: &str, ty: ParameterType) {
    block_on(async { ssm(m).put_parameter().name(name).value(value).r#type(ty).send().await.unwrap() });
}

/// (type, version, decrypted value) of a parameter.
fn param(m: &Moto, name: &str) -> (String, i64, String) {
    block_on(async {
        let p = ssm(m).get_parameter().name(name).with_decryption(true).send().await.unwrap().parameter.unwrap();
        (p.r#type().unwrap().as_str().to_string(), p.version(), p.value().unwrap().to_string())
    })
}

fn query_file(prefix: &str) -> String {
    format!("list \"cxflow_secret_sync\" \"x\" {{\n  provider = cxflow\n\n  config {{\n    path_prefix = \"{prefix}\"\n  }}\n}}\n")
}

/// Query `prefix`, check what was generated, and return the generated configuration.
fn query_and_generate(wd: &Workdir, prefix: &str) -> (Run, String) {
    wd.write("main.tfquery.hcl", &query_file(prefix));
    let q = wd.tf(&["query", "-generate-config-out=generated.tf"]);
    q.expect_ok("terraform query");
    assert!(q.stdout.contains("list.cxflow_secret_sync.x") && q.stdout.contains(prefix), "{}", q.all());
    let generated = wd.read("generated.tf");
    assert_eq!(generated.matches("resource \"cxflow_secret_sync\"").count(), 1, "{generated}");
    assert!(generated.contains("import {") && generated.contains("identity"), "{generated}");
    assert!(generated.contains(&format!("path_prefix = \"{prefix}\"")), "{generated}");
    assert!(!generated.contains("not-listed"), "a parameter outside {prefix} was listed:\n{generated}");
    (q, generated)
}

/// Plan shows exactly one import and nothing else; apply it; the next plan is empty.
fn import_without_changes(wd: &Workdir) {
    let plan = wd.tf(&["plan"]);
    plan.expect_ok("plan with the generated configuration");
    assert!(plan.stdout.contains("Plan: 1 to import, 0 to add, 0 to change, 0 to destroy."), "plan with the generated configuration:\n{}", plan.all());
    wd.apply().expect_ok("apply the import");
    let again = wd.plan_code();
    assert_eq!(again.code, 0, "plan after the import must be empty:\n{}", again.all());
}

#[test]
fn query_lists_plain_parameters_and_generated_config_imports_cleanly() {
    let moto = Moto::start();
    put(&moto, "/app/prod/db/host", "db.internal", ParameterType::String);
    put(&moto, "/app/prod/api/v1/url", "https://api.example.com", ParameterType::String);
    // Neighbours that are not under /app/prod.
    put(&moto, "/app/production/other", "not-listed-1", ParameterType::String);
    put(&moto, "/app/staging/db/host", "not-listed-2", ParameterType::String);

    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &provider_block(""));
    let (q, generated) = query_and_generate(&wd, "/app/prod");
    assert!(!q.all().contains("SecureStrings need secrets_wo"), "{}", q.all());
    assert!(generated.contains("\"db/host\"") && generated.contains("db.internal") && generated.contains("https://api.example.com"), "{generated}");
    import_without_changes(&wd);
    let attrs = wd.state_attrs("cxflow_secret_sync", "x_0");
    assert_eq!(attrs["parameter_versions"], serde_json::json!({"api/v1/url": 1, "db/host": 1}), "{attrs}");
    // SSM is as it was: nothing rewritten.
    assert_eq!(param(&moto, "/app/prod/db/host"), ("String".to_string(), 1, "db.internal".to_string()));
}

#[test]
fn query_with_secure_strings_never_lists_values_and_warns_before_apply() {
    let moto = Moto::start();
    put(&moto, "/app/prod/db/password", SECRET, ParameterType::SecureString);
    put(&moto, "/app/prod/db/host", "db.internal", ParameterType::String);
    let before = param(&moto, "/app/prod/db/password");

    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &provider_block(""));
    let (q, generated) = query_and_generate(&wd, "/app/prod");
    assert!(!q.all().contains(SECRET), "the secret value reached query output");
    assert!(!generated.contains(SECRET), "the secret value reached the generated configuration:\n{generated}");
    // The warning names the key a user must supply, because apply would otherwise delete it.
    assert!(q.all().contains("SecureStrings need secrets_wo") && q.all().contains("db/password"), "{}", q.all());
    let line = generated.lines().find(|l| l.trim_start().starts_with("secrets_wo ")).unwrap_or_default();
    assert!(line.contains("= null"), "write-only secrets_wo must be generated null: {line:?}\n{generated}");

    // As warned: the secret supplied from SSM itself (an ephemeral read), the import changes nothing.
    let with_secret = generated.replace(line, "  secrets_wo = { \"db/password\" = ephemeral.cxflow_ssm_secret.pw.value }");
    wd.write("generated.tf", &with_secret);
    wd.write("secret.tf", "ephemeral \"cxflow_ssm_secret\" \"pw\" {\n  name = \"/app/prod/db/password\"\n}\n");
    import_without_changes(&wd);
    assert!(!wd.read("terraform.tfstate").contains(SECRET), "the secret value reached state");
    let attrs = wd.state_attrs("cxflow_secret_sync", "x_0");
    assert_eq!(attrs["secret_versions"], serde_json::json!({"db/password": 1}), "{attrs}");
    assert!(attrs["secrets_wo"].is_null(), "{attrs}");
    assert_eq!(param(&moto, "/app/prod/db/password"), before, "the SecureString was rewritten");
}

#[test]
fn query_refuses_a_bad_prefix_and_an_empty_one_lists_nothing() {
    let moto = Moto::start();
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &provider_block(""));
    wd.write("main.tfquery.hcl", &query_file("app/prod/"));
    let q = wd.tf(&["query"]);
    q.expect_fail("query with a bad path_prefix");
    assert!(q.all().contains("path_prefix") && q.all().contains("must start with"), "{}", q.all());

    wd.write("main.tfquery.hcl", &query_file("/nothing/here"));
    let q = wd.tf(&["query", "-generate-config-out=generated.tf"]);
    q.expect_ok("query of an empty path");
    assert!(!q.stdout.contains("/nothing/here"), "{}", q.all());
    assert!(!wd.read("generated.tf").contains("resource \"cxflow_secret_sync\""), "{}", wd.read("generated.tf"));
}

// ---------------------------------------------------------------- ECS services and clusters

const ACCOUNT: &str = "123456789012";
const HAND_MADE: [&str; 3] = ["backend-flask", "frontend-react-js", "worker"];

/// Seed 003's hand-run deployment, with the AWS SDK: a cluster, one shared
/// log group, execution role and task role, one security group, and per
/// service a task definition of its own family and a Fargate service.
/// The frontend is behind an ALB through a target group made by hand.
/// Returns (subnets, security group, execution role ARN, task role ARN, target group ARN).
fn hand_made_deployment(aws: &common::aws::Aws) -> (Vec<String>, String, String, String, String) {
    use aws_sdk_ecs::types::*;
    block_on(async {
        // `aws ecs create-cluster --service-connect-defaults namespace=cruddur` makes the namespace in Cloud Map.
        aws.sd.create_http_namespace().name("cruddur").send().await.unwrap();
        let ns = aws.sd.list_namespaces().send().await.unwrap().namespaces()[0].arn().unwrap().to_string();
        let defaults = ClusterServiceConnectDefaultsRequest::builder().namespace(&ns).build().unwrap();
        aws.ecs.create_cluster().cluster_name("cruddur").service_connect_defaults(defaults).send().await.unwrap();
        aws.logs.create_log_group().log_group_name("cruddur").send().await.unwrap();
        aws.logs.put_retention_policy().log_group_name("cruddur").retention_in_days(1).send().await.unwrap();
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let exec = aws.iam.create_role().role_name("CruddurServiceExecutionRole").assume_role_policy_document(trust).send().await.unwrap().role.unwrap().arn;
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ssm:GetParameters","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}"#;
        aws.iam.put_role_policy().role_name("CruddurServiceExecutionRole").policy_name("CruddurServiceExecutionPolicy").policy_document(policy).send().await.unwrap();
        let task = aws.iam.create_role().role_name("CruddurTaskRole").assume_role_policy_document(trust).send().await.unwrap().role.unwrap().arn;
        let vpc = aws.ec2.describe_vpcs().send().await.unwrap().vpcs()[0].vpc_id().unwrap().to_string();
        let sg = aws.ec2.create_security_group().group_name("crud-srv-sg").description("Security group for Cruddur services on ECS").vpc_id(&vpc).send().await.unwrap();
        let sg = sg.group_id().unwrap().to_string();
        aws.ec2.authorize_security_group_ingress().group_id(&sg).ip_protocol("tcp").from_port(80).to_port(80).cidr_ip("0.0.0.0/0").send().await.unwrap();
        let subnets: Vec<String> = aws.ec2.describe_subnets().send().await.unwrap().subnets().iter().filter_map(|s| s.subnet_id()).take(2).map(str::to_string).collect();
        use aws_sdk_elasticloadbalancingv2::types as elb;
        let alb = aws.elb.create_load_balancer().name("cruddur-alb").set_subnets(Some(subnets.clone())).send().await.unwrap();
        let alb = alb.load_balancers()[0].load_balancer_arn().unwrap().to_string();
        let tg = aws
            .elb
            .create_target_group()
            .name("cruddur-frontend-react-js-tg")
            .protocol(elb::ProtocolEnum::Http)
            .port(4568)
            .vpc_id(&vpc)
            .target_type(elb::TargetTypeEnum::Ip)
            .send()
            .await
            .unwrap();
        let tg = tg.target_groups()[0].target_group_arn().unwrap().to_string();
        let forward = elb::Action::builder().r#type(elb::ActionTypeEnum::Forward).target_group_arn(&tg).build();
        aws.elb.create_listener().load_balancer_arn(&alb).protocol(elb::ProtocolEnum::Http).port(80).default_actions(forward).send().await.unwrap();
        for (i, name) in HAND_MADE.iter().enumerate() {
            let port = 4567 + i as i32;
            let log = LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", "cruddur")
                .options("awslogs-region", "us-east-1")
                .options("awslogs-stream-prefix", *name)
                .build()
                .unwrap();
            let container = ContainerDefinition::builder()
                .name(*name)
                .image(format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{name}:latest"))
                .essential(true)
                .port_mappings(PortMapping::builder().name(*name).container_port(port).protocol(TransportProtocol::Tcp).app_protocol(ApplicationProtocol::Http).build())
                .log_configuration(log)
                .environment(KeyValuePair::builder().name("OTEL_SERVICE_NAME").value(*name).build())
                .secrets(Secret::builder().name("CONNECTION_URL").value_from(format!("arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/cruddur/{name}/CONNECTION_URL")).build().unwrap())
                .build();
            aws.ecs
                .register_task_definition()
                .family(*name)
                .execution_role_arn(&exec)
                .task_role_arn(&task)
                .network_mode(NetworkMode::Awsvpc)
                .cpu("256")
                .memory("512")
                .requires_compatibilities(Compatibility::Fargate)
                .container_definitions(container)
                .send()
                .await
                .unwrap();
            let net = AwsVpcConfiguration::builder().set_subnets(Some(subnets.clone())).security_groups(&sg).assign_public_ip(AssignPublicIp::Enabled).build().unwrap();
            aws.ecs
                .create_service()
                .cluster("cruddur")
                .service_name(*name)
                .task_definition(*name)
                .desired_count(1)
                .launch_type(LaunchType::Fargate)
                .enable_ecs_managed_tags(true)
                .enable_execute_command(true)
                .propagate_tags(PropagateTags::Service)
                .network_configuration(NetworkConfiguration::builder().awsvpc_configuration(net).build())
                .tags(Tag::builder().key("team").value(if i == 2 { "jobs" } else { "web" }).build())
                .set_load_balancers((i == 1).then(|| vec![LoadBalancer::builder().target_group_arn(&tg).container_name(*name).container_port(port).build()]))
                .set_service_connect_configuration((i == 0).then(|| {
                    let alias = ServiceConnectClientAlias::builder().port(port).build().unwrap();
                    let sc = ServiceConnectService::builder().port_name(*name).discovery_name(*name).client_aliases(alias).build().unwrap();
                    ServiceConnectConfiguration::builder().enabled(true).namespace("cruddur").services(sc).build()
                }))
                .send()
                .await
                .unwrap();
        }
        (subnets, sg, exec, task, tg)
    })
}

fn ecs_query(extra: &str) -> String {
    format!(
        "list \"cxflow_ecs_fargate_service\" \"svc\" {{\n  provider = cxflow\n  include_resource = true\n\n  config {{\n    cluster = \"cruddur\"\n{extra}  }}\n}}\n\n\
         list \"cxflow_ecs_cluster\" \"cl\" {{\n  provider = cxflow\n  include_resource = true\n\n  config {{\n    name_prefix = \"crud\"\n  }}\n}}\n"
    )
}

fn log_groups(aws: &common::aws::Aws) -> Vec<String> {
    block_on(async { aws.logs.describe_log_groups().send().await.unwrap().log_groups().iter().filter_map(|g| g.log_group_name().map(str::to_string)).collect() })
}

fn target_group_arns(aws: &common::aws::Aws) -> Vec<String> {
    block_on(async { aws.elb.describe_target_groups().send().await.unwrap().target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)).collect() })
}

fn role_names(aws: &common::aws::Aws) -> Vec<String> {
    block_on(async { aws.iam.list_roles().send().await.unwrap().roles().iter().map(|r| r.role_name().to_string()).collect() })
}

fn service_of(aws: &common::aws::Aws, name: &str) -> aws_sdk_ecs::types::Service {
    block_on(async { aws.ecs.describe_services().cluster("cruddur").services(name).include(aws_sdk_ecs::types::ServiceField::Tags).send().await.unwrap().services()[0].clone() })
}

/// The resource state of the generated resource whose `name` is `service`.
fn state_of(wd: &Workdir, type_name: &str, field: &str, value: &str) -> serde_json::Value {
    let st = wd.state_json();
    st["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == type_name)
        .map(|r| r["instances"][0]["attributes"].clone())
        .find(|a| a[field] == value)
        .unwrap_or_else(|| panic!("no {type_name} with {field} = {value} in state:\n{st:#}"))
}

#[test]
fn query_moves_hand_made_services_and_a_provider_made_one_under_terraform() {
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "1")]);
    let aws = common::aws::Aws::new(&moto);
    let (subnets, sg, exec, task, tg) = hand_made_deployment(&aws);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));

    // A service this provider made in the same cluster, whose state is then lost.
    let quoted = subnets.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let api = format!(
        "resource \"cxflow_ecs_fargate_service\" \"api\" {{\n  name    = \"api\"\n  cluster = \"cruddur\"\n  cpu     = 256\n  memory  = 512\n\n  container {{\n    name  = \"app\"\n    image = \"public.ecr.aws/nginx/nginx:1.27\"\n    port  = 8080\n  }}\n  network {{\n    subnet_ids = [{quoted}]\n  }}\n}}\n"
    );
    wd.write("main.tf", &format!("{}{api}", provider_block("")));
    wd.apply().expect_ok("the provider-made service");
    let api_children = wd.state_attrs("cxflow_ecs_fargate_service", "api")["children"].clone();
    wd.tf(&["state", "rm", "cxflow_ecs_fargate_service.api"]).expect_ok("state rm");
    wd.write("main.tf", &provider_block(""));
    let (groups, roles, target_groups) = (log_groups(&aws), role_names(&aws), target_group_arns(&aws));

    // A name prefix and a tag filter narrow the list; nothing is generated for them here.
    wd.write("main.tfquery.hcl", &ecs_query("    name_prefix = \"front\"\n"));
    let q = wd.tf(&["query"]);
    q.expect_ok("query by prefix");
    assert!(q.stdout.contains("cruddur/frontend-react-js") && !q.stdout.contains("cruddur/backend-flask") && !q.stdout.contains("cruddur/api"), "{}", q.all());
    wd.write("main.tfquery.hcl", &ecs_query("    tags = { team = \"jobs\" }\n"));
    let q = wd.tf(&["query"]);
    q.expect_ok("query by tag");
    assert!(q.stdout.contains("cruddur/worker") && !q.stdout.contains("cruddur/frontend-react-js"), "{}", q.all());

    // One command lists the cluster and its four services and writes their configuration.
    wd.write("main.tfquery.hcl", &ecs_query(""));
    let q = wd.tf(&["query", "-generate-config-out=generated.tf"]);
    q.expect_ok("terraform query");
    for name in HAND_MADE.iter().chain(&["api"]) {
        assert!(q.stdout.contains(&format!("cruddur/{name}")), "{name} not listed:\n{}", q.all());
    }
    let generated = wd.read("generated.tf");
    assert_eq!(generated.matches("resource \"cxflow_ecs_fargate_service\"").count(), 4, "{generated}");
    assert_eq!(generated.matches("resource \"cxflow_ecs_cluster\"").count(), 1, "{generated}");
    assert_eq!(generated.matches("import {").count(), 5, "{generated}");

    let plan = wd.tf(&["plan"]);
    plan.expect_ok("plan with the generated configuration");
    assert!(plan.stdout.contains("Plan: 5 to import, 0 to add, 0 to change, 0 to destroy."), "plan with the generated configuration:\n{}\n{generated}", plan.all());
    wd.apply().expect_ok("apply the imports");
    let again = wd.plan_code();
    assert_eq!(again.code, 0, "plan after the imports must be empty:\n{}", again.all());

    // The provider-made service came back with all its children.
    let api_st = state_of(&wd, "cxflow_ecs_fargate_service", "name", "api");
    assert_eq!(api_st["children"], api_children, "{api_st:#}");
    // The hand-made ones: their service and the revision they run are the children; what they share is configuration.
    for name in HAND_MADE {
        let st = state_of(&wd, "cxflow_ecs_fargate_service", "name", name);
        let kids: Vec<&String> = st["children"].as_object().unwrap().keys().collect();
        assert_eq!(kids, ["service", "task_definition"], "{name}: {st:#}");
        assert!(st["children"]["task_definition"].as_str().unwrap().ends_with(&format!(":task-definition/{name}:1")), "{st:#}");
        assert_eq!(st["log_group_name"], "cruddur");
        assert_eq!((st["execution_role_arn"].as_str(), st["task_role_arn"].as_str()), (Some(exec.as_str()), Some(task.as_str())));
        assert_eq!(st["network"]["security_group_ids"], serde_json::json!([sg]), "{st:#}");
        assert_eq!((st["enable_execute_command"].as_bool(), st["propagate_tags"].as_str(), st["enable_ecs_managed_tags"].as_bool()), (Some(true), Some("SERVICE"), Some(true)));
        // The target group made by hand is the frontend's by reference: none created, no rule.
        let lb = &st["load_balancer"];
        match name {
            "frontend-react-js" => {
                assert_eq!(
                    (lb["target_group_arn"].as_str(), lb["container_name"].as_str(), st["target_group_arn"].as_str()),
                    (Some(tg.as_str()), Some(name), Some(tg.as_str())),
                    "{st:#}"
                );
                assert!(lb["listener_arn"].is_null() && lb["priority"].is_null(), "{st:#}");
            }
            _ => assert!(lb.is_null(), "{st:#}"),
        }
        // ECS reports the namespace by ARN; the one published port under the service's name is the block's default.
        let ns = st["service_connect"]["namespace"].as_str();
        assert_eq!(ns.is_some_and(|n| n.contains(":namespace/")), name == "backend-flask", "{st:#}");
    }
    let cl = state_of(&wd, "cxflow_ecs_cluster", "name", "cruddur");
    assert_eq!(cl["children"].as_object().unwrap().keys().collect::<Vec<_>>(), ["ecs_cluster"], "{cl:#}");
    assert!(cl["service_connect"]["namespace_arn"].as_str().is_some_and(|a| a.contains(":namespace/")), "the hand-made namespace is a reference: {cl:#}");
    // Nothing was created, registered or retagged by the imports.
    assert_eq!((log_groups(&aws), role_names(&aws), target_group_arns(&aws)), (groups, roles, target_groups));
    let backend = service_of(&aws, "backend-flask");
    assert!(backend.task_definition().unwrap().ends_with(":task-definition/backend-flask:1"));
    assert!(backend.tags().iter().all(|t| !t.key().unwrap_or_default().starts_with("cxflow:")), "{:?}", backend.tags());

    // Managed now: a change reaches the hand-made service in place, and it then carries the ownership tag.
    let generated = wd.read("generated.tf");
    let at = generated.find("name                    = \"worker\"").or_else(|| generated.find("\"worker\"")).unwrap();
    let start = generated[..at].rfind("desired_count").unwrap();
    let end = start + generated[start..].find('\n').unwrap();
    let changed = format!("{}desired_count = 2{}", &generated[..start], &generated[end..]);
    wd.write("generated.tf", &changed);
    wd.apply().expect_ok("scale the hand-made worker");
    let worker = service_of(&aws, "worker");
    assert_eq!(worker.desired_count(), 2);
    assert!(worker.task_definition().unwrap().ends_with(":task-definition/worker:1"), "scaling registers no revision");
    assert!(worker.tags().iter().any(|t| t.key() == Some("cxflow:owner") && t.value() == Some("cxflow_ecs_fargate_service/cruddur/worker")), "{:?}", worker.tags());
    assert!(worker.tags().iter().any(|t| t.key() == Some("team") && t.value() == Some("jobs")), "{:?}", worker.tags());
    assert_eq!(wd.plan_code().code, 0, "plan after the change must be empty");
}

#[test]
fn query_of_services_refuses_a_bad_cluster() {
    let moto = Moto::start();
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &provider_block(""));
    wd.write("main.tfquery.hcl", "list \"cxflow_ecs_fargate_service\" \"svc\" {\n  provider = cxflow\n\n  config {\n    cluster = \"not a cluster!\"\n  }\n}\n");
    let q = wd.tf(&["query"]);
    q.expect_fail("query with a bad cluster");
    assert!(q.all().contains("cluster") && q.all().contains("must be an ECS cluster name"), "{}", q.all());
}
