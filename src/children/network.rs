//! Network children: VPC, internet gateway, subnets, NAT gateways, route
//! tables, flow logs and security groups. EC2 objects have no unique names,
//! so each carries `cxflow:owner` and `cxflow:child` tags and adoption after
//! a crash looks them up by those two tags.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use serde_json::json;

use super::{Common, Ref, tag_diff, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Made, Node, NodeError, OWNER_TAG, Observed};

pub fn ec2_tags(t: &BTreeMap<String, String>) -> Vec<Tag> {
    t.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The VPC a subnet belongs to.
pub async fn vpc_of_subnet(aws: &Aws, subnet: &str) -> Result<String, NodeError> {
    let out = aws.ec2().describe_subnets().subnet_ids(subnet).send().await.map_err(|e| aws_err("ec2:DescribeSubnets", e))?;
    out.subnets().first().and_then(|s| s.vpc_id()).map(str::to_string).ok_or_else(|| NodeError::other(format!("subnet {subnet} was not found")))
}

fn tag_spec(rt: ResourceType, t: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder().resource_type(rt).set_tags(Some(ec2_tags(t))).build()
}

fn tags_of(t: &[Tag]) -> BTreeMap<String, String> {
    t.iter().filter_map(|x| Some((x.key()?.to_string(), x.value()?.to_string()))).collect()
}

/// Filters selecting the object that child `key` of `c`'s composite created.
fn owned_filters(c: &Common, key: &str) -> Vec<Filter> {
    vec![Filter::builder().name(format!("tag:{OWNER_TAG}")).values(c.owner.tag_value()).build(), Filter::builder().name(format!("tag:{}", super::CHILD_TAG)).values(key).build()]
}

/// Bring an EC2 object's tags to `desired`.
async fn retag(aws: &Aws, id: &str, current: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> Result<(), NodeError> {
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

// ------------------------------------------------------------------ VPC

pub struct VpcNode {
    pub c: Arc<Common>,
    pub cidr: String,
    pub name: String,
}

#[async_trait]
impl Node<Aws> for VpcNode {
    fn key(&self) -> &str {
        "vpc"
    }
    fn describe(&self) -> String {
        format!("VPC {} ({})", self.name, self.cidr)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"cidr": self.cidr, "tags": self.c.tags_for("vpc", Some(&self.name))})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.ec2().describe_vpcs().set_filters(Some(owned_filters(&self.c, "vpc"))).send().await.map_err(|e| aws_err("ec2:DescribeVpcs", e))?;
        Ok(out.vpcs().first().and_then(|v| v.vpc_id()).map(|id| Found::Owned(id.to_string())).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .ec2()
            .create_vpc()
            .cidr_block(&self.cidr)
            .tag_specifications(tag_spec(ResourceType::Vpc, &self.c.tags_for("vpc", Some(&self.name))))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateVpc", e))?;
        let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
        for (hostnames, support) in [(true, false), (false, true)] {
            let mut m = aws.ec2().modify_vpc_attribute().vpc_id(&id);
            if hostnames {
                m = m.enable_dns_hostnames(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build());
            }
            if support {
                m = m.enable_dns_support(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build());
            }
            m.send().await.map_err(|e| NodeError::from(aws_err("ec2:ModifyVpcAttribute", e)).with_id(&id))?;
        }
        Ok(Made::id(id))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        match aws.ec2().describe_vpcs().vpc_ids(id).send().await {
            Err(e) => {
                let e = aws_err("ec2:DescribeVpcs", e);
                if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) }
            }
            Ok(out) => match out.vpcs().first() {
                None => Ok(Observed::Gone),
                Some(v) if v.cidr_block() != Some(self.cidr.as_str()) => Ok(Observed::Drifted(format!("CIDR is {}", v.cidr_block().unwrap_or("?")))),
                Some(v) if tags_of(v.tags()) != self.c.tags_for("vpc", Some(&self.name)) => Ok(Observed::Drifted("tags differ".into())),
                Some(_) => Ok(Observed::InSync),
            },
        }
    }
    async fn update(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws.ec2().describe_vpcs().vpc_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeVpcs", e))?;
        let current = out.vpcs().first().map(|v| tags_of(v.tags())).unwrap_or_default();
        retag(aws, id, &current, &self.c.tags_for("vpc", Some(&self.name))).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let id = id.to_string();
        delete_retrying(&format!("VPC {id} deletion"), cx, || {
            let id = id.clone();
            async move { aws.ec2().delete_vpc().vpc_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteVpc", e)) }
        })
        .await
    }
}

// ------------------------------------------------------------------ internet gateway

pub struct InternetGatewayNode {
    pub c: Arc<Common>,
    pub name: String,
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
    fn spec(&self) -> serde_json::Value {
        json!({"tags": self.c.tags_for(self.key(), Some(&self.name))})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out =
            aws.ec2().describe_internet_gateways().set_filters(Some(owned_filters(&self.c, self.key()))).send().await.map_err(|e| aws_err("ec2:DescribeInternetGateways", e))?;
        Ok(out.internet_gateways().first().and_then(|g| g.internet_gateway_id()).map(|id| Found::Owned(id.to_string())).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let out = aws
            .ec2()
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, &self.c.tags_for(self.key(), Some(&self.name))))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateInternetGateway", e))?;
        let id = out.internet_gateway().and_then(|g| g.internet_gateway_id()).unwrap_or_default().to_string();
        self.attach(aws, &id, &vpc).await?;
        Ok(Made::id(id))
    }
    async fn read(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError> {
        match aws.ec2().describe_internet_gateways().internet_gateway_ids(id).send().await {
            Err(e) => {
                let e = aws_err("ec2:DescribeInternetGateways", e);
                if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) }
            }
            Ok(out) => match out.internet_gateways().first() {
                None => Ok(Observed::Gone),
                Some(g) => {
                    let vpc = cx.deps.get("vpc").cloned().unwrap_or_default();
                    if !g.attachments().iter().any(|a| a.vpc_id() == Some(vpc.as_str())) { Ok(Observed::Drifted("not attached to the VPC".into())) } else { Ok(Observed::InSync) }
                }
            },
        }
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let out = aws.ec2().describe_internet_gateways().internet_gateway_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeInternetGateways", e))?;
        if let Some(g) = out.internet_gateways().first() {
            if !g.attachments().iter().any(|a| a.vpc_id() == Some(vpc.as_str())) {
                self.attach(aws, id, &vpc).await?;
            }
            retag(aws, id, &tags_of(g.tags()), &self.c.tags_for(self.key(), Some(&self.name))).await?;
        }
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        if let Ok(out) = aws.ec2().describe_internet_gateways().internet_gateway_ids(id).send().await {
            for a in out.internet_gateways().iter().flat_map(|g| g.attachments()) {
                if let Some(vpc) = a.vpc_id() {
                    let vpc = vpc.to_string();
                    delete_retrying(&format!("detaching internet gateway {id}"), cx, || {
                        let vpc = vpc.clone();
                        async move {
                            aws.ec2().detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DetachInternetGateway", e))
                        }
                    })
                    .await?;
                }
            }
        }
        delete_retrying(&format!("internet gateway {id} deletion"), cx, || async move {
            aws.ec2().delete_internet_gateway().internet_gateway_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteInternetGateway", e))
        })
        .await
    }
}

