//! Changes made out of band: what a colleague does in the console or with the
//! AWS CLI to one child of a composite, found by the identity the composite
//! recorded. The contract suite uses these to check that every child kind
//! notices deletion and drift, repairs them, and tags everything.
//!
//! A child's kind comes from its identity (ID prefixes, ARN resource types)
//! or, for plain names, from the object the snapshot lists under that name.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};

use super::aws::Aws;
use super::snapshot::Snapshot;

/// The tag the mutations add and the probes look for.
pub const DRIFT_TAG: &str = "oob-drift";

/// One recorded child: its key, its identity and the identity's parts.
#[derive(Clone, Debug)]
pub struct Child {
    pub key: String,
    pub id: String,
    pub parts: BTreeMap<String, String>,
    /// `<service> <kind>`, as the snapshot names objects (`ec2 vpc`, `elbv2 rule`, ...).
    pub kind: String,
}

/// The children of a `children` record, each with its kind. Panics on an
/// identity that names no object AWS holds: the record must tell the truth.
pub fn children(record: &BTreeMap<String, String>, snap: &Snapshot) -> Vec<Child> {
    let mut out = Vec::new();
    for (key, id) in record.iter().filter(|(k, _)| !k.contains('.')) {
        let prefix = format!("{key}.");
        let parts = record.iter().filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone()))).filter(|(k, _)| !k.starts_with("superseded")).collect();
        let kind = kind_of(id, snap).unwrap_or_else(|| panic!("child {key} = {id} names nothing AWS holds"));
        out.push(Child { key: key.clone(), id: id.clone(), parts, kind });
    }
    out
}

fn kind_of(id: &str, snap: &Snapshot) -> Option<String> {
    let by_prefix = [
        ("vpc-", "ec2 vpc"),
        ("subnet-", "ec2 subnet"),
        ("igw-", "ec2 internet-gateway"),
        ("rtb-", "ec2 route-table"),
        ("nat-", "ec2 nat-gateway"),
        ("eipalloc-", "ec2 elastic-ip"),
        ("sg-", "ec2 security-group"),
        ("fl-", "ec2 flow-log"),
    ];
    let arn_kinds = [
        // Before ECS's `:service/`, which a Cloud Map service ARN contains too.
        (":service/srv-", "servicediscovery service"),
        (":loadbalancer/", "elbv2 load-balancer"),
        (":listener/", "elbv2 listener"),
        (":listener-rule/", "elbv2 rule"),
        (":targetgroup/", "elbv2 target-group"),
        (":certificate/", "acm certificate"),
        (":cluster/", "ecs cluster"),
        (":service/", "ecs service"),
        (":task-definition/", "ecs task-definition"),
        (":role/", "iam role"),
        (":group/", "iam group"),
        (":oidc-provider/", "iam oidc-provider"),
        (":namespace/", "servicediscovery namespace"),
        (":trail/", "cloudtrail trail"),
        (":secret:", "secretsmanager secret"),
    ];
    let kind = if let Some((_, k)) = by_prefix.iter().find(|(p, _)| id.starts_with(p)) {
        k.to_string()
    } else if id.starts_with("arn:") && id.contains(":codepipeline:") {
        "codepipeline pipeline".to_string()
    } else if id.starts_with("arn:") {
        arn_kinds.iter().find(|(p, _)| id.contains(p))?.1.to_string()
    } else if id.starts_with("service/") {
        "application-autoscaling scalable-target".to_string()
    } else if id.ends_with('.') {
        "route53 record".to_string()
    } else {
        [
            "ecr repository",
            "logs log-group",
            "ssm parameter",
            "codebuild project",
            "s3 bucket",
            "application-autoscaling policy",
            "application-autoscaling scheduled-action",
            "events rule",
        ]
        .iter()
        .find(|k| snap.0.contains(&format!("{k} {id}")))?
        .to_string()
    };
    // The object must exist: look it up the way the snapshot lists it.
    let listed = match kind.as_str() {
        "iam role" => snap.0.contains(&format!("iam role {}", id.rsplit('/').next().unwrap_or_default())),
        // Groups are listed by path and name: `arn:…:group/cxflow/x/name` → `/cxflow/x/name`.
        "iam group" => snap.0.contains(&format!("iam group {}", id.split_once(":group").map(|(_, p)| p).unwrap_or_default())),
        "route53 record" => snap.0.iter().any(|l| l.starts_with("route53 record ") && l.ends_with(&format!(" {id}"))),
        "ecs task-definition" => snap.0.contains(&format!("ecs task-definition {id} ACTIVE")),
        "codepipeline pipeline" => snap.0.contains(&format!("codepipeline pipeline {}", pipeline_name(id))),
        "secretsmanager secret" => snap.0.contains(&format!("secretsmanager secret {}", secret_name(id))),
        k => snap.0.contains(&format!("{k} {id}")),
    };
    listed.then_some(kind)
}

