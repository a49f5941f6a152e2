//! cxflow-awsproxy between the real AWS SDK and a real moto server: per-operation
//! counts for JSON, query, EC2 and REST protocols, added latency, and faults
//! (throttling the SDK itself classifies as throttling, 500s, 503s, resets,
//! reproducible rates that SDK retries ride out).

mod common;

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_runtime::retries::classifiers::AwsErrorCodeClassifier;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::interceptors::context::{Error as CtxError, Input, InterceptorContext};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use common::*;
use serde_json::json;

fn ssm(proxy: &Proxy, retry: RetryConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(aws_sdk_ssm::config::Builder::from(&proxy.sdk()).retry_config(retry).build())
}
fn ec2(proxy: &Proxy, retry: RetryConfig) -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::from_conf(aws_sdk_ec2::config::Builder::from(&proxy.sdk()).retry_config(retry).build())
}
fn iam(proxy: &Proxy, retry: RetryConfig) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::from_conf(aws_sdk_iam::config::Builder::from(&proxy.sdk()).retry_config(retry).build())
}
fn route53(proxy: &Proxy, retry: RetryConfig) -> aws_sdk_route53::Client {
    aws_sdk_route53::Client::from_conf(aws_sdk_route53::config::Builder::from(&proxy.sdk()).retry_config(retry).build())
}

/// Retries quick enough for a test: `attempts` tries, 5..100 ms back-off.
fn fast_retries(attempts: u32) -> RetryConfig {
    RetryConfig::standard().with_max_attempts(attempts).with_initial_backoff(Duration::from_millis(5)).with_max_backoff(Duration::from_millis(100))
}

/// How the SDK's own retry classifier for AWS error codes sees an operation error.
fn sdk_classification<E>(err: E) -> RetryAction
where
    E: std::error::Error + aws_sdk_ssm::error::ProvideErrorMetadata + Send + Sync + 'static,
{
    let mut ctx = InterceptorContext::new(Input::doesnt_matter());
    ctx.set_output_or_error(Err(OrchestratorError::operation(CtxError::erase(err))));
    AwsErrorCodeClassifier::<E>::new().classify_retry(&ctx)
}

#[test]
fn counts_every_operation_across_protocols() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    block_on(async {
        let none = RetryConfig::disabled();
        let ssm = ssm(&proxy, none.clone());
        ssm.put_parameter().name("/proxy/a").value("one").r#type(aws_sdk_ssm::types::ParameterType::String).send().await.unwrap();
        ssm.put_parameter().name("/proxy/b").value("two").r#type(aws_sdk_ssm::types::ParameterType::String).send().await.unwrap();
        let got = ssm.get_parameter().name("/proxy/a").send().await.unwrap();
        assert_eq!(got.parameter().and_then(|p| p.value()), Some("one"), "answers come back intact");
        let vpcs = ec2(&proxy, none.clone()).describe_vpcs().send().await.unwrap();
        assert!(!vpcs.vpcs().is_empty(), "moto's default VPC through the proxy");
        iam(&proxy, none.clone()).list_roles().send().await.unwrap();
        let r53 = route53(&proxy, none.clone());
        let zone = r53.create_hosted_zone().name("proxy.example.com").caller_reference("bench-1").send().await.unwrap();
        let id = zone.hosted_zone().unwrap().id().to_string();
        r53.get_hosted_zone().id(&id).send().await.unwrap();
        let ecs = aws_sdk_ecs::Client::from_conf(aws_sdk_ecs::config::Builder::from(&proxy.sdk()).retry_config(none.clone()).build());
        ecs.list_clusters().send().await.unwrap();
        let sts = aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(&proxy.sdk()).retry_config(none).build());
        sts.get_caller_identity().send().await.unwrap();
    });
    let s = proxy.stats();
    let by = &s["by_operation"];
    assert_eq!(by["ssm:PutParameter"], 2, "{s}");
    assert_eq!(by["ssm:GetParameter"], 1, "{s}");
    assert_eq!(by["ec2:DescribeVpcs"], 1, "{s}");
    assert_eq!(by["iam:ListRoles"], 1, "{s}");
    assert_eq!(by["route53:CreateHostedZone"], 1, "{s}");
    assert_eq!(by["route53:GetHostedZone"], 1, "{s}");
    assert_eq!(by["ecs:ListClusters"], 1, "{s}");
    assert_eq!(by["sts:GetCallerIdentity"], 1, "{s}");
    assert_eq!(s["total"], 9, "{s}");
    assert_eq!(s["faults"]["total"], 0);
    assert_eq!(s["upstream_errors"], 0);

    let calls = proxy.calls();
    assert_eq!(calls.len(), 9, "every call in the timeline");
    assert_eq!(calls[0]["op"], "ssm:PutParameter");
    assert_eq!(calls[8]["op"], "sts:GetCallerIdentity");
    for w in calls.windows(2) {
        assert!(w[0]["end_us"].as_u64() <= w[1]["start_us"].as_u64(), "sequential calls do not overlap: {w:?}");
    }
    assert!(calls.iter().all(|c| c["status"] == 200 || c["status"] == 201), "{calls:?}");

    proxy.reset();
    assert_eq!(proxy.total(), 0, "reset zeroes the counters");
    assert!(proxy.calls().is_empty(), "and forgets the calls");

    // The added latency applies to every call and can be changed at run time.
    proxy.set_delay_ms(300);
    let took = block_on(async {
        let c = ssm(&proxy, RetryConfig::disabled());
        let t = Instant::now();
        c.get_parameter().name("/proxy/b").send().await.unwrap();
        t.elapsed()
    });
    assert!(took >= Duration::from_millis(300), "delay added: {took:?}");
    assert_eq!(proxy.stats()["delay_ms"], 300);
    assert_eq!(proxy.count("ssm:GetParameter"), 1);
}

