//! The plugin protocol foundation, driven by real Terraform and by a direct
//! gRPC client of our own: schema, validation, configure failures, logging,
//! handshake, AutoMTLS, StopProvider and controller shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use cxflow::framework::Provider;
use cxflow::plugin::goplugin::grpc_controller_client::GrpcControllerClient;
use cxflow::plugin::tfplugin6 as pb;
use cxflow::plugin::tfplugin6::provider_client::ProviderClient;
use cxflow::provider::CxflowProvider;

const GOLDEN: &str = "tests/golden/providers-schema.json";

#[test]
fn schema_matches_golden_file_under_the_registry_address() {
    let wd = Workdir::new(&bundled_terraform(), None);
    wd.write("main.tf", &provider_block("  skip_credentials_validation = true"));
    let r = wd.tf(&["providers", "schema", "-json"]);
    r.expect_ok("providers schema -json");
    let got: serde_json::Value = serde_json::from_str(&r.stdout).expect("schema JSON");
    let ours = &got["provider_schemas"]["registry.terraform.io/cxflow/cxflow"];
    assert!(ours.is_object(), "provider listed at registry.terraform.io/cxflow/cxflow");
    assert!(ours["provider"]["block"]["attributes"]["region"].is_object());
    assert!(ours["provider"]["block"]["block_types"]["assume_role"].is_object());
    assert_eq!(ours["resource_schemas"]["cxflow_secret_sync"]["block"]["attributes"]["secrets_wo"]["write_only"], true);
    let pretty = serde_json::to_string_pretty(&got).unwrap() + "\n";
    let path = repo_root().join(GOLDEN);
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &pretty).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(want == pretty, "the provider schema differs from {GOLDEN}; if the change is intended, run `UPDATE_GOLDEN=1 cargo test --test protocol schema` and commit the file");
}

#[test]
fn validate_names_a_wrong_typed_provider_argument() {
    for terraform in terraform_clients() {
        let wd = Workdir::new(&terraform, None);
        let resource = "resource \"cxflow_secret_sync\" \"x\" {\n  path_prefix = \"/a\"\n}\n";
        wd.write("main.tf", &(provider_block("  shared_config_files = \"not-a-list\"") + resource));
        let r = wd.tf(&["validate"]);
        r.expect_fail("validate with a wrong-typed argument");
        assert!(r.all().contains("shared_config_files"), "error names the argument:\n{}", r.all());
        // Our own range check names its argument too, once the type error is fixed.
        wd.write("main.tf", &(provider_block("  max_retries = 1000") + resource));
        let r = wd.tf(&["validate"]);
        r.expect_fail("validate with max_retries out of range");
        assert!(r.all().contains("max_retries") && r.all().contains("between 0 and 100"), "{}", r.all());
    }
}

#[test]
fn unreachable_endpoint_fails_plan_fast_with_one_clear_error() {
    // A port with nothing listening.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let wd = Workdir::new(&bundled_terraform(), None);
    let mut cfg = provider_block(&format!("  endpoints {{\n    sts = \"{url}\"\n    ssm = \"{url}\"\n  }}"));
    cfg.push_str("resource \"cxflow_secret_sync\" \"x\" {\n  path_prefix = \"/cxflow/test\"\n  parameters = { a = \"b\" }\n}\n");
    wd.write("main.tf", &cfg);
    let start = Instant::now();
    let r = wd.tf(&["plan"]);
    let took = start.elapsed();
    r.expect_fail("plan against a dead endpoint");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let errors = r.all().matches("Error: ").count();
    assert_eq!(errors, 1, "exactly one error:\n{}", r.all());
    assert!(r.all().contains(&url), "the error names the endpoint:\n{}", r.all());
}