/// What an out-of-band delete did.
#[derive(Debug)]
pub enum Deleted {
    Yes,
    /// AWS refuses to delete the object while others depend on it (a VPC with
    /// subnets, a role's ...): no one can delete it alone.
    Refused(String),
}

fn refused<E>(what: &str, e: aws_sdk_ec2::error::SdkError<E>) -> Deleted
where
    E: std::fmt::Debug + aws_sdk_ec2::error::ProvideErrorMetadata,
{
    let code = e.as_service_error().and_then(|s| s.code()).unwrap_or_default().to_string();
    let msg = e.as_service_error().and_then(|s| s.message()).unwrap_or_default().to_string();
    let dependency = ["InUse", "Dependency", "Contains", "Conflict", "ResourceInUse"].iter().any(|p| code.contains(p));
    assert!(dependency, "out-of-band {what} failed for a reason other than a dependency: {e:?}");
    Deleted::Refused(format!("{code}: {msg}"))
}

macro_rules! tried {
    ($what:expr, $call:expr) => {
        match $call.await {
            Ok(_) => Deleted::Yes,
            Err(e) => return refused($what, e),
        }
    };
}

/// A pipeline's name: the last segment of its ARN.
pub fn pipeline_name(arn: &str) -> String {
    arn.rsplit(':').next().unwrap_or_default().to_string()
}

/// A secret's name from its ARN (without the six characters AWS appends).
fn secret_name(arn: &str) -> String {
    let name = arn.split_once(":secret:").map(|(_, n)| n).unwrap_or(arn);
    name.rsplit_once('-').map(|(n, _)| n).unwrap_or(name).to_string()
}

fn rule_arn(name: &str) -> String {
    format!("arn:aws:events:us-east-1:123456789012:rule/{name}")
}

fn last(id: &str) -> String {
    id.rsplit('/').next().unwrap_or_default().to_string()
}