impl InternetGatewayNode {
    async fn attach(&self, aws: &Aws, id: &str, vpc: &str) -> Result<(), NodeError> {
        aws.ec2()
            .attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| NodeError::from(aws_err("ec2:AttachInternetGateway", e)).with_id(id))
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

async fn zone_names(aws: &Aws) -> Result<Vec<String>, NodeError> {
    let out = aws.ec2().describe_availability_zones().send().await.map_err(|e| aws_err("ec2:DescribeAvailabilityZones", e))?;
    let mut z: Vec<String> = out.availability_zones().iter().filter_map(|z| z.zone_name().map(str::to_string)).collect();
    z.sort();
    if z.is_empty() {
        return Err(NodeError::other("the region reports no availability zones"));
    }
    Ok(z)
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
    fn spec(&self) -> serde_json::Value {
        json!({"cidr": self.cidr, "az": self.az_index, "public": self.public, "tags": self.c.tags_for(&self.key, Some(&self.name))})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.ec2().describe_subnets().set_filters(Some(owned_filters(&self.c, &self.key))).send().await.map_err(|e| aws_err("ec2:DescribeSubnets", e))?;
        Ok(out.subnets().first().and_then(|s| s.subnet_id()).map(|id| Found::Owned(id.to_string())).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let zones = zone_names(aws).await?;
        let az = &zones[self.az_index % zones.len()];
        let out = aws
            .ec2()
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(&self.cidr)
            .availability_zone(az)
            .tag_specifications(tag_spec(ResourceType::Subnet, &self.c.tags_for(&self.key, Some(&self.name))))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateSubnet", e))?;
        let id = out.subnet().and_then(|s| s.subnet_id()).unwrap_or_default().to_string();
        if self.public {
            aws.ec2()
                .modify_subnet_attribute()
                .subnet_id(&id)
                .map_public_ip_on_launch(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build())
                .send()
                .await
                .map_err(|e| NodeError::from(aws_err("ec2:ModifySubnetAttribute", e)).with_id(&id))?;
        }
        Ok(Made::id(id))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        match aws.ec2().describe_subnets().subnet_ids(id).send().await {
            Err(e) => {
                let e = aws_err("ec2:DescribeSubnets", e);
                if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) }
            }
            Ok(out) => match out.subnets().first() {
                None => Ok(Observed::Gone),
                Some(s) if s.cidr_block() != Some(self.cidr.as_str()) => Ok(Observed::Drifted("CIDR differs".into())),
                Some(s) if tags_of(s.tags()) != self.c.tags_for(&self.key, Some(&self.name)) => Ok(Observed::Drifted("tags differ".into())),
                Some(_) => Ok(Observed::InSync),
            },
        }
    }
    async fn update(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws.ec2().describe_subnets().subnet_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeSubnets", e))?;
        let current = out.subnets().first().map(|s| tags_of(s.tags())).unwrap_or_default();
        retag(aws, id, &current, &self.c.tags_for(&self.key, Some(&self.name))).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        delete_retrying(&format!("subnet {id} deletion"), cx, || async move {
            aws.ec2().delete_subnet().subnet_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteSubnet", e))
        })
        .await
    }
}