#[test]
fn debug_logging_shows_provider_lines() {
    let moto = Moto::start();
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    let mut cfg = provider_block("");
    cfg.push_str("resource \"cxflow_secret_sync\" \"x\" {\n  path_prefix = \"/cxflow/test\"\n  parameters = { a = \"b\" }\n}\n");
    wd.write("main.tf", &cfg);
    let r = wd.tf_env(&["plan"], &[("TF_LOG", "debug")]);
    r.expect_ok("plan with TF_LOG=debug");
    assert!(r.stderr.contains("provider configured"), "provider's own log line forwarded:\n{}", &r.stderr[..r.stderr.len().min(4000)]);
    assert!(r.stderr.contains("@module=provider.cxflow"), "with its module");
    // TF_LOG_PROVIDER=off silences the provider while Terraform still logs.
    let r = wd.tf_env(&["plan"], &[("TF_LOG", "debug"), ("TF_LOG_PROVIDER", "off")]);
    r.expect_ok("plan with provider logs off");
    assert!(!r.stderr.contains("provider configured"));
}

#[test]
fn run_by_hand_the_binary_explains_itself() {
    let out = Command::new(provider_binary()).env_remove("TF_PLUGIN_MAGIC_COOKIE").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("plugin for Terraform"), "{err}");
}

/// Start the plugin as go-plugin would and read its handshake line.
fn start_plugin(client_cert: Option<&str>, extra_env: &[(&str, &str)]) -> (std::process::Child, Vec<String>) {
    let mut cmd = Command::new(provider_binary());
    cmd.env("TF_PLUGIN_MAGIC_COOKIE", cxflow::plugin::serve::MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(c) = client_cert {
        cmd.env("PLUGIN_CLIENT_CERT", c);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (child, line.trim_end().split('|').map(str::to_string).collect())
}

#[test]
fn handshake_line_carries_the_autotls_certificate() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let client = params.self_signed(&key).unwrap();
    let (mut child, parts) = start_plugin(Some(&client.pem()), &[]);
    let _ = child.kill();
    assert_eq!(parts.len(), 6, "{parts:?}");
    assert_eq!(&parts[0..3], &["1", "6", "unix"]);
    assert!(parts[3].contains("plugin-cxflow-"));
    assert_eq!(parts[4], "grpc");
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD_NO_PAD.decode(&parts[5]).expect("base64 without padding");
    assert_eq!(der[0], 0x30, "a DER certificate");
    assert!(der.len() > 200);
}

#[test]
fn interrupts_from_the_first_moment_do_not_kill_the_plugin() {
    // Terraform delivers Ctrl-C to its whole process group, providers
    // included, and then calls StopProvider: a plugin must survive SIGINT at
    // any moment, also between its handshake line and serving.
    let (mut child, parts) = start_plugin(None, &[]);
    let pid = child.id() as libc::pid_t;
    for _ in 0..5 {
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.try_wait().unwrap().is_none(), "the plugin died of SIGINT");
    let sock = parts[3].clone();
    let schema = block_on(async move { ProviderClient::new(connect(sock).await).get_provider_schema(pb::get_provider_schema::Request {}).await });
    assert!(schema.unwrap().into_inner().resource_schemas.contains_key("cxflow_cluster"), "still serving after the interrupts");
    let _ = child.kill();
    let _ = child.wait();
}

async fn connect(sock: String) -> tonic::transport::Channel {
    tonic::transport::Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let s = sock.clone();
            async move { Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tokio::net::UnixStream::connect(s).await?)) }
        }))
        .await
        .unwrap()
}