/// Delete the child as a person would in the console (detaching what the
/// console detaches first).
pub async fn delete(aws: &Aws, c: &Child) -> Deleted {
    let id = c.id.as_str();
    match c.kind.as_str() {
        "ec2 vpc" => tried!("DeleteVpc", aws.ec2.delete_vpc().vpc_id(id).send()),
        "ec2 subnet" => tried!("DeleteSubnet", aws.ec2.delete_subnet().subnet_id(id).send()),
        "ec2 internet-gateway" => {
            let d = aws.ec2.describe_internet_gateways().internet_gateway_ids(id).send().await.unwrap();
            for a in d.internet_gateways().iter().flat_map(|g| g.attachments()) {
                if let Some(vpc) = a.vpc_id() {
                    tried!("DetachInternetGateway", aws.ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send());
                }
            }
            tried!("DeleteInternetGateway", aws.ec2.delete_internet_gateway().internet_gateway_id(id).send())
        }
        "ec2 route-table" => {
            let d = aws.ec2.describe_route_tables().route_table_ids(id).send().await.unwrap();
            for a in d.route_tables().iter().flat_map(|t| t.associations()).filter(|a| a.main() != Some(true)) {
                if let Some(assoc) = a.route_table_association_id() {
                    tried!("DisassociateRouteTable", aws.ec2.disassociate_route_table().association_id(assoc).send());
                }
            }
            tried!("DeleteRouteTable", aws.ec2.delete_route_table().route_table_id(id).send())
        }
        "ec2 nat-gateway" => tried!("DeleteNatGateway", aws.ec2.delete_nat_gateway().nat_gateway_id(id).send()),
        "ec2 elastic-ip" => tried!("ReleaseAddress", aws.ec2.release_address().allocation_id(id).send()),
        "ec2 security-group" => tried!("DeleteSecurityGroup", aws.ec2.delete_security_group().group_id(id).send()),
        "ec2 flow-log" => tried!("DeleteFlowLogs", aws.ec2.delete_flow_logs().flow_log_ids(id).send()),
        "elbv2 load-balancer" => tried!("DeleteLoadBalancer", aws.elb.delete_load_balancer().load_balancer_arn(id).send()),
        "elbv2 listener" => tried!("DeleteListener", aws.elb.delete_listener().listener_arn(id).send()),
        "elbv2 rule" => tried!("DeleteRule", aws.elb.delete_rule().rule_arn(id).send()),
        "elbv2 target-group" => tried!("DeleteTargetGroup", aws.elb.delete_target_group().target_group_arn(id).send()),
        "acm certificate" => tried!("DeleteCertificate", aws.acm.delete_certificate().certificate_arn(id).send()),
        "route53 record" => {
            let zone = c.parts.get("zone").unwrap_or_else(|| panic!("record child {} has no zone part", c.key));
            let sets = record_sets(aws, zone, id).await;
            assert!(!sets.is_empty(), "record {id} not found in zone {zone}");
            let changes: Vec<Change> = sets.into_iter().map(|s| Change::builder().action(ChangeAction::Delete).resource_record_set(s).build().unwrap()).collect();
            tried!(
                "ChangeResourceRecordSets",
                aws.r53.change_resource_record_sets().hosted_zone_id(zone).change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().unwrap()).send()
            )
        }
        "ecr repository" => tried!("DeleteRepository", aws.ecr.delete_repository().repository_name(id).force(true).send()),
        "ecs cluster" => tried!("DeleteCluster", aws.ecs.delete_cluster().cluster(id).send()),
        "ecs service" => {
            let cluster = id.split('/').nth(1).unwrap_or_default();
            tried!("DeleteService", aws.ecs.delete_service().cluster(cluster).service(id).force(true).send())
        }
        "ecs task-definition" => {
            // The console's "Deregister" then "Delete": nothing of it stays, as before the apply.
            tried!("DeregisterTaskDefinition", aws.ecs.deregister_task_definition().task_definition(id).send());
            tried!("DeleteTaskDefinitions", aws.ecs.delete_task_definitions().task_definitions(id).send())
        }
        "iam role" => {
            let name = last(id);
            for p in aws.iam.list_role_policies().role_name(&name).send().await.unwrap().policy_names() {
                tried!("DeleteRolePolicy", aws.iam.delete_role_policy().role_name(&name).policy_name(p).send());
            }
            for p in aws.iam.list_attached_role_policies().role_name(&name).send().await.unwrap().attached_policies() {
                tried!("DetachRolePolicy", aws.iam.detach_role_policy().role_name(&name).policy_arn(p.policy_arn().unwrap_or_default()).send());
            }
            tried!("DeleteRole", aws.iam.delete_role().role_name(&name).send())
        }
        "iam group" => {
            // The console removes the members and policies, then the group.
            let name = last(id);
            for u in aws.iam.get_group().group_name(&name).send().await.unwrap().users() {
                tried!("RemoveUserFromGroup", aws.iam.remove_user_from_group().group_name(&name).user_name(u.user_name()).send());
            }
            for p in aws.iam.list_group_policies().group_name(&name).send().await.unwrap().policy_names() {
                tried!("DeleteGroupPolicy", aws.iam.delete_group_policy().group_name(&name).policy_name(p).send());
            }
            tried!("DeleteGroup", aws.iam.delete_group().group_name(&name).send())
        }
        "iam oidc-provider" => tried!("DeleteOpenIDConnectProvider", aws.iam.delete_open_id_connect_provider().open_id_connect_provider_arn(id).send()),
        "logs log-group" => tried!("DeleteLogGroup", aws.logs.delete_log_group().log_group_name(id).send()),
        "ssm parameter" => tried!("DeleteParameter", aws.ssm.delete_parameter().name(id).send()),
        "servicediscovery namespace" => tried!("DeleteNamespace", aws.sd.delete_namespace().id(last(id)).send()),
        "servicediscovery service" => tried!("DeleteService", aws.sd.delete_service().id(last(id)).send()),
        "application-autoscaling scalable-target" => {
            tried!("DeregisterScalableTarget", aws.aas.deregister_scalable_target().service_namespace(ECS).resource_id(id).scalable_dimension(DESIRED).send())
        }
        "application-autoscaling policy" => {
            let p = scaling_policy(aws, id).await;
            tried!("DeleteScalingPolicy", aws.aas.delete_scaling_policy().service_namespace(ECS).policy_name(id).resource_id(p.resource_id()).scalable_dimension(DESIRED).send())
        }
        "codebuild project" => tried!("DeleteProject", aws.codebuild.delete_project().name(id).send()),
        "codepipeline pipeline" => tried!("DeletePipeline", aws.codepipeline.delete_pipeline().name(pipeline_name(id)).send()),
        "s3 bucket" => {
            // The console's "Empty" first: every version and delete marker.
            let v = aws.s3.list_object_versions().bucket(id).send().await.unwrap();
            let keys = v.versions().iter().map(|o| (o.key(), o.version_id())).chain(v.delete_markers().iter().map(|m| (m.key(), m.version_id())));
            for (key, version) in keys {
                aws.s3.delete_object().bucket(id).key(key.unwrap_or_default()).set_version_id(version.map(str::to_string)).send().await.unwrap();
            }
            tried!("DeleteBucket", aws.s3.delete_bucket().bucket(id).send())
        }
        "cloudtrail trail" => tried!("DeleteTrail", aws.cloudtrail.delete_trail().name(id).send()),
        "secretsmanager secret" => tried!("DeleteSecret", aws.secrets.delete_secret().secret_id(id).force_delete_without_recovery(true).send()),
        "events rule" => {
            aws.events.remove_targets().rule(id).ids("target").send().await.unwrap();
            tried!("DeleteRule", aws.events.delete_rule().name(id).send())
        }
        k => panic!("no out-of-band delete for {k}"),
    }
}