// ------------------------------------------------------------------ NAT gateway (with its Elastic IP)

/// A NAT gateway in a public subnet and the Elastic IP it owns. Identity:
/// `<nat id>|<allocation id>`.
pub struct NatGatewayNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub subnet_key: String,
}

#[async_trait]
impl Node<Aws> for NatGatewayNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        vec![self.subnet_key.as_str(), "internet_gateway"]
    }
    fn describe(&self) -> String {
        format!("NAT gateway {}", self.name)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"subnet": self.subnet_key, "tags": self.c.tags_for(&self.key, Some(&self.name))})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.ec2().describe_nat_gateways().set_filter(Some(owned_filters(&self.c, &self.key))).send().await.map_err(|e| aws_err("ec2:DescribeNatGateways", e))?;
        let live = out.nat_gateways().iter().find(|n| !matches!(n.state().map(|s| s.as_str()), Some("deleted") | Some("deleting") | Some("failed")));
        Ok(match live {
            Some(n) => {
                let alloc = n.nat_gateway_addresses().first().and_then(|a| a.allocation_id()).unwrap_or_default();
                Found::Owned(format!("{}|{alloc}", n.nat_gateway_id().unwrap_or_default()))
            }
            None => Found::None,
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let subnet = cx.dep(&self.subnet_key)?.to_string();
        let tags = self.c.tags_for(&self.key, Some(&self.name));
        let eip = aws
            .ec2()
            .allocate_address()
            .domain(aws_sdk_ec2::types::DomainType::Vpc)
            .tag_specifications(tag_spec(ResourceType::ElasticIp, &tags))
            .send()
            .await
            .map_err(|e| aws_err("ec2:AllocateAddress", e))?;
        let alloc = eip.allocation_id().unwrap_or_default().to_string();
        let out = aws
            .ec2()
            .create_nat_gateway()
            .subnet_id(&subnet)
            .allocation_id(&alloc)
            .tag_specifications(tag_spec(ResourceType::Natgateway, &tags))
            .send()
            .await
            .map_err(|e| NodeError::from(aws_err("ec2:CreateNatGateway", e)).with_id(format!("|{alloc}")))?;
        let nat = out.nat_gateway().and_then(|n| n.nat_gateway_id()).unwrap_or_default().to_string();
        let id = format!("{nat}|{alloc}");
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
        .map_err(|e| wait_err("NAT gateway", e).with_id(&id))?;
        Ok(Made::id(id))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let nat = id.split('|').next().unwrap_or_default();
        if nat.is_empty() {
            return Ok(Observed::Drifted("only the Elastic IP exists".into()));
        }
        match aws.ec2().describe_nat_gateways().nat_gateway_ids(nat).send().await {
            Err(e) => {
                let e = aws_err("ec2:DescribeNatGateways", e);
                if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) }
            }
            Ok(out) => match out.nat_gateways().first().and_then(|n| n.state()).map(|s| s.as_str()) {
                None | Some("deleted") | Some("deleting") | Some("failed") => Ok(Observed::Gone),
                Some(_) => Ok(Observed::InSync),
            },
        }
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        if id.starts_with('|') {
            // A create that died after allocating the address: free it and start again.
            self.delete(aws, id, cx).await?;
            return self.create(aws, cx).await;
        }
        let nat = id.split('|').next().unwrap_or_default();
        let out = aws.ec2().describe_nat_gateways().nat_gateway_ids(nat).send().await.map_err(|e| aws_err("ec2:DescribeNatGateways", e))?;
        let current = out.nat_gateways().first().map(|n| tags_of(n.tags())).unwrap_or_default();
        retag(aws, nat, &current, &self.c.tags_for(&self.key, Some(&self.name))).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (nat, alloc) = id.split_once('|').unwrap_or((id, ""));
        if !nat.is_empty() {
            match aws.ec2().delete_nat_gateway().nat_gateway_id(nat).send().await {
                Ok(_) => {}
                Err(e) => {
                    let e = aws_err("ec2:DeleteNatGateway", e);
                    if !e.is_not_found() {
                        return Err(e.into());
                    }
                }
            }
            until(&format!("NAT gateway {nat} to be deleted"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || async move {
                let out = aws.ec2().describe_nat_gateways().nat_gateway_ids(nat).send().await;
                match out {
                    Err(e) => {
                        let e = aws_err("ec2:DescribeNatGateways", e);
                        if e.is_not_found() { Ok(Poll::Done(())) } else { Err(NodeError::from(e)) }
                    }
                    Ok(o) => match o.nat_gateways().first().and_then(|n| n.state()).map(|s| s.as_str().to_string()) {
                        None => Ok(Poll::Done(())),
                        Some(s) if s == "deleted" || s == "failed" => Ok(Poll::Done(())),
                        Some(s) => Ok(Poll::Pending(s)),
                    },
                }
            })
            .await
            .map_err(|e| wait_err("NAT gateway deletion", e))?;
        }
        if !alloc.is_empty() {
            let alloc = alloc.to_string();
            delete_retrying(&format!("releasing Elastic IP {alloc}"), cx, || {
                let alloc = alloc.clone();
                async move { aws.ec2().release_address().allocation_id(alloc).send().await.map(|_| ()).map_err(|e| aws_err("ec2:ReleaseAddress", e)) }
            })
            .await?;
        }
        Ok(())
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
    fn target_is_nat(&self) -> bool {
        self.target_key != "internet_gateway"
    }
    async fn wire(&self, aws: &Aws, rt: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let target = Ref::dep(&self.target_key).resolve(cx)?;
        let current = aws.ec2().describe_route_tables().route_table_ids(rt).send().await.map_err(|e| aws_err("ec2:DescribeRouteTables", e))?;
        let table = current.route_tables().first().cloned();
        let has_route = table.as_ref().is_some_and(|t| {
            t.routes().iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && (r.gateway_id() == Some(target.as_str()) || r.nat_gateway_id() == Some(target.as_str())))
        });
        if !has_route {
            let _ = aws.ec2().delete_route().route_table_id(rt).destination_cidr_block("0.0.0.0/0").send().await;
            let mut r = aws.ec2().create_route().route_table_id(rt).destination_cidr_block("0.0.0.0/0");
            r = if self.target_is_nat() { r.nat_gateway_id(&target) } else { r.gateway_id(&target) };
            r.send().await.map_err(|e| NodeError::from(aws_err("ec2:CreateRoute", e)).with_id(rt))?;
        }
        let associated: BTreeSet<String> = table.iter().flat_map(|t| t.associations()).filter_map(|a| a.subnet_id().map(str::to_string)).collect();
        for k in &self.subnet_keys {
            let subnet = cx.dep(k)?.to_string();
            if !associated.contains(&subnet) {
                aws.ec2()
                    .associate_route_table()
                    .route_table_id(rt)
                    .subnet_id(&subnet)
                    .send()
                    .await
                    .map_err(|e| NodeError::from(aws_err("ec2:AssociateRouteTable", e)).with_id(rt))?;
            }
        }
        Ok(())
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
    fn spec(&self) -> serde_json::Value {
        json!({"target": self.target_key, "subnets": self.subnet_keys, "tags": self.c.tags_for(&self.key, Some(&self.name))})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.ec2().describe_route_tables().set_filters(Some(owned_filters(&self.c, &self.key))).send().await.map_err(|e| aws_err("ec2:DescribeRouteTables", e))?;
        Ok(out.route_tables().first().and_then(|t| t.route_table_id()).map(|id| Found::Owned(id.to_string())).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = cx.dep("vpc")?.to_string();
        let out = aws
            .ec2()
            .create_route_table()
            .vpc_id(&vpc)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &self.c.tags_for(&self.key, Some(&self.name))))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateRouteTable", e))?;
        let id = out.route_table().and_then(|t| t.route_table_id()).unwrap_or_default().to_string();
        self.wire(aws, &id, cx).await?;
        Ok(Made::id(id))
    }
    async fn read(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let out = match aws.ec2().describe_route_tables().route_table_ids(id).send().await {
            Err(e) => {
                let e = aws_err("ec2:DescribeRouteTables", e);
                return if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) };
            }
            Ok(o) => o,
        };
        let Some(t) = out.route_tables().first() else { return Ok(Observed::Gone) };
        let target = cx.deps.get(&self.target_key).map(|s| s.split('|').next().unwrap_or_default().to_string()).unwrap_or_default();
        let routed =
            t.routes().iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && (r.gateway_id() == Some(target.as_str()) || r.nat_gateway_id() == Some(target.as_str())));
        if !routed {
            return Ok(Observed::Drifted("default route missing".into()));
        }
        let associated: BTreeSet<&str> = t.associations().iter().filter_map(|a| a.subnet_id()).collect();
        if self.subnet_keys.iter().any(|k| cx.deps.get(k).is_none_or(|s| !associated.contains(s.as_str()))) {
            return Ok(Observed::Drifted("subnet association missing".into()));
        }
        Ok(Observed::InSync)
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.wire(aws, id, cx).await?;
        let out = aws.ec2().describe_route_tables().route_table_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeRouteTables", e))?;
        let current = out.route_tables().first().map(|t| tags_of(t.tags())).unwrap_or_default();
        retag(aws, id, &current, &self.c.tags_for(&self.key, Some(&self.name))).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        if let Ok(out) = aws.ec2().describe_route_tables().route_table_ids(id).send().await {
            for a in out.route_tables().iter().flat_map(|t| t.associations()) {
                if a.main() == Some(true) {
                    continue;
                }
                if let Some(assoc) = a.route_table_association_id() {
                    let _ = aws.ec2().disassociate_route_table().association_id(assoc).send().await;
                }
            }
        }
        delete_retrying(&format!("route table {id} deletion"), cx, || async move {
            aws.ec2().delete_route_table().route_table_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteRouteTable", e))
        })
        .await
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
    fn spec(&self) -> serde_json::Value {
        json!({"bucket": self.bucket_arn})
    }
    fn update_replaces(&self) -> bool {
        true
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.ec2().describe_flow_logs().set_filter(Some(owned_filters(&self.c, "flow_log"))).send().await.map_err(|e| aws_err("ec2:DescribeFlowLogs", e))?;
        Ok(out.flow_logs().first().and_then(|f| f.flow_log_id()).map(|id| Found::Owned(id.to_string())).unwrap_or(Found::None))
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
            .tag_specifications(tag_spec(ResourceType::VpcFlowLog, &self.c.tags_for("flow_log", None)))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateFlowLogs", e))?;
        if let Some(err) = out.unsuccessful().first() {
            return Err(NodeError::other(format!("flow log not created: {}", err.error().and_then(|e| e.message()).unwrap_or("unknown error"))));
        }
        Ok(Made::id(out.flow_log_ids().first().cloned().unwrap_or_default()))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let out = aws.ec2().describe_flow_logs().flow_log_ids(id).send().await.map_err(|e| aws_err("ec2:DescribeFlowLogs", e))?;
        Ok(match out.flow_logs().first() {
            None => Observed::Gone,
            Some(f) if f.log_destination() != Some(self.bucket_arn.as_str()) => Observed::Drifted("destination differs".into()),
            Some(_) => Observed::InSync,
        })
    }
    async fn update(&self, aws: &Aws, _id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.create(aws, cx).await
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.ec2().delete_flow_logs().flow_log_ids(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = aws_err("ec2:DeleteFlowLogs", e);
                if e.is_not_found() { Ok(()) } else { Err(e.into()) }
            }
        }
    }
}

