//! The composite contract suite (tests/common/contract.rs says what it
//! checks). Every composite resource joins with one line below.

mod common;

use common::contract::{Subject, run};

#[test]
fn cxflow_ecs_fargate_service() {
    run(&Subject { type_name: "cxflow_ecs_fargate_service", config: include_str!("contract/cxflow_ecs_fargate_service.tf") });
}

#[test]
fn cxflow_cluster() {
    run(&Subject { type_name: "cxflow_cluster", config: include_str!("contract/cxflow_cluster.tf") });
}

#[test]
fn cxflow_ecs_cluster() {
    run(&Subject { type_name: "cxflow_ecs_cluster", config: include_str!("contract/cxflow_ecs_cluster.tf") });
}

/// State written by the provider before every composite moved onto the one
/// driver (commit c7155eb, `tests/fixtures/legacy/`, made by applying
/// tests/contract/cxflow_ecs_fargate_service.tf with that build) still works.
/// The test recreates the objects it names (the same configuration applied
/// with this build: deterministic names must come out the same), puts the
/// identities AWS chose this time into the old state, and plans: no
/// replacement of the resource or of any child, and the apply converges.
#[test]
fn state_from_before_the_driver_plans_without_replacement() {
    use common::aws::{Aws, children};
    use common::contract::Fixture;
    use common::*;
    let type_name = "cxflow_ecs_fargate_service";
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "3")]);
    let aws = Aws::new(&moto);
    let fixture = Fixture::create(&aws);
    let s0 = Snapshot::take(&moto);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &format!("{}\n{}\n", provider_block(""), include_str!("contract/cxflow_ecs_fargate_service.tf")));
    wd.write("fixture.tf", &fixture.variables());
    wd.apply().expect_ok("recreate the objects the old state names");
    let now = children(&wd, type_name, "this");

    let legacy = include_str!("fixtures/legacy/cxflow_ecs_fargate_service.tfstate");
    let old: serde_json::Value = serde_json::from_str(legacy).unwrap();
    let attrs = &old["resources"][0]["instances"][0]["attributes"];
    let mut state = legacy.to_string();
    for (key, id) in attrs["children"].as_object().unwrap() {
        let id = id.as_str().unwrap();
        let new = now.get(key).unwrap_or_else(|| panic!("this build has no child {key}: {now:?}"));
        if !(id.starts_with("sg-") || id.contains(":targetgroup/") || id.contains(":listener-rule/")) {
            assert_eq!(id, new, "{key}: a deterministic name is the same in both versions");
        }
        state = state.replace(id, new);
    }
    state = state.replace(attrs["load_balancer"]["listener_arn"].as_str().unwrap(), &fixture.listener);
    for (i, s) in attrs["network"]["subnet_ids"].as_array().unwrap().iter().enumerate() {
        state = state.replace(s.as_str().unwrap(), &fixture.subnets[i]);
    }
    wd.write("terraform.tfstate", &state);

    wd.tf(&["plan", "-out=upgrade.tfplan"]).expect_ok("plan on the old state");
    let shown = wd.tf(&["show", "-json", "upgrade.tfplan"]);
    shown.expect_ok("show the plan");
    let plan: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let change = &plan["resource_changes"][0]["change"];
    let actions: Vec<&str> = change["actions"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert!(actions == ["no-op"] || actions == ["update"], "no replacement: {actions:?}\n{}", change);
    let planned: std::collections::BTreeMap<String, String> = serde_json::from_value(change["after"]["children"].clone()).unwrap_or_default();
    assert_eq!(planned, now, "every child keeps its identity: {}", change["after_unknown"]);
    wd.apply().expect_ok("apply on the old state");
    assert_eq!(wd.plan_code().code, 0, "converged after the upgrade");
    assert_eq!(children(&wd, type_name, "this"), now);
    wd.destroy().expect_ok("destroy");
    let after = Snapshot::take(&moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "destroy leaves what existed before");
}