#[test]
fn throttling_is_what_the_sdk_calls_throttling_in_every_protocol() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &["--fault", "op=ssm:PutParameter,kind=throttle,rate=1.0"]);
    proxy.set_faults(json!([
        "op=ssm:PutParameter,kind=throttle,rate=1.0",
        "op=ec2:DescribeVpcs,kind=throttle",
        "op=iam:*,kind=throttle",
        "op=route53:ListHostedZones,kind=throttle"
    ]));
    block_on(async {
        let none = RetryConfig::disabled();
        // JSON protocol (SSM).
        let e = ssm(&proxy, none.clone()).put_parameter().name("/t/x").value("v").r#type(aws_sdk_ssm::types::ParameterType::String).send().await.unwrap_err();
        let raw_status = e.raw_response().map(|r| r.status().as_u16());
        let svc = e.into_service_error();
        assert_eq!(svc.code(), Some("ThrottlingException"));
        assert_eq!(svc.message(), Some("Rate exceeded"));
        assert_eq!(raw_status, Some(400));
        assert_eq!(sdk_classification(svc), RetryAction::throttling_error());
        // EC2 query protocol.
        let e = ec2(&proxy, none.clone()).describe_vpcs().send().await.unwrap_err().into_service_error();
        assert_eq!(e.code(), Some("RequestLimitExceeded"));
        assert_eq!(sdk_classification(e), RetryAction::throttling_error());
        // awsQuery (IAM).
        let e = iam(&proxy, none.clone()).list_roles().send().await.unwrap_err().into_service_error();
        assert_eq!(e.code(), Some("Throttling"));
        assert_eq!(sdk_classification(e), RetryAction::throttling_error());
        // restXml (Route53).
        let e = route53(&proxy, none).list_hosted_zones().send().await.unwrap_err().into_service_error();
        assert_eq!(e.code(), Some("Throttling"));
        assert_eq!(sdk_classification(e), RetryAction::throttling_error());
    });
    let s = proxy.stats();
    assert_eq!(s["faults"]["by_kind"]["throttle"], 4, "{s}");
    assert_eq!(s["faults"]["by_operation"]["iam:ListRoles"]["throttle"], 1, "{s}");

    // With retries on, the SDK retries a throttled call up to its attempt limit.
    proxy.reset();
    block_on(async {
        let e = ssm(&proxy, fast_retries(3)).put_parameter().name("/t/x").value("v").r#type(aws_sdk_ssm::types::ParameterType::String).send().await.unwrap_err();
        assert_eq!(e.into_service_error().code(), Some("ThrottlingException"));
    });
    assert_eq!(proxy.count("ssm:PutParameter"), 3, "three attempts: {}", proxy.stats());
}