async fn record_sets(aws: &Aws, zone: &str, name: &str) -> Vec<ResourceRecordSet> {
    let out = aws.r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap();
    out.resource_record_sets().iter().filter(|s| s.name() == name).cloned().collect()
}

async fn ecr_arn(aws: &Aws, name: &str) -> String {
    let d = aws.ecr.describe_repositories().repository_names(name).send().await.unwrap();
    d.repositories()[0].repository_arn().unwrap().to_string()
}

fn log_group_arn(id: &str) -> String {
    format!("arn:aws:logs:us-east-1:123456789012:log-group:{id}")
}

/// The child's tags, or None for objects AWS cannot tag (DNS records).
const ECS: aws_sdk_applicationautoscaling::types::ServiceNamespace = aws_sdk_applicationautoscaling::types::ServiceNamespace::Ecs;
const DESIRED: aws_sdk_applicationautoscaling::types::ScalableDimension = aws_sdk_applicationautoscaling::types::ScalableDimension::EcsServiceDesiredCount;

async fn scaling_policy(aws: &Aws, name: &str) -> aws_sdk_applicationautoscaling::types::ScalingPolicy {
    let d = aws.aas.describe_scaling_policies().service_namespace(ECS).policy_names(name).send().await.unwrap();
    d.scaling_policies().first().cloned().unwrap_or_else(|| panic!("no scaling policy {name}"))
}

async fn scalable_target(aws: &Aws, resource_id: &str) -> aws_sdk_applicationautoscaling::types::ScalableTarget {
    let d = aws.aas.describe_scalable_targets().service_namespace(ECS).resource_ids(resource_id).send().await.unwrap();
    d.scalable_targets().first().cloned().unwrap_or_else(|| panic!("no scalable target {resource_id}"))
}

pub async fn tags(aws: &Aws, c: &Child) -> Option<BTreeMap<String, String>> {
    let id = c.id.as_str();
    let kv = |k: Option<&str>, v: Option<&str>| Some((k?.to_string(), v.unwrap_or_default().to_string()));
    let tags: BTreeMap<String, String> = match c.kind.split(' ').next().unwrap_or_default() {
        "ec2" => {
            let d = aws.ec2.describe_tags().filters(Filter::builder().name("resource-id").values(id).build()).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(t.key(), t.value())).collect()
        }
        "elbv2" => {
            let d = aws.elb.describe_tags().resource_arns(id).send().await.unwrap();
            d.tag_descriptions().iter().flat_map(|t| t.tags()).filter_map(|t| kv(t.key(), t.value())).collect()
        }
        "acm" => {
            let d = aws.acm.list_tags_for_certificate().certificate_arn(id).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(Some(t.key()), t.value())).collect()
        }
        // Their owner is the service they scale: the composite does not tag them.
        "route53" | "application-autoscaling" => return None,
        "ecr" => {
            let d = aws.ecr.list_tags_for_resource().resource_arn(ecr_arn(aws, id).await).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(Some(t.key()), Some(t.value()))).collect()
        }
        "ecs" => {
            let d = aws.ecs.list_tags_for_resource().resource_arn(id).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(t.key(), t.value())).collect()
        }
        "iam" if c.kind == "iam group" => return None,
        "iam" if c.kind == "iam oidc-provider" => {
            let d = aws.iam.list_open_id_connect_provider_tags().open_id_connect_provider_arn(id).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(Some(t.key()), Some(t.value()))).collect()
        }
        "iam" => {
            let d = aws.iam.list_role_tags().role_name(last(id)).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(Some(t.key()), Some(t.value()))).collect()
        }
        "logs" => aws.logs.list_tags_for_resource().resource_arn(log_group_arn(id)).send().await.unwrap().tags().cloned().unwrap_or_default().into_iter().collect(),
        "ssm" => {
            let d = aws.ssm.list_tags_for_resource().resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter).resource_id(id).send().await.unwrap();
            d.tag_list().iter().filter_map(|t| kv(Some(t.key()), Some(t.value()))).collect()
        }
        "servicediscovery" => {
            let d = aws.sd.list_tags_for_resource().resource_arn(id).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(Some(t.key()), Some(t.value()))).collect()
        }
        "s3" => match aws.s3.get_bucket_tagging().bucket(id).send().await {
            Ok(d) => d.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
            Err(e) if e.as_service_error().and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s)) == Some("NoSuchTagSet") => BTreeMap::new(),
            Err(e) => panic!("GetBucketTagging {id}: {e:?}"),
        },
        "codebuild" => {
            let d = aws.codebuild.batch_get_projects().names(id).send().await.unwrap();
            d.projects().iter().flat_map(|p| p.tags()).filter_map(|t| kv(t.key(), t.value())).collect()
        }
        "codepipeline" => {
            let d = aws.codepipeline.list_tags_for_resource().resource_arn(id).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(Some(t.key()), Some(t.value()))).collect()
        }
        "cloudtrail" => {
            let d = aws.cloudtrail.list_tags().resource_id_list(id).send().await.unwrap();
            d.resource_tag_list().iter().flat_map(|r| r.tags_list()).filter_map(|t| kv(Some(t.key()), t.value())).collect()
        }
        "secretsmanager" => {
            let d = aws.secrets.describe_secret().secret_id(id).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(t.key(), t.value())).collect()
        }
        "events" => {
            let d = aws.events.list_tags_for_resource().resource_arn(rule_arn(id)).send().await.unwrap();
            d.tags().iter().filter_map(|t| kv(Some(t.key()), Some(t.value()))).collect()
        }
        k => panic!("no tag reader for {k}"),
    };
    Some(tags)
}