#[test]
fn stop_provider_cancels_in_flight_configure_and_shutdown_exits() {
    // An "STS endpoint" that accepts connections and never answers.
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", tarpit.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in tarpit.incoming().flatten() {
            held.push(c);
        }
    });
    let (mut child, parts) = start_plugin(None, &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "y")]);
    let sock = parts[3].clone();
    block_on(async move {
        let ch = connect(sock).await;
        let mut provider = ProviderClient::new(ch.clone());
        let schema = provider.get_provider_schema(pb::get_provider_schema::Request {}).await.unwrap().into_inner();
        assert!(schema.resource_schemas.contains_key("cxflow_secret_sync"));

        let ty = CxflowProvider.schema().value_type();
        let mut cfg = cxflow::framework::Value::from_json(&serde_json::json!({"region": "us-east-1", "endpoints": [{"sts": url}]}), &ty).unwrap();
        cfg.set_attr("max_retries", cxflow::framework::Value::int(0));
        let dv = pb::DynamicValue { msgpack: cfg.to_msgpack(&ty).unwrap(), json: vec![] };
        let mut p2 = provider.clone();
        let started = Instant::now();
        let configure = tokio::spawn(async move {
            p2.configure_provider(pb::configure_provider::Request { terraform_version: "1.15.5".into(), config: Some(dv), client_capabilities: None }).await.unwrap().into_inner()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!configure.is_finished(), "configure is waiting on the silent endpoint");
        provider.stop_provider(pb::stop_provider::Request {}).await.unwrap();
        let resp = configure.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "cancelled promptly, took {:?}", started.elapsed());
        assert_eq!(resp.diagnostics.len(), 1);
        assert!(resp.diagnostics[0].summary.contains("cancelled"), "{:?}", resp.diagnostics);

        // Functions are served without a configured provider.
        let f = provider.get_functions(pb::get_functions::Request {}).await.unwrap().into_inner();
        assert!(f.diagnostics.is_empty());
        let mut names: Vec<&str> = f.functions.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["ecr_image_uri", "fargate_memory_options", "parse_arn", "secret_arns", "ssm_parameter_arn"]);
        let arg = |s: &str| pb::DynamicValue { msgpack: cxflow::framework::Value::string(s).to_msgpack(&cxflow::framework::Type::String).unwrap(), json: vec![] };
        let call = provider.call_function(pb::call_function::Request { name: "parse_arn".into(), arguments: vec![arg("nope")] }).await.unwrap().into_inner();
        assert_eq!(call.error.as_ref().and_then(|e| e.function_argument), Some(0), "{call:?}");
        let call = provider.call_function(pb::call_function::Request { name: "parse_arn".into(), arguments: vec![] }).await.unwrap().into_inner();
        assert!(call.error.is_some_and(|e| e.function_argument.is_none() && e.text.contains("expects 1 argument(s), got 0")));
        // Every managed resource has an identity: account, region, then what names it there.
        let ids = provider.get_resource_identity_schemas(pb::get_resource_identity_schemas::Request {}).await.unwrap().into_inner();
        assert!(ids.diagnostics.is_empty());
        let mut types: Vec<&str> = ids.identity_schemas.keys().map(String::as_str).collect();
        types.sort();
        let schema = provider.get_provider_schema(pb::get_provider_schema::Request {}).await.unwrap().into_inner();
        let mut managed: Vec<&str> = schema.resource_schemas.keys().map(String::as_str).collect();
        managed.sort();
        assert_eq!(types, managed);
        let svc = &ids.identity_schemas["cxflow_ecs_fargate_service"];
        let attrs: Vec<(&str, bool)> = svc.identity_attributes.iter().map(|a| (a.name.as_str(), a.required_for_import)).collect();
        assert_eq!(attrs, [("account_id", false), ("region", false), ("cluster", true), ("name", true)]);
        // A stored identity is read back in the current layout; what the layout no longer has is dropped.
        let raw = br#"{"account_id":"123456789012","region":"us-east-1","cluster":"c","name":"s","retired":"x"}"#.to_vec();
        let up = provider
            .upgrade_resource_identity(pb::upgrade_resource_identity::Request {
                type_name: "cxflow_ecs_fargate_service".into(),
                version: 0,
                raw_identity: Some(pb::RawState { json: raw, flatmap: Default::default() }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(up.diagnostics.is_empty(), "{:?}", up.diagnostics);
        let ty = cxflow::framework::Type::object(["account_id", "region", "cluster", "name"].map(|n| (n, cxflow::framework::Type::String)));
        let v = cxflow::framework::Value::from_msgpack(&up.upgraded_identity.unwrap().identity_data.unwrap().msgpack, &ty).unwrap();
        assert_eq!((v.get("cluster").as_str(), v.get("name").as_str()), (Some("c"), Some("s")));
        let bad = provider
            .upgrade_resource_identity(pb::upgrade_resource_identity::Request {
                type_name: "cxflow_ecs_fargate_service".into(),
                version: 0,
                raw_identity: Some(pb::RawState { json: b"not json".to_vec(), flatmap: Default::default() }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(bad.upgraded_identity.is_none() && bad.diagnostics[0].summary.contains("identity"), "{:?}", bad.diagnostics);

        let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
        let h = health.check(tonic_health::pb::HealthCheckRequest { service: "plugin".into() }).await.unwrap().into_inner();
        assert_eq!(h.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

        GrpcControllerClient::new(ch).shutdown(cxflow::plugin::goplugin::Empty {}).await.unwrap();
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit after Shutdown: {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "plugin did not exit after Shutdown");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn data_source_with_unknown_configuration_is_read_later_without_aws() {
    use cxflow::framework::{Type, Value};
    // No ConfigureProvider: an answer at all shows no AWS client was needed.
    let (mut child, parts) = start_plugin(None, &[]);
    let sock = parts[3].clone();
    block_on(async move {
        let mut provider = ProviderClient::new(connect(sock).await);
        let meta = provider.get_metadata(pb::get_metadata::Request {}).await.unwrap().into_inner();
        let mut names: Vec<&str> = meta.data_sources.iter().map(|d| d.type_name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["cxflow_ecs_service", "cxflow_image"]);
        let schema = provider.get_provider_schema(pb::get_provider_schema::Request {}).await.unwrap().into_inner();
        assert!(schema.data_source_schemas.contains_key("cxflow_image"));

        let ds = CxflowProvider.data_sources().into_iter().find(|d| d.type_name() == "cxflow_image").unwrap();
        let ty = ds.schema().value_type();
        let Type::Object(attrs) = &ty else { panic!("an object type") };
        let mut cfg = Value::Object(attrs.keys().map(|k| (k.clone(), Value::Null)).collect());
        cfg.set_attr("repository", Value::string("team/app"));
        cfg.set_attr("tag", Value::Unknown);
        let dv = pb::DynamicValue { msgpack: cfg.to_msgpack(&ty).unwrap(), json: vec![] };
        for deferral_allowed in [false, true] {
            let caps = pb::ClientCapabilities { deferral_allowed, write_only_attributes_allowed: true };
            let r = provider
                .read_data_source(pb::read_data_source::Request {
                    type_name: "cxflow_image".into(),
                    config: Some(dv.clone()),
                    provider_meta: None,
                    client_capabilities: Some(caps),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(r.diagnostics.is_empty(), "{:?}", r.diagnostics);
            let state = Value::from_msgpack(&r.state.unwrap().msgpack, &ty).unwrap();
            assert_eq!(state.get("repository").as_str(), Some("team/app"), "the configuration is kept");
            assert!(state.get("tag").is_unknown());
            for computed in ["digest", "image_uri", "tags", "pushed_at", "size_bytes", "scan_status", "scan_findings"] {
                assert!(state.get(computed).is_unknown(), "{computed} is unknown until the configuration is known");
            }
            assert!(state.get("registry_id").is_null(), "an unset optional input stays null");
            let want = deferral_allowed.then_some(pb::deferred::Reason::ResourceConfigUnknown as i32);
            assert_eq!(r.deferred.map(|d| d.reason), want, "deferred exactly when the client allows it");
        }
        // A known configuration needs the configured client: the unconfigured provider says so rather than crash.
        cfg.set_attr("tag", Value::string("v1"));
        let dv = pb::DynamicValue { msgpack: cfg.to_msgpack(&ty).unwrap(), json: vec![] };
        let r = provider
            .read_data_source(pb::read_data_source::Request { type_name: "cxflow_image".into(), config: Some(dv), provider_meta: None, client_capabilities: None })
            .await
            .unwrap()
            .into_inner();
        assert!(r.state.is_none() && r.diagnostics[0].summary.contains("not configured"), "{:?}", r.diagnostics);
        let r = provider
            .read_data_source(pb::read_data_source::Request { type_name: "cxflow_nothing".into(), config: None, provider_meta: None, client_capabilities: None })
            .await
            .unwrap()
            .into_inner();
        assert!(r.diagnostics[0].summary.contains("Unknown data source"), "{:?}", r.diagnostics);
    });
    let _ = child.kill();
    let _ = child.wait();
}