// ------------------------------------------------------------------ security groups

/// One ingress rule: TCP `port` from CIDRs and/or another security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    pub port: i32,
    pub cidrs: Vec<String>,
    pub source: Option<Ref>,
}

/// A security group with TCP ingress rules and the default allow-all egress.
pub struct SecurityGroupNode {
    pub c: Arc<Common>,
    pub key: String,
    pub name: String,
    pub description: String,
    pub vpc: Ref,
    pub ingress: Vec<Ingress>,
}

impl SecurityGroupNode {
    fn wanted_rules(&self, cx: &Cx<'_>) -> Result<BTreeSet<(i32, String)>, NodeError> {
        let mut out = BTreeSet::new();
        for r in &self.ingress {
            for c in &r.cidrs {
                out.insert((r.port, c.clone()));
            }
            if let Some(s) = &r.source {
                out.insert((r.port, s.resolve(cx)?));
            }
        }
        Ok(out)
    }
    fn current_rules(g: &aws_sdk_ec2::types::SecurityGroup) -> BTreeSet<(i32, String)> {
        let mut out = BTreeSet::new();
        for p in g.ip_permissions() {
            let port = p.from_port().unwrap_or(0);
            for r in p.ip_ranges() {
                out.insert((port, r.cidr_ip().unwrap_or_default().to_string()));
            }
            for u in p.user_id_group_pairs() {
                out.insert((port, u.group_id().unwrap_or_default().to_string()));
            }
        }
        out
    }
    fn permission(port: i32, src: &str) -> IpPermission {
        let b = IpPermission::builder().ip_protocol("tcp").from_port(port).to_port(port);
        if src.starts_with("sg-") {
            b.user_id_group_pairs(UserIdGroupPair::builder().group_id(src).build()).build()
        } else {
            b.ip_ranges(IpRange::builder().cidr_ip(src).build()).build()
        }
    }
    async fn describe_group(aws: &Aws, id: &str) -> Result<Option<aws_sdk_ec2::types::SecurityGroup>, AwsError> {
        match aws.ec2().describe_security_groups().group_ids(id).send().await {
            Ok(o) => Ok(o.security_groups().first().cloned()),
            Err(e) => {
                let e = aws_err("ec2:DescribeSecurityGroups", e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }
    async fn reconcile(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let g = Self::describe_group(aws, id).await?.ok_or_else(|| NodeError::other(format!("security group {id} vanished")))?;
        let want = self.wanted_rules(cx)?;
        let have = Self::current_rules(&g);
        let add: Vec<IpPermission> = want.difference(&have).map(|(p, s)| Self::permission(*p, s)).collect();
        let remove: Vec<IpPermission> = have.difference(&want).map(|(p, s)| Self::permission(*p, s)).collect();
        if !remove.is_empty() {
            aws.ec2().revoke_security_group_ingress().group_id(id).set_ip_permissions(Some(remove)).send().await.map_err(|e| aws_err("ec2:RevokeSecurityGroupIngress", e))?;
        }
        if !add.is_empty() {
            aws.ec2().authorize_security_group_ingress().group_id(id).set_ip_permissions(Some(add)).send().await.map_err(|e| aws_err("ec2:AuthorizeSecurityGroupIngress", e))?;
        }
        retag(aws, id, &tags_of(g.tags()), &self.c.tags_for(&self.key, Some(&self.name))).await
    }
}

#[async_trait]
impl Node<Aws> for SecurityGroupNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.vpc.key().into_iter().collect();
        d.extend(self.ingress.iter().filter_map(|r| r.source.as_ref().and_then(Ref::key)));
        d
    }
    fn describe(&self) -> String {
        format!("security group {}", self.name)
    }
    fn spec(&self) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self.ingress.iter().map(|r| json!({"port": r.port, "cidrs": r.cidrs, "source": r.source.as_ref().map(Ref::spec)})).collect();
        json!({"name": self.name, "vpc": self.vpc.spec(), "ingress": rules, "tags": self.c.tags_for(&self.key, Some(&self.name))})
    }
    async fn adopt(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let vpc = self.vpc.resolve(cx)?;
        let out = aws
            .ec2()
            .describe_security_groups()
            .filters(Filter::builder().name("group-name").values(&self.name).build())
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .map_err(|e| aws_err("ec2:DescribeSecurityGroups", e))?;
        Ok(match out.security_groups().first() {
            None => Found::None,
            Some(g) => {
                let tags = tags_of(g.tags());
                self.c.owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_found(g.group_id().unwrap_or_default(), &format!("security group {}", self.name))
            }
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let vpc = self.vpc.resolve(cx)?;
        let out = aws
            .ec2()
            .create_security_group()
            .group_name(&self.name)
            .description(&self.description)
            .vpc_id(&vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &self.c.tags_for(&self.key, Some(&self.name))))
            .send()
            .await
            .map_err(|e| aws_err("ec2:CreateSecurityGroup", e))?;
        let id = out.group_id().unwrap_or_default().to_string();
        self.reconcile(aws, &id, cx).await.map_err(|e| e.with_id(&id))?;
        Ok(Made::id(id))
    }
    async fn read(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let Some(g) = Self::describe_group(aws, id).await? else { return Ok(Observed::Gone) };
        let want = match self.wanted_rules(cx) {
            Ok(w) => w,
            Err(_) => return Ok(Observed::Drifted("a rule's source is missing".into())),
        };
        if Self::current_rules(&g) != want {
            return Ok(Observed::Drifted("ingress rules differ".into()));
        }
        if tags_of(g.tags()) != self.c.tags_for(&self.key, Some(&self.name)) {
            return Ok(Observed::Drifted("tags differ".into()));
        }
        Ok(Observed::InSync)
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.reconcile(aws, id, cx).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        delete_retrying(&format!("security group {id} deletion"), cx, || async move {
            aws.ec2().delete_security_group().group_id(id).send().await.map(|_| ()).map_err(|e| aws_err("ec2:DeleteSecurityGroup", e))
        })
        .await
    }
}