#[test]
fn server_errors_and_resets_fail_calls_without_touching_moto() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &["--fault", "op=ssm:GetParameter,kind=500", "--fault", "op=ssm:GetParameters,kind=503", "--fault", "op=ec2:*,kind=reset"]);
    block_on(async {
        let none = RetryConfig::disabled();
        let c = ssm(&proxy, none.clone());
        let e = c.get_parameter().name("/nope").send().await.unwrap_err();
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500), "{e:?}");
        assert_eq!(e.into_service_error().code(), Some("InternalFailure"));
        let e = c.get_parameters().names("/nope").send().await.unwrap_err();
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(503), "{e:?}");
        assert_eq!(e.into_service_error().code(), Some("ServiceUnavailable"));
        let e = ec2(&proxy, none.clone()).describe_vpcs().send().await.unwrap_err();
        assert!(matches!(e, SdkError::DispatchFailure(_) | SdkError::ResponseError(_)), "a reset is a transport failure: {e:?}");
        assert!(e.raw_response().is_none(), "no answer at all");
    });
    let s = proxy.stats();
    assert_eq!(s["faults"]["by_kind"], json!({"500": 1, "503": 1, "reset": 1}), "{s}");
    let statuses: Vec<(String, u64)> = proxy.calls().iter().map(|c| (c["fault"].as_str().unwrap_or("").to_string(), c["status"].as_u64().unwrap())).collect();
    assert_eq!(statuses, vec![("500".to_string(), 500), ("503".to_string(), 503), ("reset".to_string(), 0)]);

    // Faults replaced at run time: a count-limited 500 fails once, then calls go through.
    proxy.set_faults(json!([{"op": "ec2:DescribeVpcs", "kind": "500", "rate": 1.0, "count": 1}]));
    block_on(async {
        let c = ec2(&proxy, RetryConfig::disabled());
        let e = c.describe_vpcs().send().await.unwrap_err();
        assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500));
        assert_eq!(e.into_service_error().code(), Some("InternalError"));
        assert!(!c.describe_vpcs().send().await.unwrap().vpcs().is_empty());
    });
    // A slow fault answers normally, late.
    proxy.set_faults(json!(["op=ssm:*,kind=slow,ms=400"]));
    let took = block_on(async {
        let t = Instant::now();
        let e = ssm(&proxy, RetryConfig::disabled()).get_parameter().name("/nope").send().await.unwrap_err();
        assert_eq!(e.into_service_error().code(), Some("ParameterNotFound"), "moto's own answer");
        t.elapsed()
    });
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Bad rules are refused with a reason.
    let (status, body) = proxy.control("POST", "/__proxy/faults", "[{\"op\":\"*\",\"kind\":\"teapot\"}]");
    assert_eq!(status, 400);
    assert!(body.contains("teapot"), "{body}");
    assert_eq!(proxy.control("GET", "/__proxy/nothing", "").0, 404);
}

#[test]
fn sdk_retries_ride_out_thirty_percent_throttling_reproducibly() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &["--seed", "42"]);
    let run = |round: usize| -> serde_json::Value {
        proxy.reset();
        proxy.set_faults_seeded(json!([{"op": "*", "kind": "throttle", "rate": 0.3}]), 42);
        block_on(async {
            let c = ssm(&proxy, fast_retries(10));
            let e = ec2(&proxy, fast_retries(10));
            for i in 0..20 {
                let name = format!("/retry/{round}/{i}");
                c.put_parameter().name(&name).value(format!("v{i}")).r#type(aws_sdk_ssm::types::ParameterType::String).send().await.expect("put succeeds despite throttling");
                let got = c.get_parameter().name(&name).send().await.expect("get succeeds despite throttling");
                assert_eq!(got.parameter().and_then(|p| p.value()), Some(format!("v{i}").as_str()));
                if i % 5 == 0 {
                    e.describe_vpcs().send().await.expect("describe succeeds despite throttling");
                }
            }
        });
        proxy.stats()
    };
    let first = run(1);
    let faults = first["faults"]["total"].as_u64().unwrap();
    let total = first["total"].as_u64().unwrap();
    assert!(faults > 0, "some calls were throttled: {first}");
    assert_eq!(total, 44 + faults, "every throttled call was retried once more: {first}");
    assert!((faults as f64) / (total as f64) < 0.5, "{first}");
    let second = run(2);
    assert_eq!(second["faults"]["total"], faults, "same seed, same calls: same faults");
}

#[test]
fn refuses_a_non_loopback_upstream() {
    let out = std::process::Command::new(proxy_binary()).args(["--upstream", "http://10.1.2.3:80", "--port", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "never started listening");
}

#[test]
fn a_lost_answer_means_the_call_happened_and_the_retry_sees_it() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto, &[]);
    proxy.set_faults(json!(["op=iam:CreateRole,kind=lost,count=1"]));
    let err = block_on(async {
        let iam = iam(&proxy, fast_retries(3));
        let doc = r#"{"Version":"2012-10-17","Statement":[]}"#;
        iam.create_role().role_name("lost-answer").assume_role_policy_document(doc).send().await.unwrap_err()
    });
    // The first attempt created the role; the SDK retried and was told it exists.
    assert_eq!(err.code(), Some("EntityAlreadyExists"), "{err:?}");
    assert_eq!(proxy.count("iam:CreateRole"), 2, "one lost answer, one retry: {}", proxy.stats());
    assert_eq!(proxy.stats()["faults"]["by_kind"]["lost"], 1);
    let exists = block_on(async { aws_sdk_iam::Client::new(&moto.sdk()).get_role().role_name("lost-answer").send().await.is_ok() });
    assert!(exists, "the request reached moto before the connection was dropped");

    // Every request body is kept, and can be read back per operation.
    let bodies = proxy.requests("iam:CreateRole");
    assert_eq!(bodies.len(), 2);
    assert!(bodies.iter().all(|b| b.contains("RoleName=lost-answer")), "{bodies:?}");
    proxy.reset();
    assert!(proxy.requests("iam:CreateRole").is_empty(), "reset forgets the bodies");
}