/// A field changed out of band; `still_changed` reads it back from AWS.
pub struct Mutation {
    pub field: &'static str,
    pub value: String,
}

/// Change one mutable field of the child, preferring a field of its own over
/// its tags (a tag `oob-drift` where tags are all it has). None: the child has
/// nothing that can change in place (a DNS record is changed, not tagged).
pub async fn mutate(aws: &Aws, c: &Child) -> Mutation {
    let id = c.id.as_str();
    match c.kind.as_str() {
        "ec2 security-group" => {
            let perm = aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(9)
                .to_port(9)
                .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("192.0.2.0/24").build())
                .build();
            aws.ec2.authorize_security_group_ingress().group_id(id).ip_permissions(perm).send().await.unwrap();
            Mutation { field: "ingress", value: "tcp/9 from 192.0.2.0/24".into() }
        }
        "elbv2 load-balancer" => {
            // Add the VPC's default security group to the load balancer's.
            let lb = aws.elb.describe_load_balancers().load_balancer_arns(id).send().await.unwrap().load_balancers()[0].clone();
            let f = Filter::builder().name("vpc-id").values(lb.vpc_id().unwrap_or_default()).build();
            let default = aws.ec2.describe_security_groups().filters(f).send().await.unwrap();
            let default = default.security_groups().iter().find(|g| g.group_name() == Some("default")).and_then(|g| g.group_id()).unwrap().to_string();
            let mut groups = lb.security_groups().to_vec();
            groups.push(default.clone());
            aws.elb.set_security_groups().load_balancer_arn(id).set_security_groups(Some(groups)).send().await.unwrap();
            Mutation { field: "security_groups", value: default }
        }
        "elbv2 listener" => {
            aws.elb.modify_listener().listener_arn(id).ssl_policy("ELBSecurityPolicy-2016-08").send().await.unwrap();
            Mutation { field: "ssl_policy", value: "ELBSecurityPolicy-2016-08".into() }
        }
        "ecr repository" => {
            let d = aws.ecr.describe_repositories().repository_names(id).send().await.unwrap();
            let on = d.repositories()[0].image_scanning_configuration().map(|c| c.scan_on_push()).unwrap_or(false);
            let conf = aws_sdk_ecr::types::ImageScanningConfiguration::builder().scan_on_push(!on).build();
            aws.ecr.put_image_scanning_configuration().repository_name(id).image_scanning_configuration(conf).send().await.unwrap();
            Mutation { field: "scan_on_push", value: (!on).to_string() }
        }
        "elbv2 target-group" => {
            aws.elb.modify_target_group().target_group_arn(id).health_check_path("/oob-drift").send().await.unwrap();
            Mutation { field: "health_check", value: "/oob-drift".into() }
        }
        "elbv2 rule" => {
            let cond = aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
                .field("host-header")
                .host_header_config(aws_sdk_elasticloadbalancingv2::types::HostHeaderConditionConfig::builder().values("oob-drift.example.com").build())
                .build();
            aws.elb.modify_rule().rule_arn(id).conditions(cond).send().await.unwrap();
            Mutation { field: "conditions", value: "oob-drift.example.com".into() }
        }
        "ecs service" => {
            let cluster = id.split('/').nth(1).unwrap_or_default();
            // Tag propagation, not the count: under autoscaling the count is the scaler's.
            let d = aws.ecs.describe_services().cluster(cluster).services(id).send().await.unwrap();
            let now = d.services()[0].propagate_tags().map(|p| p.as_str().to_string()).unwrap_or_default();
            let next = if now == "NONE" { "SERVICE" } else { "NONE" };
            aws.ecs.update_service().cluster(cluster).service(id).propagate_tags(aws_sdk_ecs::types::PropagateTags::from(next)).send().await.unwrap();
            Mutation { field: "propagate_tags", value: next.to_string() }
        }
        "application-autoscaling scalable-target" => {
            let t = scalable_target(aws, id).await;
            let max = t.max_capacity() + 1;
            aws.aas.register_scalable_target().service_namespace(ECS).resource_id(id).scalable_dimension(DESIRED).max_capacity(max).send().await.unwrap();
            Mutation { field: "max", value: max.to_string() }
        }
        "application-autoscaling policy" => {
            let p = scaling_policy(aws, id).await;
            let mut conf = p.target_tracking_scaling_policy_configuration().cloned().expect("a target tracking policy");
            let target = conf.target_value() + 7.0;
            conf = aws_sdk_applicationautoscaling::types::TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(target)
                .set_predefined_metric_specification(conf.predefined_metric_specification().cloned())
                .set_scale_in_cooldown(conf.scale_in_cooldown())
                .set_scale_out_cooldown(conf.scale_out_cooldown())
                .build()
                .unwrap();
            aws.aas
                .put_scaling_policy()
                .service_namespace(ECS)
                .policy_name(id)
                .resource_id(p.resource_id())
                .scalable_dimension(DESIRED)
                .policy_type(p.policy_type().clone())
                .target_tracking_scaling_policy_configuration(conf)
                .send()
                .await
                .unwrap();
            Mutation { field: "target_value", value: target.to_string() }
        }
        "ecs cluster" => {
            let now = insights(aws, id).await;
            let to = if now == "disabled" { "enabled" } else { "disabled" };
            let s = aws_sdk_ecs::types::ClusterSetting::builder().name(aws_sdk_ecs::types::ClusterSettingName::ContainerInsights).value(to).build();
            aws.ecs.update_cluster().cluster(id).settings(s).send().await.unwrap();
            Mutation { field: "container_insights", value: to.into() }
        }
        "logs log-group" => {
            let now = retention(aws, id).await;
            let to = if now == Some(3) { 5 } else { 3 };
            aws.logs.put_retention_policy().log_group_name(id).retention_in_days(to).send().await.unwrap();
            Mutation { field: "retention_in_days", value: to.to_string() }
        }
        "iam role" => {
            aws.iam.update_role().role_name(last(id)).description("changed out of band").send().await.unwrap();
            Mutation { field: "description", value: "changed out of band".into() }
        }
        "iam group" => {
            // A wider inline policy, as a colleague granting one more action would leave it.
            let name = last(id);
            let policy = aws.iam.list_group_policies().group_name(&name).send().await.unwrap().policy_names()[0].clone();
            let doc = aws.iam.get_group_policy().group_name(&name).policy_name(&policy).send().await.unwrap();
            let mut doc = cxflow::children::iam::parse_policy(doc.policy_document()).unwrap();
            doc["Statement"].as_array_mut().unwrap().push(serde_json::json!({"Sid": "OobDrift", "Effect": "Allow", "Action": "ecr:ListImages", "Resource": "*"}));
            aws.iam.put_group_policy().group_name(&name).policy_name(&policy).policy_document(doc.to_string()).send().await.unwrap();
            Mutation { field: "inline_policies", value: "OobDrift".into() }
        }
        "iam oidc-provider" => {
            aws.iam.add_client_id_to_open_id_connect_provider().open_id_connect_provider_arn(id).client_id("oob-drift.example.com").send().await.unwrap();
            Mutation { field: "client_ids", value: "oob-drift.example.com".into() }
        }
        "s3 bucket" => {
            aws.s3.delete_public_access_block().bucket(id).send().await.unwrap();
            Mutation { field: "block_public_access", value: "false".into() }
        }
        "secretsmanager secret" => {
            // Someone pastes another value in the console.
            aws.secrets.put_secret_value().secret_id(id).secret_string("oob-drift").send().await.unwrap();
            Mutation { field: "value", value: "oob-drift".into() }
        }
        "cloudtrail trail" => {
            // Someone stops the audit trail.
            aws.cloudtrail.stop_logging().name(id).send().await.unwrap();
            Mutation { field: "logging", value: "false".into() }
        }
        "codebuild project" => {
            aws.codebuild.update_project().name(id).timeout_in_minutes(7).send().await.unwrap();
            Mutation { field: "timeout_minutes", value: "7".into() }
        }
        "codepipeline pipeline" => {
            // A colleague points the source at another branch in the console.
            let p = aws.codepipeline.get_pipeline().name(pipeline_name(id)).send().await.unwrap().pipeline.unwrap();
            let mut stages = p.stages().to_vec();
            let source = stages[0].actions()[0].clone();
            let mut conf = source.configuration().cloned().unwrap_or_default();
            conf.insert("BranchName".into(), "oob-drift".into());
            let action = aws_sdk_codepipeline::types::ActionDeclaration::builder()
                .name(source.name())
                .set_action_type_id(source.action_type_id().cloned())
                .set_configuration(Some(conf))
                .set_output_artifacts(Some(source.output_artifacts().to_vec()))
                .build()
                .unwrap();
            stages[0] = aws_sdk_codepipeline::types::StageDeclaration::builder().name(stages[0].name()).actions(action).build().unwrap();
            let changed = aws_sdk_codepipeline::types::PipelineDeclaration::builder()
                .name(p.name())
                .role_arn(p.role_arn())
                .set_artifact_store(p.artifact_store().cloned())
                .set_stages(Some(stages))
                .set_pipeline_type(p.pipeline_type().cloned())
                .set_execution_mode(p.execution_mode().cloned())
                .build()
                .unwrap();
            aws.codepipeline.update_pipeline().pipeline(changed).send().await.unwrap();
            Mutation { field: "stages", value: "oob-drift".into() }
        }
        "route53 record" => {
            let zone = c.parts.get("zone").unwrap_or_else(|| panic!("record child {} has no zone part", c.key));
            let set = record_sets(aws, zone, id).await.into_iter().next().unwrap_or_else(|| panic!("record {id} not found"));
            let changed = if set.r#type() == &RrType::Cname {
                ResourceRecordSet::builder()
                    .name(id)
                    .r#type(RrType::Cname)
                    .ttl(300)
                    .resource_records(ResourceRecord::builder().value("oob-drift.example.com.").build().unwrap())
                    .build()
                    .unwrap()
            } else {
                ResourceRecordSet::builder()
                    .name(id)
                    .r#type(set.r#type().clone())
                    .ttl(60)
                    .resource_records(ResourceRecord::builder().value("192.0.2.1").build().unwrap())
                    .build()
                    .unwrap()
            };
            let value = changed.resource_records()[0].value().to_string();
            let change = Change::builder().action(ChangeAction::Upsert).resource_record_set(changed).build().unwrap();
            aws.r53.change_resource_record_sets().hosted_zone_id(zone).change_batch(ChangeBatch::builder().changes(change).build().unwrap()).send().await.unwrap();
            Mutation { field: "value", value }
        }
        _ => {
            add_drift_tag(aws, c).await;
            Mutation { field: "tags", value: DRIFT_TAG.into() }
        }
    }
}

