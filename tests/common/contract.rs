//! The composite contract: what every composite resource must do, checked the
//! same way for each one through the real Terraform CLI, the provider binary,
//! the loopback proxy and moto. A composite joins with one `Subject` line in
//! tests/contract.rs: its type and a configuration of `resource "<type>" "this"`
//! that may use the fixture's variables (`var.vpc_id`, `var.subnet_ids`,
//! `var.listener_arn`, `var.ecs_cluster`, `var.dns_zone`).
//!
//! In order, on one moto:
//! 1. apply, then an empty plan; every role and group it made passes the IAM lint
//!    (tests/common/iam.rs);
//! 2. the same configuration applied from a second state is refused with an
//!    import hint, before any write;
//! 3. each child deleted out of band (where AWS lets it be deleted alone) is
//!    reported in `drift` and repaired, the other children keeping their identity;
//! 4. one mutable field of every child changed out of band is reported in
//!    `drift` and repaired in AWS;
//! 5. a provider `default_tags` change shows in the plan and reaches every
//!    taggable child;
//! 6. `terraform import` by ID, then an empty plan;
//! 7. destroy leaves exactly the objects that existed before;
//! 8. an apply with the provider SIGKILLed at three points converges, with no
//!    duplicate object, and destroy again leaves nothing;
//! 9. every create operation losing one answer (the request reaches AWS, the
//!    response never comes back) converges with no orphan.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::aws::{Aws, changed_keys, children};
use super::oob::{self, Deleted};
use super::snapshot::Snapshot;
use super::{Moto, Proxy, Workdir, block_on, bundled_terraform, provider_block, terraform_clients};

/// A composite under contract.
pub struct Subject {
    pub type_name: &'static str,
    /// HCL of `resource "<type_name>" "this" { ... }`.
    pub config: &'static str,
}

/// What the contract's configurations may refer to, made before the snapshot.
pub struct Fixture {
    pub vpc: String,
    pub subnets: Vec<String>,
    pub listener: String,
}

impl Fixture {
    /// moto's default VPC and two of its subnets, a load balancer with an HTTP
    /// listener, the ECS cluster `fixture` and the public zone example.com.
    pub fn create(aws: &Aws) -> Fixture {
        block_on(async {
            let (vpc, subnets, listener) = aws.alb_fixture("fixture").await;
            aws.ecs.create_cluster().cluster_name("fixture").send().await.unwrap();
            aws.r53.create_hosted_zone().name("example.com").caller_reference("contract").send().await.unwrap();
            Fixture { vpc, subnets, listener }
        })
    }

    pub fn variables(&self) -> String {
        let subnets: Vec<String> = self.subnets.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "variable \"vpc_id\" {{\n  default = \"{}\"\n}}\nvariable \"subnet_ids\" {{\n  default = [{}]\n}}\nvariable \"listener_arn\" {{\n  default = \"{}\"\n}}\nvariable \"ecs_cluster\" {{\n  default = \"fixture\"\n}}\nvariable \"dns_zone\" {{\n  default = \"example.com\"\n}}\n",
            self.vpc,
            subnets.join(", "),
            self.listener
        )
    }
}

/// Calls that change something, in arrival order, since the proxy's last reset.
pub fn write_calls(proxy: &Proxy) -> Vec<String> {
    // REST calls the proxy names by method and path (S3's) read when they are GET or HEAD.
    let read = |op: &str| ["Describe", "List", "Get", "BatchGet", "GET ", "HEAD "].iter().any(|p| op.split(':').nth(1).is_some_and(|o| o.starts_with(p)));
    proxy.calls().iter().filter_map(|c| c["op"].as_str().map(str::to_string)).filter(|op| !read(op)).collect()
}

/// Operations that create (or put) an object.
fn is_create(op: &str) -> bool {
    let name = op.split(':').nth(1).unwrap_or_default();
    ["Create", "Register", "Allocate", "Request", "Put", "Authorize", "Associate", "Attach", "Add"].iter().any(|p| name.starts_with(p)) || name == "ChangeResourceRecordSets"
}

/// PIDs of provider processes started by `parent` (the terraform launcher).
pub fn provider_children(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((comm, rest)) = stat.split_once(") ") else { continue };
        let ppid: u32 = rest.split(' ').nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && comm.contains("terraform-pro") {
            out.push(pid);
        }
    }
    out
}

