//! The AWS stand-in's own self-test: every addition scripts/standin makes to
//! moto, called through boto3 and compared with the AWS API reference's
//! shapes (scripts/standin/test_standin.py).

mod common;

use std::process::Command;

#[test]
fn every_addition_answers_as_the_api_reference_documents() {
    let python = common::repo_root().join(".tools/venv/bin/python");
    let out =
        Command::new(python).arg(common::repo_root().join("scripts/standin/test_standin.py")).env("PYTHONDONTWRITEBYTECODE", "1").output().expect("run the stand-in self-test");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "stand-in self-test failed:\n{text}");
    assert!(text.contains("OK"), "the self-test reports its result:\n{text}");
}