/// Whether the mutation is still what AWS holds.
pub async fn still_mutated(aws: &Aws, c: &Child, m: &Mutation) -> bool {
    let id = c.id.as_str();
    match (c.kind.as_str(), m.field) {
        ("ec2 security-group", _) => {
            let d = aws.ec2.describe_security_groups().group_ids(id).send().await.unwrap();
            d.security_groups()[0].ip_permissions().iter().any(|p| p.from_port() == Some(9) && p.ip_ranges().iter().any(|r| r.cidr_ip() == Some("192.0.2.0/24")))
        }
        ("elbv2 load-balancer", _) => {
            let d = aws.elb.describe_load_balancers().load_balancer_arns(id).send().await.unwrap();
            d.load_balancers()[0].security_groups().contains(&m.value)
        }
        ("elbv2 listener", _) => {
            let d = aws.elb.describe_listeners().listener_arns(id).send().await.unwrap();
            d.listeners()[0].ssl_policy() == Some(m.value.as_str())
        }
        ("ecr repository", _) => {
            let d = aws.ecr.describe_repositories().repository_names(id).send().await.unwrap();
            d.repositories()[0].image_scanning_configuration().map(|c| c.scan_on_push()).unwrap_or(false).to_string() == m.value
        }
        ("elbv2 target-group", _) => {
            let d = aws.elb.describe_target_groups().target_group_arns(id).send().await.unwrap();
            d.target_groups()[0].health_check_path() == Some(m.value.as_str())
        }
        ("elbv2 rule", _) => {
            let d = aws.elb.describe_rules().rule_arns(id).send().await.unwrap();
            d.rules()[0].conditions().iter().flat_map(|c| c.host_header_config().map(|h| h.values().to_vec()).unwrap_or_default()).any(|v| v == m.value)
        }
        ("ecs service", _) => {
            let cluster = id.split('/').nth(1).unwrap_or_default();
            let d = aws.ecs.describe_services().cluster(cluster).services(id).send().await.unwrap();
            d.services()[0].propagate_tags().map(|p| p.as_str()) == Some(m.value.as_str())
        }
        ("application-autoscaling scalable-target", _) => scalable_target(aws, id).await.max_capacity().to_string() == m.value,
        ("application-autoscaling policy", _) => {
            scaling_policy(aws, id).await.target_tracking_scaling_policy_configuration().map(|c| c.target_value().to_string()) == Some(m.value.clone())
        }
        ("ecs cluster", _) => insights(aws, id).await == m.value,
        ("logs log-group", _) => retention(aws, id).await.map(|r| r.to_string()) == Some(m.value.clone()),
        ("iam role", _) => {
            let r = aws.iam.get_role().role_name(last(id)).send().await.unwrap();
            r.role().and_then(|r| r.description()) == Some(m.value.as_str())
        }
        ("iam group", _) => {
            let name = last(id);
            let policies = aws.iam.list_group_policies().group_name(&name).send().await.unwrap().policy_names().to_vec();
            let mut found = false;
            for p in policies {
                let d = aws.iam.get_group_policy().group_name(&name).policy_name(&p).send().await.unwrap();
                found |= cxflow::children::iam::parse_policy(d.policy_document()).is_some_and(|v| v.to_string().contains(&m.value));
            }
            found
        }
        ("iam oidc-provider", _) => {
            let d = aws.iam.get_open_id_connect_provider().open_id_connect_provider_arn(id).send().await.unwrap();
            d.client_id_list().contains(&m.value)
        }
        ("s3 bucket", _) => aws.s3.get_public_access_block().bucket(id).send().await.is_err(),
        ("secretsmanager secret", _) => aws.secrets.get_secret_value().secret_id(id).send().await.unwrap().secret_string() == Some(m.value.as_str()),
        ("cloudtrail trail", _) => aws.cloudtrail.get_trail_status().name(id).send().await.unwrap().is_logging().map(|l| l.to_string()) == Some(m.value.clone()),
        ("codebuild project", _) => {
            let d = aws.codebuild.batch_get_projects().names(id).send().await.unwrap();
            d.projects()[0].timeout_in_minutes().map(|t| t.to_string()) == Some(m.value.clone())
        }
        ("codepipeline pipeline", _) => {
            let p = aws.codepipeline.get_pipeline().name(pipeline_name(id)).send().await.unwrap().pipeline.unwrap();
            p.stages().iter().flat_map(|s| s.actions()).any(|a| a.configuration().and_then(|c| c.get("BranchName")) == Some(&m.value))
        }
        ("route53 record", _) => {
            let zone = &c.parts["zone"];
            record_sets(aws, zone, id).await.iter().any(|s| s.resource_records().iter().any(|r| r.value() == m.value))
        }
        _ => tags(aws, c).await.is_some_and(|t| t.contains_key(DRIFT_TAG)),
    }
}

