//! Network children: VPC, internet gateway, subnets, Elastic IPs, NAT
//! gateways, route tables, flow logs and security groups. EC2 objects have
//! no unique names, so each carries `cxflow:owner` and `cxflow:child` tags
//! and is found by them. A create whose answer was lost may leave a second
//! object behind (EC2 has no idempotency token for most of these calls): when
//! the SDK had to retry one, the duplicates this apply made are deleted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, Ipv6Range, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use serde_json::json;

use super::{Common, Ref, ref_specs, spec_tags, tag_diff, tags_json, user_visible, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{CHILD_TAG, Cx, Found, Identity, LEASE_TAG, Made, Node, NodeError, OWNER_TAG, Spec, Tags, spec};

pub fn ec2_tags(t: &Tags) -> Vec<Tag> {
    t.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The VPC a subnet belongs to.
pub async fn vpc_of_subnet(aws: &Aws, subnet: &str) -> Result<String, NodeError> {
    let out = aws.ec2().describe_subnets().subnet_ids(subnet).send().await.map_err(|e| aws_err("ec2:DescribeSubnets", e))?;
    out.subnets().first().and_then(|s| s.vpc_id()).map(str::to_string).ok_or_else(|| NodeError::other(format!("subnet {subnet} was not found")))
}

fn tag_spec(rt: ResourceType, t: &Tags) -> TagSpecification {
    TagSpecification::builder().resource_type(rt).set_tags(Some(ec2_tags(t))).build()
}

pub fn tags_of(t: &[Tag]) -> Tags {
    user_visible(t.iter().filter_map(|x| Some((x.key()?.to_string(), x.value()?.to_string()))))
}

/// Filters selecting what child `key` of `c`'s composite is.
fn owned_filters(c: &Common, key: &str) -> Vec<Filter> {
    vec![Filter::builder().name(format!("tag:{OWNER_TAG}")).values(c.owner.tag_value()).build(), Filter::builder().name(format!("tag:{CHILD_TAG}")).values(key).build()]
}

/// ... and made by this apply.
fn mine_filters(c: &Common, key: &str, cx: &Cx<'_>) -> Vec<Filter> {
    let mut f = owned_filters(c, key);
    f.push(Filter::builder().name(format!("tag:{LEASE_TAG}")).values(cx.lease.tag_value()).build());
    f
}

/// Bring an EC2 object's tags from `current` to `desired`.
async fn retag(aws: &Aws, id: &str, current: &Tags, desired: &Tags) -> Result<(), NodeError> {
    let (add, remove) = tag_diff(current, desired);
    if !add.is_empty() {
        aws.ec2().create_tags().resources(id).set_tags(Some(ec2_tags(&add))).send().await.map_err(|e| aws_err("ec2:CreateTags", e))?;
    }
    if !remove.is_empty() {
        let tags = remove.iter().map(|k| Tag::builder().key(k).build()).collect();
        aws.ec2().delete_tags().resources(id).set_tags(Some(tags)).send().await.map_err(|e| aws_err("ec2:DeleteTags", e))?;
    }
    Ok(())
}

/// Mark an EC2 object's creation lease recorded.
async fn release_ec2(aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
    let (k, v) = cx.recorded_tag();
    aws.ec2().create_tags().resources(id).tags(Tag::builder().key(k).value(v).build()).send().await.map_err(|e| aws_err("ec2:CreateTags", e))?;
    Ok(())
}

/// Run an EC2 delete, treating "not found" as done and retrying while
/// dependent objects (network interfaces, mappings) are still being released.
async fn delete_retrying<F, Fut>(what: &str, cx: &Cx<'_>, mut op: F) -> Result<(), NodeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), AwsError>>,
{
    let r = until(what, cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || {
        let fut = op();
        async move {
            match fut.await {
                Ok(()) => Ok(Poll::Done(())),
                Err(e) if e.is_not_found() => Ok(Poll::Done(())),
                Err(e) if e.is_code(&["DependencyViolation", "InvalidParameterValue", "ResourceInUse", "InvalidIPAddress.InUse"]) => {
                    Ok(Poll::Pending(format!("{}: {}", e.code.clone().unwrap_or_default(), e.message)))
                }
                Err(e) => Err(NodeError::from(e)),
            }
        }
    })
    .await;
    r.map_err(|e| wait_err(what, e))
}

/// A create call, returning its answer and whether the SDK had to send it more than once.
async fn once<T>(fut: impl std::future::Future<Output = T>) -> (T, bool) {
    let (out, n) = crate::calls::counted(fut).await;
    (out, n > 1)
}

/// Delete what this apply made for a child besides `keep` (a retried create's first object).
async fn sweep<F, Fut>(what: &str, found: Vec<String>, keep: &str, cx: &Cx<'_>, mut delete: F) -> Result<(), NodeError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), AwsError>>,
{
    for id in found.into_iter().filter(|i| i != keep) {
        tracing::warn!(target: "cxflow::children::network", duplicate = id.as_str(), kept = keep, "a retried create made a second {what}: deleting it");
        let id2 = id.clone();
        delete_retrying(&format!("{what} {id}"), cx, || delete(id2.clone())).await?;
    }
    Ok(())
}

fn gone_or<T>(r: Result<T, AwsError>, f: impl FnOnce(T) -> Option<Spec>) -> Result<Option<Spec>, NodeError> {
    match r {
        Ok(o) => Ok(f(o)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

// ------------------------------------------------------------------ VPC

pub struct VpcNode {
    pub c: Arc<Common>,
    pub cidr: String,
    pub name: String,
}

impl VpcNode {
    fn tags(&self) -> Tags {
        self.c.tags_for("vpc", Some(&self.name))
    }
    async fn ids_by(&self, aws: &Aws, filters: Vec<Filter>) -> Result<Vec<(String, Tags)>, NodeError> {
        let out = aws.ec2().describe_vpcs().set_filters(Some(filters)).send().await.map_err(|e| aws_err("ec2:DescribeVpcs", e))?;
        Ok(out.vpcs().iter().filter_map(|v| Some((v.vpc_id()?.to_string(), tags_of(v.tags())))).collect())
    }
}

#[async_trait]
impl Node<Aws> for VpcNode {
    fn key(&self) -> &str {
        "vpc"
    }
    fn describe(&self) -> String {
        format!("VPC {} ({})", self.name, self.cidr)
    }
    fn spec(&self) -> Spec {
        spec(json!({"cidr_block": self.cidr, "tags": tags_json(&self.tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["cidr_block"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(self.ids_by(aws, owned_filters(&self.c, "vpc")).await?.into_iter().next().map(|(id, t)| Found::Tagged(Identity::new(id), t)).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let (out, retried) =
            once(aws.ec2().create_vpc().cidr_block(&self.cidr).tag_specifications(tag_spec(ResourceType::Vpc, &self.c.create_tags("vpc", Some(&self.name), cx))).send()).await;
        let out = out.map_err(|e| aws_err("ec2:CreateVpc", e))?;
        let id = out.vpc().and_then(|v| v.vpc_id()).filter(|s| !s.is_empty()).ok_or_else(|| NodeError::no_identity("ec2:CreateVpc"))?.to_string();
        if retried {
            let dupes = self.ids_by(aws, mine_filters(&self.c, "vpc", cx)).await?.into_iter().map(|(i, _)| i).collect();
            sweep("VPC", dupes, &id, cx, |v| async move { aws.ec2().delete_vpc().vpc_id(v).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteVpc", e)) })
                .await
                .map_err(|e| e.with_id(&id))?;
        }
        // ModifyVpcAttribute takes one attribute a call; the two are independent, so both go at once.
        // Meanwhile the zone list the subnets need next is fetched (a failure there is the subnets' to report).
        let on = || aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build();
        let hostnames = aws.ec2().modify_vpc_attribute().vpc_id(&id).enable_dns_hostnames(on()).send();
        let support = aws.ec2().modify_vpc_attribute().vpc_id(&id).enable_dns_support(on()).send();
        let (h, s, _) = tokio::join!(hostnames, support, zone_names(aws));
        for r in [h.map(|_| ()), s.map(|_| ())] {
            r.map_err(|e| NodeError::from(aws_err("ec2:ModifyVpcAttribute", e)).with_id(&id))?;
        }
        Ok(Made::id(id))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        gone_or(aws.ec2().describe_vpcs().vpc_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DescribeVpcs", e)), |o| {
            o.vpcs().first().map(|v| spec(json!({"cidr_block": v.cidr_block(), "tags": tags_json(&tags_of(v.tags()))})))
        })
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let id = id.id.clone();
        delete_retrying(&format!("VPC {id} deletion"), cx, || {
            let id = id.clone();
            async move { aws.ec2().delete_vpc().vpc_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteVpc", e)) }
        })
        .await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ internet gateway

pub struct InternetGatewayNode {
    pub c: Arc<Common>,
    pub name: String,
}

impl InternetGatewayNode {
    fn tags(&self) -> Tags {
        self.c.tags_for("internet_gateway", Some(&self.name))
    }
    async fn by(&self, aws: &Aws, filters: Vec<Filter>) -> Result<Vec<(String, Tags)>, NodeError> {
        let out = aws.ec2().describe_internet_gateways().set_filters(Some(filters)).send().await.map_err(|e| aws_err("ec2:DescribeInternetGateways", e))?;
        Ok(out.internet_gateways().iter().filter_map(|g| Some((g.internet_gateway_id()?.to_string(), tags_of(g.tags())))).collect())
    }
    async fn attach(&self, aws: &Aws, id: &str, vpc: &str) -> Result<(), NodeError> {
        match aws.ec2().attach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send().await.map_err(|e| aws_err("ec2:AttachInternetGateway", e)) {
            Ok(_) => Ok(()),
            // A retried attach whose first answer was lost.
            Err(e) if e.is_code(&["Resource.AlreadyAssociated"]) => Ok(()),
            Err(e) => Err(NodeError::from(e).with_id(id)),
        }
    }
}

#[async_trait]
impl Node<Aws> for InternetGatewayNode {
    fn key(&self) -> &str {
        "internet_gateway"
    }
    fn deps(&self) -> Vec<&str> {
        vec!["vpc"]
    }
    fn describe(&self) -> String {
        format!("internet gateway {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({"vpc": "<vpc>", "tags": tags_json(&self.tags())}))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(self.by(aws, owned_filters(&self.c, "internet_gateway")).await?.into_iter().next().map(|(id, t)| Found::Tagged(Identity::new(id), t)).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let (out, retried) = once(
            aws.ec2().create_internet_gateway().tag_specifications(tag_spec(ResourceType::InternetGateway, &self.c.create_tags("internet_gateway", Some(&self.name), cx))).send(),
        )
        .await;
        let out = out.map_err(|e| aws_err("ec2:CreateInternetGateway", e))?;
        let id =
            out.internet_gateway().and_then(|g| g.internet_gateway_id()).filter(|s| !s.is_empty()).ok_or_else(|| NodeError::no_identity("ec2:CreateInternetGateway"))?.to_string();
        if retried {
            let dupes = self.by(aws, mine_filters(&self.c, "internet_gateway", cx)).await?.into_iter().map(|(i, _)| i).collect();
            sweep("internet gateway", dupes, &id, cx, |g| async move {
                aws.ec2().delete_internet_gateway().internet_gateway_id(g).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteInternetGateway", e))
            })
            .await
            .map_err(|e| e.with_id(&id))?;
        }
        self.attach(aws, &id, &vpc).await?;
        Ok(Made::id(id))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        gone_or(aws.ec2().describe_internet_gateways().internet_gateway_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DescribeInternetGateways", e)), |o| {
            o.internet_gateways().first().map(|g| {
                let vpc = g.attachments().first().and_then(|a| a.vpc_id()).map(|v| Ref::dep("vpc").observed(v, cx));
                spec(json!({"vpc": vpc, "tags": tags_json(&tags_of(g.tags()))}))
            })
        })
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        if base.get("vpc") != Some(&json!("<vpc>")) {
            self.attach(aws, &id.id, cx.dep("vpc")?).await?;
        }
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let id = id.id.as_str();
        let out = match aws.ec2().describe_internet_gateways().internet_gateway_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeInternetGateways", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for a in out.internet_gateways().iter().flat_map(|g| g.attachments()) {
            if let Some(vpc) = a.vpc_id() {
                let vpc = vpc.to_string();
                delete_retrying(&format!("detaching internet gateway {id}"), cx, || {
                    let vpc = vpc.clone();
                    async move { aws.ec2().detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DetachInternetGateway", e)) }
                })
                .await?;
            }
        }
        delete_retrying(&format!("internet gateway {id} deletion"), cx, || async move {
            aws.ec2().delete_internet_gateway().internet_gateway_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteInternetGateway", e))
        })
        .await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ subnets

pub struct SubnetNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub cidr: String,
    /// Index into the region's availability zones, sorted by name.
    pub az_index: usize,
    pub public: bool,
}

/// The region's availability zones, sorted: asked once per provider process
/// (they do not change during an apply), so every subnet of every composite
/// shares one DescribeAvailabilityZones. A failed lookup is not kept.
async fn zone_names(aws: &Aws) -> Result<&[String], NodeError> {
    let zones = aws
        .zones
        .get_or_try_init(|| async {
            let out = aws.ec2().describe_availability_zones().send().await.map_err(|e| aws_err("ec2:DescribeAvailabilityZones", e))?;
            let mut z: Vec<String> = out.availability_zones().iter().filter_map(|z| z.zone_name().map(str::to_string)).collect();
            z.sort();
            if z.is_empty() {
                return Err(NodeError::other("the region reports no availability zones"));
            }
            Ok(z)
        })
        .await?;
    Ok(zones)
}

impl SubnetNode {
    fn tags(&self) -> Tags {
        self.c.tags_for(&self.key, Some(&self.name))
    }
    async fn by(&self, aws: &Aws, filters: Vec<Filter>) -> Result<Vec<(String, Tags)>, NodeError> {
        let out = aws.ec2().describe_subnets().set_filters(Some(filters)).send().await.map_err(|e| aws_err("ec2:DescribeSubnets", e))?;
        Ok(out.subnets().iter().filter_map(|s| Some((s.subnet_id()?.to_string(), tags_of(s.tags())))).collect())
    }
}

#[async_trait]
impl Node<Aws> for SubnetNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        vec!["vpc"]
    }
    fn describe(&self) -> String {
        format!("{} subnet {} ({})", if self.public { "public" } else { "private" }, self.name, self.cidr)
    }
    fn spec(&self) -> Spec {
        spec(json!({"vpc": "<vpc>", "cidr_block": self.cidr, "map_public_ip_on_launch": self.public, "tags": tags_json(&self.tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["vpc", "cidr_block"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(self.by(aws, owned_filters(&self.c, &self.key)).await?.into_iter().next().map(|(id, t)| Found::Tagged(Identity::new(id), t)).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let zones = zone_names(aws).await?;
        let az = &zones[self.az_index % zones.len()];
        let req = aws
            .ec2()
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(&self.cidr)
            .availability_zone(az)
            .tag_specifications(tag_spec(ResourceType::Subnet, &self.c.create_tags(&self.key, Some(&self.name), cx)))
            .send();
        let (out, retried) = once(req).await;
        let out = match out.map_err(|e| aws_err("ec2:CreateSubnet", e)) {
            Ok(o) => o,
            // The retry of a create whose first answer was lost finds the CIDR taken.
            Err(e) if e.is_code(&["InvalidSubnet.Conflict"]) => {
                if let Some((id, _)) = self.by(aws, mine_filters(&self.c, &self.key, cx)).await?.into_iter().next() {
                    return self.finish_create(aws, id).await;
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let id = out.subnet().and_then(|s| s.subnet_id()).filter(|s| !s.is_empty()).ok_or_else(|| NodeError::no_identity("ec2:CreateSubnet"))?.to_string();
        if retried {
            let dupes = self.by(aws, mine_filters(&self.c, &self.key, cx)).await?.into_iter().map(|(i, _)| i).collect();
            sweep("subnet", dupes, &id, cx, |s| async move { aws.ec2().delete_subnet().subnet_id(s).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteSubnet", e)) })
                .await
                .map_err(|e| e.with_id(&id))?;
        }
        self.finish_create(aws, id).await
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        gone_or(aws.ec2().describe_subnets().subnet_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DescribeSubnets", e)), |o| {
            o.subnets().first().map(|s| {
                let vpc = s.vpc_id().map(|v| Ref::dep("vpc").observed(v, cx));
                spec(json!({"vpc": vpc, "cidr_block": s.cidr_block(), "map_public_ip_on_launch": s.map_public_ip_on_launch().unwrap_or(false), "tags": tags_json(&tags_of(s.tags()))}))
            })
        })
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        if base.get("map_public_ip_on_launch") != Some(&json!(self.public)) {
            self.set_public(aws, &id.id).await?;
        }
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let id = id.id.as_str();
        delete_retrying(&format!("subnet {id} deletion"), cx, || async move {
            aws.ec2().delete_subnet().subnet_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteSubnet", e))
        })
        .await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

impl SubnetNode {
    async fn set_public(&self, aws: &Aws, id: &str) -> Result<(), NodeError> {
        aws.ec2()
            .modify_subnet_attribute()
            .subnet_id(id)
            .map_public_ip_on_launch(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(self.public).build())
            .send()
            .await
            .map_err(|e| NodeError::from(aws_err("ec2:ModifySubnetAttribute", e)).with_id(id))?;
        Ok(())
    }
    async fn finish_create(&self, aws: &Aws, id: String) -> Result<Made, NodeError> {
        if self.public {
            self.set_public(aws, &id).await?;
        }
        Ok(Made::id(id))
    }
}

// ------------------------------------------------------------------ Elastic IP

/// An Elastic IP for a NAT gateway.
pub struct ElasticIpNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
}

impl ElasticIpNode {
    fn tags(&self) -> Tags {
        self.c.tags_for(&self.key, Some(&self.name))
    }
    async fn by(&self, aws: &Aws, filters: Vec<Filter>) -> Result<Vec<(String, Tags)>, NodeError> {
        let out = aws.ec2().describe_addresses().set_filters(Some(filters)).send().await.map_err(|e| aws_err("ec2:DescribeAddresses", e))?;
        Ok(out.addresses().iter().filter_map(|a| Some((a.allocation_id()?.to_string(), tags_of(a.tags())))).collect())
    }
}

#[async_trait]
impl Node<Aws> for ElasticIpNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn describe(&self) -> String {
        format!("Elastic IP {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({"tags": tags_json(&self.tags())}))
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(self.by(aws, owned_filters(&self.c, &self.key)).await?.into_iter().next().map(|(id, t)| Found::Tagged(Identity::new(id), t)).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let req = aws
            .ec2()
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .tag_specifications(tag_spec(ResourceType::ElasticIp, &self.c.create_tags(&self.key, Some(&self.name), cx)))
            .send();
        let (out, retried) = once(req).await;
        let out = out.map_err(|e| aws_err("ec2:AllocateAddress", e))?;
        let id = out.allocation_id().filter(|s| !s.is_empty()).ok_or_else(|| NodeError::no_identity("ec2:AllocateAddress"))?.to_string();
        if retried {
            let dupes = self.by(aws, mine_filters(&self.c, &self.key, cx)).await?.into_iter().map(|(i, _)| i).collect();
            sweep(
                "Elastic IP",
                dupes,
                &id,
                cx,
                |a| async move { aws.ec2().release_address().allocation_id(a).send().await.map(|_| ()).map_err(|e| aws_err("ec2:ReleaseAddress", e)) },
            )
            .await
            .map_err(|e| e.with_id(&id))?;
        }
        Ok(Made::id(id))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        gone_or(aws.ec2().describe_addresses().allocation_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DescribeAddresses", e)), |o| {
            o.addresses().first().map(|a| spec(json!({"tags": tags_json(&tags_of(a.tags()))})))
        })
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let id = id.id.as_str();
        delete_retrying(&format!("releasing Elastic IP {id}"), cx, || async move {
            aws.ec2().release_address().allocation_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:ReleaseAddress", e))
        })
        .await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ NAT gateway

/// A NAT gateway in a public subnet using an Elastic IP child.
pub struct NatGatewayNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub subnet_key: String,
    pub eip_key: String,
}

fn nat_live(n: &aws_sdk_ec2::types::NatGateway) -> bool {
    !matches!(n.state().map(|s| s.as_str()), Some("deleted") | Some("deleting") | Some("failed"))
}

impl NatGatewayNode {
    fn tags(&self) -> Tags {
        self.c.tags_for(&self.key, Some(&self.name))
    }
    async fn by(&self, aws: &Aws, filters: Vec<Filter>) -> Result<Vec<(String, Tags)>, NodeError> {
        let out = aws.ec2().describe_nat_gateways().set_filter(Some(filters)).send().await.map_err(|e| aws_err("ec2:DescribeNatGateways", e))?;
        Ok(out.nat_gateways().iter().filter(|n| nat_live(n)).filter_map(|n| Some((n.nat_gateway_id()?.to_string(), tags_of(n.tags())))).collect())
    }
}

#[async_trait]
impl Node<Aws> for NatGatewayNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        vec![self.subnet_key.as_str(), self.eip_key.as_str(), "internet_gateway"]
    }
    fn describe(&self) -> String {
        format!("NAT gateway {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({"subnet": format!("<{}>", self.subnet_key), "allocation": format!("<{}>", self.eip_key), "tags": tags_json(&self.tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["subnet", "allocation"]
    }
    /// `nat-…|eipalloc-…` from before the Elastic IP was a child of its own.
    fn legacy_identity(&self, recorded: &str) -> Vec<(String, Identity)> {
        let (nat, alloc) = recorded.split_once('|').unwrap_or((recorded, ""));
        let mut out = Vec::new();
        if !nat.is_empty() {
            out.push((self.key.clone(), Identity::new(nat)));
        }
        if !alloc.is_empty() {
            out.push((self.eip_key.clone(), Identity::new(alloc)));
        }
        out
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        Ok(self.by(aws, owned_filters(&self.c, &self.key)).await?.into_iter().next().map(|(id, t)| Found::Tagged(Identity::new(id), t)).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let subnet = cx.dep(&self.subnet_key)?.to_string();
        let alloc = cx.dep(&self.eip_key)?.to_string();
        let out = aws
            .ec2()
            .create_nat_gateway()
            .subnet_id(&subnet)
            .allocation_id(&alloc)
            .client_token(crate::engine::names::short_hash(&format!("{}/{}", cx.lease.token, self.key)))
            .tag_specifications(tag_spec(ResourceType::Natgateway, &self.c.create_tags(&self.key, Some(&self.name), cx)))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateNatGateway", e))?;
        let nat = out.nat_gateway().and_then(|n| n.nat_gateway_id()).filter(|s| !s.is_empty()).ok_or_else(|| NodeError::no_identity("ec2:CreateNatGateway"))?.to_string();
        until(&format!("NAT gateway {nat} to become available"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || {
            let nat = nat.clone();
            async move {
                let out = aws.ec2().describe_nat_gateways().nat_gateway_ids(&nat).send().await.map_err(|e| NodeError::from(aws_err("ec2:DescribeNatGateways", e)))?;
                match out.nat_gateways().first().and_then(|n| n.state()).map(|s| s.as_str().to_string()) {
                    Some(s) if s == "available" => Ok(Poll::Done(())),
                    Some(s) if s == "failed" => Err(NodeError::other(format!("NAT gateway {nat} failed"))),
                    s => Ok(Poll::Pending(s.unwrap_or_else(|| "unknown".into()))),
                }
            }
        })
        .await
        .map_err(|e| wait_err("NAT gateway", e).with_id(&nat))?;
        Ok(Made::id(nat))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        gone_or(aws.ec2().describe_nat_gateways().nat_gateway_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DescribeNatGateways", e)), |o| {
            o.nat_gateways().first().filter(|n| nat_live(n)).map(|n| {
                let subnet = n.subnet_id().map(|s| Ref::dep(&self.subnet_key).observed(s, cx));
                let alloc = n.nat_gateway_addresses().first().and_then(|a| a.allocation_id()).map(|a| Ref::dep(&self.eip_key).observed(a, cx));
                spec(json!({"subnet": subnet, "allocation": alloc, "tags": tags_json(&tags_of(n.tags()))}))
            })
        })
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let nat = id.id.as_str();
        match aws.ec2().delete_nat_gateway().nat_gateway_id(nat).send().await.map_err(|e| aws_err("ec2:DeleteNatGateway", e)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        until(&format!("NAT gateway {nat} to be deleted"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || async move {
            match aws.ec2().describe_nat_gateways().nat_gateway_ids(nat).send().await.map_err(|e| aws_err("ec2:DescribeNatGateways", e)) {
                Err(e) if e.is_not_found() => Ok(Poll::Done(())),
                Err(e) => Err(NodeError::from(e)),
                Ok(o) => match o.nat_gateways().first().and_then(|n| n.state()).map(|s| s.as_str().to_string()) {
                    None => Ok(Poll::Done(())),
                    Some(s) if s == "deleted" || s == "failed" => Ok(Poll::Done(())),
                    Some(s) => Ok(Poll::Pending(s)),
                },
            }
        })
        .await
        .map_err(|e| wait_err("NAT gateway deletion", e))
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ route tables

/// A route table with a default route (to the internet gateway or a NAT
/// gateway) and its subnet associations.
pub struct RouteTableNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    /// `internet_gateway` or a NAT gateway's key.
    pub target_key: String,
    pub subnet_keys: Vec<String>,
}

impl RouteTableNode {
    fn tags(&self) -> Tags {
        self.c.tags_for(&self.key, Some(&self.name))
    }
    fn target_is_nat(&self) -> bool {
        self.target_key != "internet_gateway"
    }
    fn subnets_spec(&self) -> Vec<String> {
        let mut v: Vec<String> = self.subnet_keys.iter().map(|k| format!("<{k}>")).collect();
        v.sort();
        v
    }
    async fn route(&self, aws: &Aws, rt: &str, target: &str, replace: bool) -> Result<(), NodeError> {
        if replace {
            match aws.ec2().delete_route().route_table_id(rt).destination_cidr_block("0.0.0.0/0").send().await.map_err(|e| aws_err("ec2:DeleteRoute", e)) {
                Ok(_) => {}
                Err(e) if e.is_not_found() || e.is_code(&["InvalidRoute.NotFound"]) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut r = aws.ec2().create_route().route_table_id(rt).destination_cidr_block("0.0.0.0/0");
        r = if self.target_is_nat() { r.nat_gateway_id(target) } else { r.gateway_id(target) };
        match r.send().await.map_err(|e| aws_err("ec2:CreateRoute", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_code(&["RouteAlreadyExists"]) => Ok(()),
            Err(e) => Err(NodeError::from(e).with_id(rt)),
        }
    }
    async fn associate(&self, aws: &Aws, rt: &str, subnet: &str) -> Result<(), NodeError> {
        match aws.ec2().associate_route_table().route_table_id(rt).subnet_id(subnet).send().await.map_err(|e| aws_err("ec2:AssociateRouteTable", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_code(&["Resource.AlreadyAssociated"]) => Ok(()),
            Err(e) => Err(NodeError::from(e).with_id(rt)),
        }
    }
}

#[async_trait]
impl Node<Aws> for RouteTableNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        let mut d = vec!["vpc", self.target_key.as_str()];
        d.extend(self.subnet_keys.iter().map(String::as_str));
        d
    }
    fn describe(&self) -> String {
        format!("route table {}", self.name)
    }
    fn spec(&self) -> Spec {
        spec(json!({"vpc": "<vpc>", "default_route": format!("<{}>", self.target_key), "subnets": self.subnets_spec(), "tags": tags_json(&self.tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["vpc"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.ec2().describe_route_tables().set_filters(Some(owned_filters(&self.c, &self.key))).send().await.map_err(|e| aws_err("ec2:DescribeRouteTables", e))?;
        Ok(out.route_tables().first().and_then(|t| Some(Found::Tagged(Identity::new(t.route_table_id()?), tags_of(t.tags())))).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let out = aws
            .ec2()
            .create_route_table()
            .vpc_id(&vpc)
            .client_token(crate::engine::names::short_hash(&format!("{}/{}", cx.lease.token, self.key)))
            .tag_specifications(tag_spec(ResourceType::RouteTable, &self.c.create_tags(&self.key, Some(&self.name), cx)))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateRouteTable", e))?;
        let id = out.route_table().and_then(|t| t.route_table_id()).filter(|s| !s.is_empty()).ok_or_else(|| NodeError::no_identity("ec2:CreateRouteTable"))?.to_string();
        self.route(aws, &id, cx.dep(&self.target_key)?, false).await?;
        for k in &self.subnet_keys {
            self.associate(aws, &id, cx.dep(k)?).await?;
        }
        Ok(Made::id(id))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        gone_or(aws.ec2().describe_route_tables().route_table_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DescribeRouteTables", e)), |o| {
            o.route_tables().first().map(|t| {
                let target = Ref::dep(&self.target_key);
                let route =
                    t.routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0")).and_then(|r| r.nat_gateway_id().or(r.gateway_id())).map(|g| target.observed(g, cx));
                let refs: Vec<Ref> = self.subnet_keys.iter().map(Ref::dep).collect();
                let subnets: Vec<String> = t.associations().iter().filter_map(|a| a.subnet_id().map(str::to_string)).collect();
                let vpc = t.vpc_id().map(|v| Ref::dep("vpc").observed(v, cx));
                spec(json!({"vpc": vpc, "default_route": route, "subnets": super::observed_refs(&subnets, &refs, cx), "tags": tags_json(&tags_of(t.tags()))}))
            })
        })
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let want_route = json!(format!("<{}>", self.target_key));
        if base.get("default_route") != Some(&want_route) {
            self.route(aws, &id.id, cx.dep(&self.target_key)?, true).await?;
        }
        let had: BTreeSet<String> = base.get("subnets").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
        for k in &self.subnet_keys {
            if !had.contains(&format!("<{k}>")) {
                self.associate(aws, &id.id, cx.dep(k)?).await?;
            }
        }
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let id = id.id.as_str();
        let out = match aws.ec2().describe_route_tables().route_table_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeRouteTables", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for a in out.route_tables().iter().flat_map(|t| t.associations()).filter(|a| a.main() != Some(true)) {
            if let Some(assoc) = a.route_table_association_id() {
                match aws.ec2().disassociate_route_table().association_id(assoc).send().await.map_err(|e| aws_err("ec2:DisassociateRouteTable", e)) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() || e.is_code(&["InvalidAssociationID.NotFound"]) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        delete_retrying(&format!("route table {id} deletion"), cx, || async move {
            aws.ec2().delete_route_table().route_table_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteRouteTable", e))
        })
        .await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ VPC flow logs

pub struct FlowLogNode {
    pub c: Arc<Common>,
    pub bucket_arn: String,
}

#[async_trait]
impl Node<Aws> for FlowLogNode {
    fn key(&self) -> &str {
        "flow_log"
    }
    fn deps(&self) -> Vec<&str> {
        vec!["vpc"]
    }
    fn describe(&self) -> String {
        format!("VPC flow log to {}", self.bucket_arn)
    }
    fn spec(&self) -> Spec {
        spec(json!({"destination": self.bucket_arn, "tags": tags_json(&self.c.tags_for("flow_log", None))}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["destination"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.ec2().describe_flow_logs().set_filter(Some(owned_filters(&self.c, "flow_log"))).send().await.map_err(|e| aws_err("ec2:DescribeFlowLogs", e))?;
        Ok(out.flow_logs().first().and_then(|f| Some(Found::Tagged(Identity::new(f.flow_log_id()?), tags_of(f.tags())))).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let out = aws
            .ec2()
            .create_flow_logs()
            .resource_ids(&vpc)
            .resource_type(aws_sdk_ec2::types::FlowLogsResourceType::Vpc)
            .traffic_type(aws_sdk_ec2::types::TrafficType::All)
            .log_destination_type(aws_sdk_ec2::types::LogDestinationType::S3)
            .log_destination(&self.bucket_arn)
            .client_token(crate::engine::names::short_hash(&format!("{}/flow_log", cx.lease.token)))
            .tag_specifications(tag_spec(ResourceType::VpcFlowLog, &self.c.create_tags("flow_log", None, cx)))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateFlowLogs", e))?;
        if let Some(err) = out.unsuccessful().first() {
            return Err(NodeError::other(format!("flow log not created: {}", err.error().and_then(|e| e.message()).unwrap_or("unknown error"))));
        }
        Ok(Made::id(out.flow_log_ids().first().cloned().ok_or_else(|| NodeError::no_identity("ec2:CreateFlowLogs"))?))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        gone_or(aws.ec2().describe_flow_logs().flow_log_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DescribeFlowLogs", e)), |o| {
            o.flow_logs().first().map(|f| spec(json!({"destination": f.log_destination(), "tags": tags_json(&tags_of(f.tags()))})))
        })
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.c.tags_for("flow_log", None)).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.ec2().delete_flow_logs().flow_log_ids(&id.id).send().await.map_err(|e| aws_err("ec2:DeleteFlowLogs", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ security groups

/// Where a security group lives: a VPC (literal or child), or the VPC of a subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VpcOf {
    Vpc(Ref),
    Subnet(String),
}

/// One inbound rule: protocol, port range and one source (an IPv4 or IPv6
/// CIDR block, or a security group: a literal `sg-…` or another child).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `tcp`, `udp` or `-1` (everything).
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    pub source: Ref,
}

impl Rule {
    pub fn tcp(port: i32, source: Ref) -> Rule {
        Rule { protocol: "tcp".into(), from: port, to: port, source }
    }
    fn spec_with(&self, source: &str) -> String {
        rule_string(&self.protocol, self.from, self.to, source)
    }
}

/// `tcp 443-443 from 10.0.0.0/16`, or `all from sg-…` for every protocol.
fn rule_string(proto: &str, from: i32, to: i32, source: &str) -> String {
    if proto == "-1" { format!("all from {source}") } else { format!("{proto} {from}-{to} from {source}") }
}

/// A rule's spec string parsed back: (protocol, from, to, source).
fn parse_rule(s: &str) -> Option<(String, i32, i32, String)> {
    let (head, source) = s.split_once(" from ")?;
    if head == "all" {
        return Some(("-1".into(), -1, -1, source.to_string()));
    }
    let (proto, range) = head.split_once(' ')?;
    let (from, to) = range.split_once('-')?;
    Some((proto.to_string(), from.parse().ok()?, to.parse().ok()?, source.to_string()))
}

fn permission(proto: &str, from: i32, to: i32, src: &str) -> IpPermission {
    let b = IpPermission::builder().ip_protocol(proto).from_port(from).to_port(to);
    if src.starts_with("sg-") {
        b.user_id_group_pairs(UserIdGroupPair::builder().group_id(src).build()).build()
    } else if src.contains(':') {
        b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(src).build()).build()
    } else {
        b.ip_ranges(IpRange::builder().cidr_ip(src).build()).build()
    }
}

/// A security group with inbound rules and the default allow-all egress.
pub struct SecurityGroupNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub description: String,
    pub vpc: VpcOf,
    pub ingress: Vec<Rule>,
    /// False when the configuration supplies security groups of its own.
    pub wanted: bool,
}

impl SecurityGroupNode {
    fn tags(&self) -> Tags {
        self.c.tags_for(&self.key, Some(&self.name))
    }
    fn rules_spec(&self) -> Vec<String> {
        let mut v: Vec<String> = self.ingress.iter().map(|r| r.spec_with(&r.source.spec())).collect();
        v.sort();
        v.dedup();
        v
    }
    /// Rules as AWS has them, sources in spec form.
    fn rules_of(&self, g: &aws_sdk_ec2::types::SecurityGroup, cx: &Cx<'_>) -> Vec<String> {
        let refs: Vec<&Ref> = self.ingress.iter().map(|r| &r.source).filter(|r| r.key().is_some()).collect();
        let mut out = Vec::new();
        for p in g.ip_permissions() {
            let proto = p.ip_protocol().unwrap_or("-1");
            let (from, to) = if proto == "-1" { (-1, -1) } else { (p.from_port().unwrap_or(0), p.to_port().unwrap_or(0)) };
            let mut sources: Vec<String> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(str::to_string)).collect();
            sources.extend(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6().map(str::to_string)));
            sources.extend(p.user_id_group_pairs().iter().filter_map(|u| u.group_id().map(str::to_string)));
            for s in sources {
                let shown = refs.iter().map(|r| r.observed(&s, cx)).find(|o| *o != s).unwrap_or(s);
                out.push(rule_string(proto, from, to, &shown));
            }
        }
        out.sort();
        out.dedup();
        out
    }
    fn resolve_source(src: &str, cx: &Cx<'_>) -> Result<String, NodeError> {
        match src.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
            Some(k) => cx.dep(k).map(str::to_string),
            None => Ok(src.to_string()),
        }
    }
    async fn vpc_id(&self, aws: &Aws, cx: &Cx<'_>) -> Result<String, NodeError> {
        match &self.vpc {
            VpcOf::Vpc(r) => r.resolve(cx),
            VpcOf::Subnet(s) => vpc_of_subnet(aws, s).await,
        }
    }
    fn vpc_spec(&self) -> Option<String> {
        match &self.vpc {
            VpcOf::Vpc(r) => Some(r.spec()),
            VpcOf::Subnet(_) => None,
        }
    }
    /// Apply the rule changes from `have` (spec strings) to the wanted rules.
    async fn set_rules(&self, aws: &Aws, id: &str, have: &BTreeSet<String>, cx: &Cx<'_>) -> Result<(), NodeError> {
        let want: BTreeSet<String> = self.rules_spec().into_iter().collect();
        let perms = |set: Vec<&String>| -> Result<Vec<IpPermission>, NodeError> {
            set.into_iter().filter_map(|s| parse_rule(s)).map(|(p, f, t, src)| Ok(permission(&p, f, t, &Self::resolve_source(&src, cx)?))).collect()
        };
        let remove = perms(have.difference(&want).collect())?;
        let add = perms(want.difference(have).collect())?;
        if !remove.is_empty() {
            aws.ec2().revoke_security_group_ingress().group_id(id).set_ip_permissions(Some(remove)).send().await.map_err(|e| aws_err("ec2:RevokeSecurityGroupIngress", e))?;
        }
        if !add.is_empty() {
            match aws.ec2().authorize_security_group_ingress().group_id(id).set_ip_permissions(Some(add)).send().await.map_err(|e| aws_err("ec2:AuthorizeSecurityGroupIngress", e))
            {
                Ok(_) => {}
                // A retried call whose first answer was lost.
                Err(e) if e.is_code(&["InvalidPermission.Duplicate"]) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Node<Aws> for SecurityGroupNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn wanted(&self) -> bool {
        self.wanted
    }
    fn deps(&self) -> Vec<&str> {
        let mut d: Vec<&str> = match &self.vpc {
            VpcOf::Vpc(r) => r.key().into_iter().collect(),
            VpcOf::Subnet(_) => Vec::new(),
        };
        d.extend(self.ingress.iter().filter_map(|r| r.source.key()));
        d
    }
    fn describe(&self) -> String {
        format!("security group {}", self.name)
    }
    fn spec(&self) -> Spec {
        let mut s = spec(json!({"name": self.name, "ingress": self.rules_spec(), "tags": tags_json(&self.tags())}));
        if let Some(v) = self.vpc_spec() {
            s.insert("vpc".into(), json!(v));
        }
        s
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name", "vpc"]
    }
    async fn find(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        // Before the first write the VPC may not exist yet: look by ownership tags;
        // once it does (a create found the name taken), look by name as well.
        let mut filters = owned_filters(&self.c, &self.key);
        if let Ok(vpc) = match &self.vpc {
            VpcOf::Vpc(Ref::Dep(k)) => cx.dep(k).map(str::to_string),
            VpcOf::Vpc(Ref::Lit(v)) => Ok(v.clone()),
            VpcOf::Subnet(_) if cx.deps.is_empty() => Err(NodeError::other("by tags")),
            VpcOf::Subnet(s) => vpc_of_subnet(aws, s).await,
        } {
            filters = vec![Filter::builder().name("group-name").values(&self.name).build(), Filter::builder().name("vpc-id").values(vpc).build()];
        }
        let out = aws.ec2().describe_security_groups().set_filters(Some(filters)).send().await.map_err(|e| aws_err("ec2:DescribeSecurityGroups", e))?;
        Ok(out.security_groups().first().and_then(|g| Some(Found::Tagged(Identity::new(g.group_id()?), tags_of(g.tags())))).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = self.vpc_id(aws, cx).await?;
        let out = aws
            .ec2()
            .create_security_group()
            .group_name(&self.name)
            .description(&self.description)
            .vpc_id(&vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &self.c.create_tags(&self.key, Some(&self.name), cx)))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateSecurityGroup", e))?;
        let id = out.group_id().filter(|s| !s.is_empty()).ok_or_else(|| NodeError::no_identity("ec2:CreateSecurityGroup"))?.to_string();
        self.set_rules(aws, &id, &BTreeSet::new(), cx).await.map_err(|e| e.with_id(&id))?;
        Ok(Made::id(id))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(g) = aws.read_security_group(&id.id).await? else { return Ok(None) };
        let mut s = spec(json!({"name": g.group_name(), "ingress": self.rules_of(&g, cx), "tags": tags_json(&tags_of(g.tags()))}));
        if let (VpcOf::Vpc(r), Some(v)) = (&self.vpc, g.vpc_id()) {
            s.insert("vpc".into(), json!(r.observed(v, cx)));
        }
        Ok(Some(s))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let have: BTreeSet<String> = base.get("ingress").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
        self.set_rules(aws, &id.id, &have, cx).await?;
        retag(aws, &id.id, &spec_tags(base).unwrap_or_default(), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let id = id.id.as_str();
        // Task network interfaces take a while to go after a service is deleted.
        delete_retrying(&format!("security group {id} deletion"), cx, || async move {
            aws.ec2().delete_security_group().group_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteSecurityGroup", e))
        })
        .await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        release_ec2(aws, &id.id, cx).await
    }
}

/// The security groups of a list, in spec form (for services).
pub fn group_specs(refs: &[Ref]) -> Vec<String> {
    ref_specs(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_strings_round_trip() {
        let r = Rule::tcp(443, Ref::lit("10.0.0.0/16"));
        let s = r.spec_with("10.0.0.0/16");
        assert_eq!(s, "tcp 443-443 from 10.0.0.0/16");
        assert_eq!(parse_rule(&s), Some(("tcp".into(), 443, 443, "10.0.0.0/16".into())));
        assert_eq!(rule_string("-1", -1, -1, "sg-1"), "all from sg-1");
        assert_eq!(parse_rule("all from sg-1"), Some(("-1".into(), -1, -1, "sg-1".into())));
    }
}
