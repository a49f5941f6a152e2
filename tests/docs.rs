//! The committed registry docs (docs/index.md, docs/resources/,
//! docs/ephemeral-resources/, docs/data-sources/) must be exactly what the
//! provider binary's `docs` subcommand generates from the current schema and
//! examples/. Fix a failure with `make docs`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{Run, copy_dir, provider_binary, repo_root};

const PAGE_DIRS: [&str; 6] = ["resources", "ephemeral-resources", "data-sources", "actions", "list-resources", "functions"];

/// The generated part of a docs/ directory: relative path -> content.
fn generated_pages(docs: &Path) -> BTreeMap<String, String> {
    let mut pages = BTreeMap::new();
    if let Ok(s) = std::fs::read_to_string(docs.join("index.md")) {
        pages.insert("index.md".to_string(), s);
    }
    for dir in PAGE_DIRS {
        let Ok(listing) = std::fs::read_dir(docs.join(dir)) else { continue };
        for entry in listing {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") {
                pages.insert(format!("{dir}/{name}"), std::fs::read_to_string(entry.path()).unwrap());
            }
        }
    }
    pages
}

fn run_docs(root: &Path) -> Run {
    Command::new(provider_binary()).arg("docs").arg(root).output().expect("run the provider's docs subcommand").into()
}

/// A temporary repository root holding a copy of examples/.
fn scratch_root() -> tempfile::TempDir {
    let tmp = tempfile::Builder::new().prefix("cxflow-docs-").tempdir().unwrap();
    let examples = repo_root().join("examples");
    if examples.is_dir() {
        copy_dir(&examples, &tmp.path().join("examples"));
    }
    tmp
}

/// The first differing line of two texts, with a little context.
fn first_difference(committed: &str, generated: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (committed.lines().collect(), generated.lines().collect());
    let i = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    format!(
        "first difference at line {}:\n  committed: {}\n  generated: {}",
        i + 1,
        a.get(i).map_or("<end of file>".to_string(), |l| format!("{l:?}")),
        b.get(i).map_or("<end of file>".to_string(), |l| format!("{l:?}")),
    )
}

#[test]
fn committed_docs_match_the_schema() {
    let tmp = scratch_root();
    run_docs(tmp.path()).expect_ok("terraform-provider-cxflow docs");
    let generated = generated_pages(&tmp.path().join("docs"));
    let index = generated.get("index.md").expect("the generator wrote no index.md");
    assert!(index.contains("page_title: \"cxflow Provider\"") && index.contains("## Schema"), "implausible index.md:\n{index}");

    let committed = generated_pages(&repo_root().join("docs"));
    let fix = "The committed docs are out of date with the provider schema or examples/: run `make docs` and commit docs/.";
    let mut paths: Vec<&String> = generated.keys().chain(committed.keys()).collect();
    paths.sort();
    paths.dedup();
    for p in paths {
        match (committed.get(p), generated.get(p)) {
            (Some(c), Some(g)) if c == g => {}
            (Some(c), Some(g)) => panic!("docs/{p} differs from the generated page; {}\n{fix}", first_difference(c, g)),
            (None, Some(_)) => panic!("docs/{p} is missing (the schema has it).\n{fix}"),
            (Some(_), None) => panic!("docs/{p} is stale (no such type in the schema).\n{fix}"),
            (None, None) => unreachable!(),
        }
    }
}

#[test]
fn docs_subcommand_is_idempotent_and_spares_hand_written_pages() {
    let tmp = scratch_root();
    let docs = tmp.path().join("docs");
    std::fs::create_dir_all(docs.join("resources")).unwrap();
    std::fs::create_dir_all(docs.join("data-sources")).unwrap();
    for hand in ["design.md", "releasing.md", "performance.md", "reliability.md"] {
        std::fs::write(docs.join(hand), format!("hand-written {hand}\n")).unwrap();
    }
    std::fs::write(docs.join("resources/removed_type.md"), "stale\n").unwrap();
    std::fs::write(docs.join("data-sources/removed.md"), "stale\n").unwrap();

    let first = run_docs(tmp.path());
    first.expect_ok("docs (first run)");
    assert!(first.stdout.contains("removed docs/resources/removed_type.md"), "{}", first.all());
    assert!(!docs.join("resources/removed_type.md").exists());
    assert!(first.stdout.contains("removed docs/data-sources/removed.md"), "{}", first.all());
    assert!(!docs.join("data-sources/removed.md").exists());
    assert!(docs.join("data-sources/ecs_service.md").exists() && docs.join("data-sources/image.md").exists(), "a page per data source");
    for hand in ["design.md", "releasing.md", "performance.md", "reliability.md"] {
        assert_eq!(std::fs::read_to_string(docs.join(hand)).unwrap(), format!("hand-written {hand}\n"), "{hand} was touched");
    }
    let pages = generated_pages(&docs);

    let second = run_docs(tmp.path());
    second.expect_ok("docs (second run)");
    assert!(second.stdout.contains(&format!("({} written", 0)), "a second run rewrote pages:\n{}", second.stdout);
    assert_eq!(generated_pages(&docs), pages, "output changed between runs");
}

#[test]
fn docs_subcommand_reports_bad_usage() {
    let r: Run = Command::new(provider_binary()).args(["docs", "a", "b"]).output().unwrap().into();
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("usage"), "{}", r.all());
    let r = run_docs(Path::new("/nonexistent/cxflow-repo"));
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("not a directory"), "{}", r.all());
}
