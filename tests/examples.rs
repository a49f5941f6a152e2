//! Every directory under examples/ holding .tf files must pass `terraform
//! validate` with the real Terraform CLI and the provider under test
//! (dev_overrides), and be formatted as `terraform fmt` would. The docs embed
//! these files.
//!
//! No `terraform init`: with dev_overrides Terraform needs none for the
//! provider (it says "Skip terraform init when using provider development
//! overrides"), and Terraform 1.11 still asks registry.terraform.io for
//! cxflow/cxflow during init, which fails offline. The one thing init would
//! add, installing modules, is `terraform get`, run for every directory.
//!
//! Snippet directories (examples/resources/<type>/ and friends) usually have
//! no `required_providers`; for those the test adds one naming cxflow/cxflow,
//! exactly as a user's root module would.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn tf_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "tf")).collect();
    v.sort();
    v
}

/// Whether `dir` holds query files (`*.tfquery.hcl`, Terraform 1.14+), which `validate -query` checks.
fn has_query_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tfquery.hcl"))
}

/// Directories (relative to `root`) that directly contain .tf or query files, sorted.
fn example_dirs(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let dir = root.join(rel);
    if !tf_files(&dir).is_empty() || has_query_files(&dir) {
        out.push(rel.to_path_buf());
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir() && e.file_name() != ".terraform")
        .map(|e| rel.join(e.file_name()))
        .collect();
    subdirs.sort();
    for s in subdirs {
        example_dirs(root, &s, out);
    }
}

fn all_example_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    example_dirs(&repo_root().join("examples"), Path::new(""), &mut dirs);
    dirs
}

#[test]
fn every_example_validates() {
    let dirs = all_example_dirs();
    assert!(dirs.iter().any(|d| d == Path::new("provider")), "examples/provider is missing; found {dirs:?}");
    let mut failures = Vec::new();
    let mut checked = 0;
    for tf in terraform_clients() {
        let wd = Workdir::new(&tf, None);
        copy_dir(&repo_root().join("examples"), &wd.path().join("examples"));
        // `action` and `list` blocks are Terraform 1.14's; older clients check everything else.
        let newer = terraform_version(&tf) >= (1, 14);
        for rel in dirs.iter().filter(|r| newer || !(r.starts_with("actions") || r.starts_with("list-resources"))) {
            let dir = wd.path().join("examples").join(rel);
            let names_provider = tf_files(&dir).iter().any(|f| std::fs::read_to_string(f).unwrap().contains("required_providers"));
            if !names_provider {
                std::fs::write(dir.join("zz_test_required_providers.tf"), "terraform {\n  required_providers {\n    cxflow = { source = \"cxflow/cxflow\" }\n  }\n}\n").unwrap();
            }
            let chdir = format!("-chdir=examples/{}", rel.display());
            let label = format!("examples/{} with {}", rel.display(), tf.display());
            let get = wd.tf(&[&chdir, "get"]);
            if !get.ok() {
                failures.push(format!("{label}: terraform get (module installation) failed:\n{}", get.all()));
                continue;
            }
            let mut args = vec![chdir.as_str(), "validate"];
            if has_query_files(&dir) {
                args.push("-query");
            }
            let validate = wd.tf(&args);
            if !validate.ok() || !validate.stdout.contains("The configuration is valid") {
                failures.push(format!("{label}: terraform validate failed:\n{}", validate.all()));
                continue;
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{} example check(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
    assert!(checked >= 1);
}

/// The same steps must actually consult the provider's schema: a type the
/// provider lacks fails. (Guards against the check above passing without the
/// provider, e.g. through a broken override.)
#[test]
fn validation_reaches_the_provider_schema() {
    for tf in terraform_clients() {
        let wd = Workdir::new(&tf, None);
        wd.write("main.tf", &format!("{}\nresource \"cxflow_no_such_type\" \"x\" {{}}\n", provider_block("")));
        wd.tf(&["get"]).expect_ok("terraform get");
        let v = wd.tf(&["validate"]);
        v.expect_fail("validate of an unknown resource type");
        assert!(v.all().contains("cxflow_no_such_type") && v.all().contains("does not support resource type"), "{}", v.all());
    }
}

#[test]
fn examples_are_formatted() {
    let dirs = all_example_dirs();
    assert!(!dirs.is_empty());
    let wd = Workdir::new(&bundled_terraform(), None);
    copy_dir(&repo_root().join("examples"), &wd.path().join("examples"));
    let fmt = wd.tf(&["fmt", "-check", "-diff", "-recursive", "examples"]);
    assert!(fmt.ok(), "examples/ is not formatted as `terraform fmt` wants (run `.tools/bin/terraform fmt -recursive examples`):\n{}", fmt.all());
}
