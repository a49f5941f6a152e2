//! Provider functions through `terraform console`, with every Terraform the
//! suite knows (the bundled 1.15 and a system one when present): each
//! function with good arguments gives the value, and with a bad one fails
//! with Terraform's "Invalid value for "<parameter>" parameter" naming it.
//! No AWS is involved: functions never call it.

mod common;

use common::*;

const ACCOUNT: &str = "123456789012";

/// (expression, what the console prints) for good arguments.
fn good() -> Vec<(String, String)> {
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    vec![
        (format!(r#"provider::cxflow::ecr_image_uri("{ACCOUNT}", "eu-west-2", "cxflow/app", "v1.2")"#), format!(r#""{ACCOUNT}.dkr.ecr.eu-west-2.amazonaws.com/cxflow/app:v1.2""#)),
        (format!(r#"provider::cxflow::ecr_image_uri("{ACCOUNT}", "eu-west-2", "app", "{digest}")"#), format!(r#""{ACCOUNT}.dkr.ecr.eu-west-2.amazonaws.com/app@{digest}""#)),
        (
            format!(r#"provider::cxflow::ssm_parameter_arn("eu-west-2", "{ACCOUNT}", "/cxflow/production/gitlab/token")"#),
            format!(r#""arn:aws:ssm:eu-west-2:{ACCOUNT}:parameter/cxflow/production/gitlab/token""#),
        ),
        ("provider::cxflow::fargate_memory_options(256)".into(), "tolist([\n  512,\n  1024,\n  2048,\n])".into()),
        ("length(provider::cxflow::fargate_memory_options(4096))".into(), "23".into()),
        (
            format!(r#"provider::cxflow::secret_arns("arn:aws:ssm:eu-west-2:{ACCOUNT}:parameter/cxflow/production", ["gitlab/token"])"#),
            format!("tomap({{\n  \"GITLAB_TOKEN\" = \"arn:aws:ssm:eu-west-2:{ACCOUNT}:parameter/cxflow/production/gitlab/token\"\n}})"),
        ),
        (format!(r#"provider::cxflow::parse_arn("arn:aws:ecs:eu-west-2:{ACCOUNT}:service/prod/web").resource"#), r#""service/prod/web""#.into()),
    ]
}

/// (expression, the parameter the error must name, a phrase of our text) for bad arguments.
fn bad() -> Vec<(String, &'static str, &'static str)> {
    vec![
        (r#"provider::cxflow::ecr_image_uri("1234", "eu-west-2", "app", "v1")"#.into(), "account_id", "12 digits"),
        (format!(r#"provider::cxflow::ecr_image_uri("{ACCOUNT}", "Europe", "app", "v1")"#), "region", "not an AWS region"),
        (format!(r#"provider::cxflow::ecr_image_uri("{ACCOUNT}", "eu-west-2", "App", "v1")"#), "repository", "ECR repository name"),
        (format!(r#"provider::cxflow::ecr_image_uri("{ACCOUNT}", "eu-west-2", "app", "sha256:beef")"#), "tag_or_digest", "neither an image tag"),
        (format!(r#"provider::cxflow::ssm_parameter_arn("eu-west-2", "{ACCOUNT}", "cxflow/token")"#), "name", "starts with /"),
        ("provider::cxflow::fargate_memory_options(300)".into(), "cpu", "256, 512"),
        (format!(r#"provider::cxflow::secret_arns("arn:aws:ecs:eu-west-2:{ACCOUNT}:cluster/x", ["k"])"#), "prefix_arn", "SSM parameter path"),
        (format!(r#"provider::cxflow::secret_arns("arn:aws:ssm:eu-west-2:{ACCOUNT}:parameter/p", ["a/b", "a-b"])"#), "keys", "both give the variable A_B"),
        (r#"provider::cxflow::parse_arn("ecs:service/x")"#.into(), "arn", "not an ARN"),
    ]
}

#[test]
fn console_evaluates_every_function() {
    for terraform in terraform_clients() {
        let wd = Workdir::new(&terraform, None);
        // Functions need no provider configuration, and no AWS.
        wd.write("main.tf", "terraform {\n  required_providers {\n    cxflow = { source = \"cxflow/cxflow\" }\n  }\n}\n");
        for (expr, want) in good() {
            let r = wd.console(&expr);
            r.expect_ok(&expr);
            assert_eq!(r.stdout.trim(), want, "{} with {}", expr, terraform.display());
        }
        for (expr, param, phrase) in bad() {
            let r = wd.console(&expr);
            r.expect_fail(&expr);
            let all = r.all().replace('\n', " ");
            assert!(all.contains(&format!("Invalid value for \"{param}\" parameter")), "{expr} names {param}:\n{}", r.all());
            assert!(all.contains(phrase), "{expr}: {phrase}\n{}", r.all());
        }
    }
}

/// A function given literal arguments is checked by `terraform validate`,
/// before any plan or AWS call.
#[test]
fn validate_reports_a_bad_function_argument() {
    let wd = Workdir::new(&bundled_terraform(), None);
    wd.write(
        "main.tf",
        &format!(
            "terraform {{\n  required_providers {{\n    cxflow = {{ source = \"cxflow/cxflow\" }}\n  }}\n}}\n\noutput \"image\" {{\n  value = provider::cxflow::ecr_image_uri(\"{ACCOUNT}\", \"eu-west-2\", \"app\", \"bad tag!\")\n}}\n"
        ),
    );
    let r = wd.tf(&["validate"]);
    r.expect_fail("validate with a bad tag");
    assert!(r.all().contains("\"tag_or_digest\""), "{}", r.all());
}