/// `terraform apply`, SIGKILLing the provider once the proxy has seen `writes`
/// write calls (counted from a reset at the start). Returns whether it was killed.
pub fn apply_killed_after_writes(wd: &Workdir, proxy: &Proxy, writes: usize) -> bool {
    proxy.reset();
    let mut cmd = Command::new(&wd.terraform);
    cmd.current_dir(wd.path()).args(["apply", "-auto-approve", "-no-color"]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in &wd.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let tf = child.id();
    let start = Instant::now();
    let mut killed = false;
    while start.elapsed() < Duration::from_secs(600) {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if write_calls(proxy).len() >= writes {
            for p in provider_children(tf) {
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
                killed = true;
            }
            if killed {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(15));
    }
    let _ = child.wait();
    killed
}

/// Objects per kind (`ec2 vpc`, `ecs service`, ...); inactive task definition
/// revisions are AWS's history, not objects.
fn kind_counts(s: &Snapshot) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in s.0.iter().filter(|l| !l.ends_with(" INACTIVE")) {
        let kind: Vec<&str> = l.splitn(3, ' ').take(2).collect();
        *m.entry(kind.join(" ")).or_insert(0) += 1;
    }
    m
}

/// The `drift` map: child key → what differs.
fn drift(wd: &Workdir, s: &Subject) -> BTreeMap<String, String> {
    let a = wd.state_attrs(s.type_name, "this");
    a["drift"].as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

fn step(name: &str, start: &Instant) {
    println!("[contract] {name} ({:.1}s)", start.elapsed().as_secs_f64());
}

struct Run<'a> {
    s: &'a Subject,
    moto: Moto,
    proxy: Proxy,
    aws: Aws,
    fixture: Fixture,
    addr: String,
}

impl<'a> Run<'a> {
    fn workdir(&self, terraform: &std::path::Path, provider_extra: &str) -> Workdir {
        let mut wd = Workdir::new(terraform, None);
        wd.env.insert("AWS_ENDPOINT_URL".into(), self.proxy.endpoint());
        self.write_config(&wd, provider_extra);
        wd
    }
    fn write_config(&self, wd: &Workdir, provider_extra: &str) {
        wd.write("main.tf", &format!("{}\n{}\n", provider_block(provider_extra), self.s.config));
        wd.write("fixture.tf", &self.fixture.variables());
    }
    fn record(&self, wd: &Workdir) -> BTreeMap<String, String> {
        children(wd, self.s.type_name, "this")
    }
    fn kids(&self, wd: &Workdir) -> Vec<oob::Child> {
        oob::children(&self.record(wd), &Snapshot::take(&self.moto))
    }
    fn refresh(&self, wd: &Workdir) {
        wd.tf(&["apply", "-refresh-only", "-auto-approve"]).expect_ok("refresh");
    }
    fn converged(&self, wd: &Workdir, what: &str) {
        let p = wd.plan_code();
        assert_eq!(p.code, 0, "{}: {what}: the plan is not empty:\n{}{}", self.s.type_name, p.stdout, p.stderr);
    }
}

/// Run the whole contract for `s` with every Terraform client (the bundled one
/// for all steps; a system Terraform >= 1.11, when present, for apply, plan,
/// import and destroy).
pub fn run(s: &Subject) {
    let start = Instant::now();
    let moto = Moto::start_with(&[("MOTO_ECS_SERVICE_RUNNING", "3")]);
    let proxy = Proxy::start(&moto, &[]);
    let aws = Aws::new(&moto);
    let fixture = Fixture::create(&aws);
    let r = Run { s, aws, fixture, proxy, moto, addr: format!("{}.this", s.type_name) };
    let s0 = Snapshot::take(&r.moto);
    let wd = r.workdir(&bundled_terraform(), "");

    // 1. apply, empty plan
    r.proxy.reset();
    wd.apply().expect_ok(&format!("{}: apply", s.type_name));
    let first_writes = write_calls(&r.proxy);
    r.proxy.reset();
    r.converged(&wd, "after the first apply");
    let mut refresh: BTreeMap<String, usize> = BTreeMap::new();
    for c in r.proxy.calls() {
        *refresh.entry(c["op"].as_str().unwrap_or_default().to_string()).or_default() += 1;
    }
    println!("[contract] refresh of {}: {} calls {refresh:?}", s.type_name, refresh.values().sum::<usize>());
    let s1 = Snapshot::take(&r.moto);
    let made = s1.added_since(&s0);
    assert!(!made.is_empty(), "{}: the apply made nothing", s.type_name);
    let kids = r.kids(&wd);
    assert!(!kids.is_empty(), "{}: no children recorded", s.type_name);
    step(&format!("apply: {} children, {} objects, {} writes", kids.len(), made.len(), first_writes.len()), &start);

    // IAM: every role the composite made is what docs/design.md says
    let roles: Vec<String> = kids.iter().filter(|c| c.kind == "iam role").map(|c| c.id.rsplit('/').next().unwrap_or_default().to_string()).collect();
    let groups: Vec<String> = kids.iter().filter(|c| c.kind == "iam group").map(|c| c.id.rsplit('/').next().unwrap_or_default().to_string()).collect();
    let mut policies = block_on(super::iam::policies(&r.aws, &roles));
    policies.extend(block_on(super::iam::group_policies(&r.aws, &groups)));
    let found = super::iam::findings(&policies);
    assert!(found.is_empty(), "{}: IAM findings:\n{}", s.type_name, found.join("\n"));
    step(&format!("IAM lint of {} roles and {} groups", roles.len(), groups.len()), &start);

    // 2. a second state with the same names
    let other = r.workdir(&bundled_terraform(), "");
    r.proxy.reset();
    let refused = other.apply();
    refused.expect_fail("a second state with the same names");
    let msg = refused.stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        msg.contains("another Terraform state has recorded") && msg.contains(&format!("terraform import {}.", s.type_name)),
        "{}: refusal names the object and the import:\n{msg}",
        s.type_name
    );
    assert_eq!(refused.stderr.matches("Error: ").count(), 1, "one diagnostic:\n{}", refused.stderr);
    assert_eq!(write_calls(&r.proxy), Vec::<String>::new(), "{}: the second state wrote nothing", s.type_name);
    assert_eq!(Snapshot::take(&r.moto), s1, "{}: the second state changed nothing", s.type_name);
    step("second state refused", &start);

    // 3. each child deleted out of band
    let mut record = r.record(&wd);
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for key in kids.iter().map(|c| c.key.clone()) {
        let before = Snapshot::take(&r.moto);
        let c = oob::children(&record, &before).into_iter().find(|c| c.key == key).unwrap();
        match block_on(oob::delete(&r.aws, &c)) {
            Deleted::Refused(why) => {
                kept.push(format!("{} ({}): {why}", c.key, c.kind));
                continue;
            }
            Deleted::Yes => {}
        }
        let gone = Snapshot::take(&r.moto).removed_since(&before);
        assert!(!gone.is_empty(), "{}: deleting {} out of band removed nothing", s.type_name, c.key);
        r.refresh(&wd);
        let d = drift(&wd, s);
        assert!(d.get(&c.key).is_some_and(|m| m.contains("deleted outside Terraform")), "{}: drift after deleting {} out of band: {d:?}", s.type_name, c.key);
        wd.apply().expect_ok(&format!("{}: repair of {}", s.type_name, c.key));
        let after = Snapshot::take(&r.moto);
        assert_eq!(kind_counts(&after), kind_counts(&before), "{}: the repair of {} recreated what was deleted, nothing more", s.type_name, c.key);
        let now = r.record(&wd);
        for k in changed_keys(&record, &now) {
            let old = record.get(&k).cloned().unwrap_or_default();
            let base = k.split('.').next().unwrap_or_default();
            let old_base = record.get(base).cloned().unwrap_or_default();
            assert!(
                gone.iter().any(|g| g.contains(&old) || g.contains(&old_base)) || base == c.key,
                "{}: deleting {} changed the identity of {k} ({old:?} → {:?}), which was not deleted",
                s.type_name,
                c.key,
                now.get(&k)
            );
        }
        assert!(drift(&wd, s).is_empty(), "{}: drift is empty after the repair of {}: {:?}", s.type_name, c.key, drift(&wd, s));
        deleted.push(c.key.clone());
        record = now;
    }
    println!("[contract] deleted and repaired alone: {deleted:?}\n[contract] AWS refuses to delete alone: {kept:#?}");
    assert!(!deleted.is_empty(), "{}: no child could be deleted out of band", s.type_name);
    r.converged(&wd, "after the out-of-band deletes");
    step("out-of-band deletes repaired", &start);

    // 4. one mutable field of each child
    let kids = r.kids(&wd);
    let mutations: Vec<(oob::Child, oob::Mutation)> = kids.iter().map(|c| (c.clone(), block_on(oob::mutate(&r.aws, c)))).collect();
    r.refresh(&wd);
    let d = drift(&wd, s);
    for (c, m) in &mutations {
        assert!(
            d.get(&c.key).is_some_and(|l| l.contains(&format!("{}.", c.key))),
            "{}: drift names {}.<field> after its {} changed out of band: {d:#?}",
            s.type_name,
            c.key,
            m.field
        );
    }
    wd.apply().expect_ok(&format!("{}: repair of the mutations", s.type_name));
    for (c, m) in &mutations {
        assert!(!block_on(oob::still_mutated(&r.aws, c, m)), "{}: {} {} is still {:?} after the repair", s.type_name, c.key, m.field, m.value);
    }
    r.converged(&wd, "after the mutations");
    assert!(drift(&wd, s).is_empty());
    step(&format!("{} mutations repaired", mutations.len()), &start);

    // 5. default_tags
    let tagged = "  default_tags {\n    tags = { Contract = \"retagged\" }\n  }";
    r.write_config(&wd, tagged);
    assert_eq!(wd.plan_code().code, 2, "{}: a default_tags change shows in the plan", s.type_name);
    wd.apply().expect_ok(&format!("{}: apply of default_tags", s.type_name));
    let mut untaggable = Vec::new();
    for c in r.kids(&wd) {
        match block_on(oob::tags(&r.aws, &c)) {
            Some(t) => assert_eq!(t.get("Contract").map(String::as_str), Some("retagged"), "{}: {} ({}) has the default tag: {t:?}", s.type_name, c.key, c.kind),
            None => untaggable.push(c.key.clone()),
        }
    }
    assert_eq!(wd.state_attrs(s.type_name, "this")["tags_all"]["Contract"], "retagged");
    r.converged(&wd, "after default_tags");
    step(&format!("default_tags reached every taggable child (untaggable: {untaggable:?})"), &start);

    // 6. import by ID
    let id = wd.state_attrs(s.type_name, "this")["id"].as_str().unwrap().to_string();
    let before_import = r.record(&wd);
    wd.tf(&["state", "rm", &r.addr]).expect_ok("state rm");
    wd.tf(&["import", &r.addr, &id]).expect_ok(&format!("{}: import {id}", s.type_name));
    r.converged(&wd, "after import");
    assert_eq!(r.record(&wd), before_import, "{}: import records the same children", s.type_name);
    step("import", &start);

    // 7. destroy
    wd.destroy().expect_ok(&format!("{}: destroy", s.type_name));
    let after = Snapshot::take(&r.moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "{}: destroy leaves exactly what existed before", s.type_name);
    step("destroy", &start);

    // 8. SIGKILL at three points
    r.write_config(&wd, "");
    let n = first_writes.len().max(4);
    let mut kills = 0;
    for k in [n / 4, n / 4, n / 4] {
        if apply_killed_after_writes(&wd, &r.proxy, k.max(1)) {
            kills += 1;
        }
    }
    assert!(kills >= 2, "{}: the provider was killed mid-apply ({kills} of 3)", s.type_name);
    wd.apply().expect_ok(&format!("{}: apply after the kills", s.type_name));
    r.converged(&wd, "after the kills");
    assert_eq!(kind_counts(&Snapshot::take(&r.moto)), kind_counts(&s1), "{}: no duplicate after the kills", s.type_name);
    wd.destroy().expect_ok(&format!("{}: destroy after the kills", s.type_name));
    let after = Snapshot::take(&r.moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "{}: nothing left after the kills", s.type_name);
    step(&format!("{kills} kills converged"), &start);

    // 9. a lost answer to each create
    let mut creates: Vec<String> = first_writes.iter().filter(|o| is_create(o)).cloned().collect();
    creates.sort();
    creates.dedup();
    assert!(!creates.is_empty());
    let rules: Vec<String> = creates.iter().map(|op| format!("op={op},kind=lost,count=1")).collect();
    r.proxy.set_faults(serde_json::json!(rules));
    let mut applies = 0;
    while !wd.apply().ok() {
        applies += 1;
        assert!(applies <= creates.len() + 1, "{}: no convergence after {applies} applies with lost answers", s.type_name);
    }
    let fired = r.proxy.stats()["rules"].as_array().unwrap().iter().filter(|x| x["fired"] == 1).count();
    assert_eq!(fired, creates.len(), "{}: every create lost one answer: {}", s.type_name, r.proxy.stats()["rules"]);
    r.proxy.clear_faults();
    r.converged(&wd, "after lost answers");
    assert_eq!(kind_counts(&Snapshot::take(&r.moto)), kind_counts(&s1), "{}: no duplicate after lost answers", s.type_name);
    step(&format!("{} creates lost an answer; {applies} applies failed before converging", creates.len()), &start);

    // Another Terraform client, where one is installed: apply, plan, import, destroy.
    for tf in terraform_clients().into_iter().skip(1) {
        let wd2 = r.workdir(&tf, "");
        std::fs::copy(wd.path().join("terraform.tfstate"), wd2.path().join("terraform.tfstate")).unwrap();
        r.converged(&wd2, &format!("with {}", tf.display()));
        wd2.tf(&["state", "rm", &r.addr]).expect_ok("state rm");
        wd2.tf(&["import", &r.addr, &id]).expect_ok(&format!("import with {}", tf.display()));
        r.converged(&wd2, &format!("after import with {}", tf.display()));
        std::fs::copy(wd2.path().join("terraform.tfstate"), wd.path().join("terraform.tfstate")).unwrap();
    }
    wd.destroy().expect_ok(&format!("{}: final destroy", s.type_name));
    let after = Snapshot::take(&r.moto);
    assert_eq!((after.added_since(&s0), after.removed_since(&s0)), (vec![], vec![]), "{}: nothing left after lost answers", s.type_name);
    step("done", &start);
}
