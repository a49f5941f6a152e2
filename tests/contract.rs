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

#[test]
fn cxflow_build_pipeline() {
    run(&Subject { type_name: "cxflow_build_pipeline", config: include_str!("contract/cxflow_build_pipeline.tf") });
}

#[test]
fn cxflow_image_registry() {
    run(&Subject { type_name: "cxflow_image_registry", config: include_str!("contract/cxflow_image_registry.tf") });
}

/// State written by the provider before every composite moved onto the one
/// driver (commit c7155eb, `tests/fixtures/legacy/`, each made by applying
/// the suite's configuration of that type with that build) still works. The
/// test recreates the objects a state names (the same configuration applied
/// with this build: deterministic names must come out the same), writes the
/// identities AWS chose this time into the old state, and plans: no
/// replacement; the apply converges and every child keeps its identity,
/// except the `retired` ones this build no longer has (deleted by the apply)
/// and the `renewed` ones (key prefixes) a deliberate change gives a new one.
fn legacy_state_plans_without_replacement(type_name: &str, config: &str, legacy: &str, retired: &[&str], renewed: &[&str], check: fn(&common::aws::Aws, &str)) {
    use common::aws::{Aws, children};
    use common::contract::Fixture;
    use common::*;
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "3")]);
    let aws = Aws::new(&moto);
    let fixture = Fixture::create(&aws);
    let s0 = Snapshot::take(&moto);
    let wd = Workdir::new(&bundled_terraform(), Some(&moto));
    wd.write("main.tf", &format!("{}\n{}\n", provider_block(""), config));
    wd.write("fixture.tf", &fixture.variables());
    wd.apply().expect_ok("recreate the objects the old state names");
    let now = children(&wd, type_name, "this");

    let old: serde_json::Value = serde_json::from_str(legacy).unwrap();
    let attrs = &old["resources"][0]["instances"][0]["attributes"];
    // What kind of identifier a token is: AWS picks these afresh on every create.
    let random_kind = |t: &str| -> Option<String> {
        if let Some((p, _)) = t.split_once('-').filter(|(p, _)| ["vpc", "subnet", "igw", "rtb", "nat", "eipalloc", "sg"].contains(p)) {
            return Some(p.to_string());
        }
        if t.len() > 10 && t.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
            return Some("zone".into());
        }
        let kind = t.strip_prefix("arn:")?.split(':').nth(4)?.split('/').next()?;
        ["targetgroup", "loadbalancer", "listener", "listener-rule", "certificate"].contains(&kind).then(|| kind.to_string())
    };
    let mut state = legacy.to_string();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (key, recorded) in attrs["children"].as_object().unwrap() {
        if retired.contains(&key.split('.').next().unwrap_or_default()) {
            assert!(!now.contains_key(key), "{key} is retired, yet this build made it");
            continue;
        }
        // This build's entries for the key: its identity, its parts, and what a
        // packed old identity stands for today (a NAT gateway's Elastic IP).
        let eip = key.strip_prefix("nat_").map(|n| format!("eip_{n}"));
        let candidates: Vec<&String> = now.iter().filter(|(k, _)| *k == key || k.starts_with(&format!("{key}.")) || Some(*k) == eip.as_ref()).map(|(_, v)| v).collect();
        assert!(!candidates.is_empty(), "this build has no child {key}: {now:?}");
        for token in recorded.as_str().unwrap().split('|') {
            let dotted = format!("{token}.");
            if candidates.iter().any(|c| *c == token || **c == dotted) {
                continue;
            }
            let kind = random_kind(token).unwrap_or_else(|| panic!("{key}: {token} is a deterministic name, and this build names it {candidates:?}"));
            let new = candidates.iter().find(|c| random_kind(c).as_deref() == Some(&kind)).unwrap_or_else(|| panic!("{key}: no {kind} among {candidates:?}"));
            state = state.replace(token, new);
        }
        if !renewed.iter().any(|p| key.starts_with(p)) {
            kept.push((key.clone(), now[key].clone()));
        }
    }
    if let Some(l) = attrs["load_balancer"]["listener_arn"].as_str() {
        state = state.replace(l, &fixture.listener);
    }
    for (i, s) in attrs["network"]["subnet_ids"].as_array().into_iter().flatten().enumerate() {
        state = state.replace(s.as_str().unwrap(), &fixture.subnets[i]);
    }
    wd.write("terraform.tfstate", &state);

    let upgrade_plan = wd.tf(&["plan", "-out=upgrade.tfplan"]);
    upgrade_plan.expect_ok("plan on the old state");
    let shown = wd.tf(&["show", "-json", "upgrade.tfplan"]);
    shown.expect_ok("show the plan");
    let plan: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let change = &plan["resource_changes"][0]["change"];
    let actions: Vec<&str> = change["actions"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert!(actions == ["no-op"] || actions == ["update"], "{type_name}: no replacement: {actions:?}\n{change}");
    wd.apply().expect_ok("apply on the old state");
    assert_eq!(wd.plan_code().code, 0, "{type_name}: converged after the upgrade");
    let after = children(&wd, type_name, "this");
    for (key, id) in &kept {
        assert_eq!(after.get(key), Some(id), "{type_name}: {key} keeps its identity");
    }
    for key in retired {
        assert!(!after.contains_key(*key), "{type_name}: retired child {key} is gone from the record");
    }
    check(&aws, &upgrade_plan.all());
    wd.destroy().expect_ok("destroy");
    let left = Snapshot::take(&moto);
    assert_eq!((left.added_since(&s0), left.removed_since(&s0)), (vec![], vec![]), "destroy leaves what existed before");
}

#[test]
fn legacy_service_state_plans_without_replacement() {
    legacy_state_plans_without_replacement(
        "cxflow_ecs_fargate_service",
        include_str!("contract/cxflow_ecs_fargate_service.tf"),
        include_str!("fixtures/legacy/cxflow_ecs_fargate_service.tfstate"),
        &[],
        &[],
        |_, _| {},
    );
}

#[test]
fn legacy_cluster_state_plans_without_replacement() {
    // One execution role per environment replaced the shared one (its task
    // definitions get a revision naming the new role); the services stay.
    legacy_state_plans_without_replacement(
        "cxflow_cluster",
        include_str!("contract/cxflow_cluster.tf"),
        include_str!("fixtures/legacy/cxflow_cluster.tfstate"),
        &["execution_role"],
        &["task_definition_"],
        |aws, plan| {
            assert!(plan.contains("Environment reads the old webhook token key"), "the plan says how to move:\n{plan}");
            // The state predates the seed's key names: the service keeps reading the old webhook token key.
            common::block_on(async {
                let svc = aws.ecs.describe_services().cluster("contract").services("contract-production").send().await.unwrap();
                let td = aws.ecs.describe_task_definition().task_definition(svc.services()[0].task_definition().unwrap()).send().await.unwrap();
                let secrets = td.task_definition().unwrap().container_definitions()[0].secrets().to_vec();
                let hook = secrets.iter().find(|s| s.name() == "GITLAB_WEBHOOK_TOKEN").unwrap();
                assert!(hook.value_from().ends_with(":parameter/contract/production/gitlab/webhook-token"), "{hook:?}");
                assert!(td.task_definition().unwrap().execution_role_arn().unwrap().contains("contract-production-execution"));
            });
        },
    );
}