async fn add_drift_tag(aws: &Aws, c: &Child) {
    let id = c.id.as_str();
    match c.kind.split(' ').next().unwrap_or_default() {
        "ec2" => {
            aws.ec2.create_tags().resources(id).tags(aws_sdk_ec2::types::Tag::builder().key(DRIFT_TAG).value("1").build()).send().await.unwrap();
        }
        "elbv2" => {
            aws.elb.add_tags().resource_arns(id).tags(aws_sdk_elasticloadbalancingv2::types::Tag::builder().key(DRIFT_TAG).value("1").build()).send().await.unwrap();
        }
        "acm" => {
            aws.acm.add_tags_to_certificate().certificate_arn(id).tags(aws_sdk_acm::types::Tag::builder().key(DRIFT_TAG).value("1").build().unwrap()).send().await.unwrap();
        }
        "ecr" => {
            let arn = ecr_arn(aws, id).await;
            aws.ecr.tag_resource().resource_arn(arn).tags(aws_sdk_ecr::types::Tag::builder().key(DRIFT_TAG).value("1").build().unwrap()).send().await.unwrap();
        }
        "ecs" => {
            aws.ecs.tag_resource().resource_arn(id).tags(aws_sdk_ecs::types::Tag::builder().key(DRIFT_TAG).value("1").build()).send().await.unwrap();
        }
        "servicediscovery" => {
            aws.sd.tag_resource().resource_arn(id).tags(aws_sdk_servicediscovery::types::Tag::builder().key(DRIFT_TAG).value("1").build().unwrap()).send().await.unwrap();
        }
        "ssm" => {
            aws.ssm
                .add_tags_to_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id(id)
                .tags(aws_sdk_ssm::types::Tag::builder().key(DRIFT_TAG).value("1").build().unwrap())
                .send()
                .await
                .unwrap();
        }
        "events" => {
            let tag = aws_sdk_eventbridge::types::Tag::builder().key(DRIFT_TAG).value("1").build().unwrap();
            aws.events.tag_resource().resource_arn(rule_arn(id)).tags(tag).send().await.unwrap();
        }
        k => panic!("no tag writer for {k}"),
    }
}

async fn insights(aws: &Aws, arn: &str) -> String {
    let d = aws.ecs.describe_clusters().clusters(arn).include(aws_sdk_ecs::types::ClusterField::Settings).send().await.unwrap();
    d.clusters()[0].settings().iter().find(|s| s.name().map(|n| n.as_str()) == Some("containerInsights")).and_then(|s| s.value()).unwrap_or("disabled").to_string()
}

async fn retention(aws: &Aws, name: &str) -> Option<i32> {
    let d = aws.logs.describe_log_groups().log_group_name_prefix(name).send().await.unwrap();
    d.log_groups().iter().find(|g| g.log_group_name() == Some(name)).and_then(|g| g.retention_in_days())
}
