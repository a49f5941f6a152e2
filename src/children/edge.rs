//! The edge: application load balancer, its HTTPS listener, the ACM
//! certificate (validated through DNS records in the hosted zone) and Route53
//! alias records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_sdk_route53::types as r53;
use serde_json::json;

use super::{Common, Ref, tag_diff, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Made, Node, NodeError, Observed};

fn elb_tags(t: &BTreeMap<String, String>) -> Vec<elb::Tag> {
    t.iter().map(|(k, v)| elb::Tag::builder().key(k).value(v).build()).collect()
}

async fn elb_tags_of(aws: &Aws, arn: &str) -> Result<BTreeMap<String, String>, AwsError> {
    let out = aws.elbv2().describe_tags().resource_arns(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeTags", e))?;
    Ok(out.tag_descriptions().iter().flat_map(|d| d.tags()).filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect())
}

async fn elb_retag(aws: &Aws, arn: &str, desired: &BTreeMap<String, String>) -> Result<(), NodeError> {
    let current = elb_tags_of(aws, arn).await?;
    let (add, remove) = tag_diff(&current, desired);
    if !add.is_empty() {
        aws.elbv2().add_tags().resource_arns(arn).set_tags(Some(elb_tags(&add))).send().await.map_err(|e| aws_err("elasticloadbalancing:AddTags", e))?;
    }
    if !remove.is_empty() {
        aws.elbv2().remove_tags().resource_arns(arn).set_tag_keys(Some(remove)).send().await.map_err(|e| aws_err("elasticloadbalancing:RemoveTags", e))?;
    }
    Ok(())
}

/// The hosted zone's ID for a zone name (public zones first).
pub async fn zone_id(aws: &Aws, zone: &str) -> Result<String, NodeError> {
    let want = format!("{}.", zone.trim_end_matches('.'));
    let out = aws.route53().list_hosted_zones_by_name().dns_name(&want).send().await.map_err(|e| aws_err("route53:ListHostedZonesByName", e))?;
    let mut found: Vec<&r53::HostedZone> = out.hosted_zones().iter().filter(|z| z.name() == want).collect();
    found.sort_by_key(|z| z.config().map(|c| c.private_zone()).unwrap_or(false));
    found
        .first()
        .map(|z| z.id().trim_start_matches("/hostedzone/").to_string())
        .ok_or_else(|| NodeError::other(format!("no Route53 hosted zone named {zone} exists in this account; create it (or delegate it) first")))
}

// ------------------------------------------------------------------ load balancer

pub struct LoadBalancerNode {
    pub c: Arc<Common>,
    pub name: String,
    pub subnets: Vec<Ref>,
    pub security_group: Ref,
    /// Children that must exist first although not referenced (the internet gateway).
    pub after: Vec<String>,
}

impl LoadBalancerNode {
    async fn find(aws: &Aws, name: &str) -> Result<Option<elb::LoadBalancer>, AwsError> {
        match aws.elbv2().describe_load_balancers().names(name).send().await {
            Ok(o) => Ok(o.load_balancers().first().cloned()),
            Err(e) => {
                let e = aws_err("elasticloadbalancing:DescribeLoadBalancers", e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }
}

#[async_trait]
impl Node<Aws> for LoadBalancerNode {
    fn key(&self) -> &str {
        "load_balancer"
    }
    fn deps(&self) -> Vec<&str> {
        let mut d: Vec<&str> = self.subnets.iter().filter_map(Ref::key).collect();
        d.extend(self.security_group.key());
        d.extend(self.after.iter().map(String::as_str));
        d
    }
    fn describe(&self) -> String {
        format!("application load balancer {}", self.name)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"name": self.name, "subnets": self.subnets.iter().map(Ref::spec).collect::<Vec<_>>(), "sg": self.security_group.spec(), "tags": self.c.tags_for("load_balancer", None)})
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let Some(lb) = Self::find(aws, &self.name).await? else { return Ok(Found::None) };
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        let tags = elb_tags_of(aws, &arn).await?;
        Ok(self.c.owner.check(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))).into_found(arn, &format!("load balancer {}", self.name)))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let subnets = self.subnets.iter().map(|r| r.resolve(cx)).collect::<Result<Vec<_>, _>>()?;
        let sg = self.security_group.resolve(cx)?;
        let out = aws
            .elbv2()
            .create_load_balancer()
            .name(&self.name)
            .r#type(elb::LoadBalancerTypeEnum::Application)
            .scheme(elb::LoadBalancerSchemeEnum::InternetFacing)
            .set_subnets(Some(subnets))
            .security_groups(sg)
            .set_tags(Some(elb_tags(&self.c.tags_for("load_balancer", None))))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateLoadBalancer", e))?;
        let lb = out.load_balancers().first().cloned().unwrap_or_else(|| elb::LoadBalancer::builder().build());
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        until(&format!("load balancer {} to become active", self.name), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || {
            let arn = arn.clone();
            async move {
                let o = aws
                    .elbv2()
                    .describe_load_balancers()
                    .load_balancer_arns(&arn)
                    .send()
                    .await
                    .map_err(|e| NodeError::from(aws_err("elasticloadbalancing:DescribeLoadBalancers", e)))?;
                match o.load_balancers().first().and_then(|l| l.state()).and_then(|s| s.code()).map(|c| c.as_str().to_string()) {
                    Some(c) if c == "active" => Ok(Poll::Done(())),
                    Some(c) if c == "failed" => Err(NodeError::other("load balancer provisioning failed")),
                    c => Ok(Poll::Pending(c.unwrap_or_else(|| "provisioning".into()))),
                }
            }
        })
        .await
        .map_err(|e| wait_err("load balancer", e).with_id(&arn))?;
        Ok(Made::id(arn))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        match aws.elbv2().describe_load_balancers().load_balancer_arns(id).send().await {
            Err(e) => {
                let e = aws_err("elasticloadbalancing:DescribeLoadBalancers", e);
                if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) }
            }
            Ok(o) if o.load_balancers().is_empty() => Ok(Observed::Gone),
            Ok(_) => {
                let tags = elb_tags_of(aws, id).await?;
                Ok(if tags == self.c.tags_for("load_balancer", None) { Observed::InSync } else { Observed::Drifted("tags differ".into()) })
            }
        }
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let sg = self.security_group.resolve(cx)?;
        aws.elbv2().set_security_groups().load_balancer_arn(id).security_groups(sg).send().await.map_err(|e| aws_err("elasticloadbalancing:SetSecurityGroups", e))?;
        elb_retag(aws, id, &self.c.tags_for("load_balancer", None)).await?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        if let Err(e) = aws.elbv2().delete_load_balancer().load_balancer_arn(id).send().await {
            let e = aws_err("elasticloadbalancing:DeleteLoadBalancer", e);
            if !e.is_not_found() {
                return Err(e.into());
            }
        }
        until(&format!("load balancer {} to be deleted", self.name), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || async move {
            match aws.elbv2().describe_load_balancers().load_balancer_arns(id).send().await {
                Err(e) => {
                    let e = aws_err("elasticloadbalancing:DescribeLoadBalancers", e);
                    if e.is_not_found() { Ok(Poll::Done(())) } else { Err(NodeError::from(e)) }
                }
                Ok(o) if o.load_balancers().is_empty() => Ok(Poll::Done(())),
                Ok(_) => Ok(Poll::Pending("deleting".into())),
            }
        })
        .await
        .map_err(|e| wait_err("load balancer deletion", e))
    }
}

// ------------------------------------------------------------------ HTTPS listener

pub const MISSING_ENVIRONMENT: &str = "Missing environment in path";

/// HTTPS listener on 443 whose default action is a fixed 404.
pub struct HttpsListenerNode {
    pub c: Arc<Common>,
    pub certificate: Ref,
    pub tls_policy: String,
}

impl HttpsListenerNode {
    fn default_action() -> elb::Action {
        elb::Action::builder()
            .r#type(elb::ActionTypeEnum::FixedResponse)
            .fixed_response_config(elb::FixedResponseActionConfig::builder().status_code("404").content_type("text/plain").message_body(MISSING_ENVIRONMENT).build())
            .build()
    }
}

#[async_trait]
impl Node<Aws> for HttpsListenerNode {
    fn key(&self) -> &str {
        "https_listener"
    }
    fn deps(&self) -> Vec<&str> {
        let mut d = vec!["load_balancer"];
        d.extend(self.certificate.key());
        d
    }
    fn describe(&self) -> String {
        "HTTPS listener (443)".to_string()
    }
    fn spec(&self) -> serde_json::Value {
        json!({"certificate": self.certificate.spec(), "policy": self.tls_policy})
    }
    async fn adopt(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let lb = cx.dep("load_balancer")?;
        let out = aws.elbv2().describe_listeners().load_balancer_arn(lb).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeListeners", e))?;
        // The load balancer is ours (an owned dependency), so its 443 listener is too.
        Ok(out.listeners().iter().find(|l| l.port() == Some(443)).and_then(|l| l.listener_arn()).map(|a| Found::Owned(a.to_string())).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let lb = cx.dep("load_balancer")?.to_string();
        let cert = self.certificate.resolve(cx)?;
        let out = aws
            .elbv2()
            .create_listener()
            .load_balancer_arn(&lb)
            .protocol(elb::ProtocolEnum::Https)
            .port(443)
            .ssl_policy(&self.tls_policy)
            .certificates(elb::Certificate::builder().certificate_arn(cert).build())
            .default_actions(Self::default_action())
            .set_tags(Some(elb_tags(&self.c.tags_for("https_listener", None))))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateListener", e))?;
        Ok(Made::id(out.listeners().first().and_then(|l| l.listener_arn()).unwrap_or_default()))
    }
    async fn read(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let out = match aws.elbv2().describe_listeners().listener_arns(id).send().await {
            Err(e) => {
                let e = aws_err("elasticloadbalancing:DescribeListeners", e);
                return if e.is_not_found() { Ok(Observed::Gone) } else { Err(e.into()) };
            }
            Ok(o) => o,
        };
        let Some(l) = out.listeners().first() else { return Ok(Observed::Gone) };
        if l.ssl_policy() != Some(self.tls_policy.as_str()) {
            return Ok(Observed::Drifted(format!("TLS policy is {}", l.ssl_policy().unwrap_or("?"))));
        }
        let want = self.certificate.resolve(cx).unwrap_or_default();
        if !l.certificates().iter().any(|c| c.certificate_arn() == Some(want.as_str())) {
            return Ok(Observed::Drifted("certificate differs".into()));
        }
        Ok(Observed::InSync)
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let cert = self.certificate.resolve(cx)?;
        aws.elbv2()
            .modify_listener()
            .listener_arn(id)
            .protocol(elb::ProtocolEnum::Https)
            .port(443)
            .ssl_policy(&self.tls_policy)
            .certificates(elb::Certificate::builder().certificate_arn(cert).build())
            .default_actions(Self::default_action())
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:ModifyListener", e))?;
        Ok(Made::id(id))
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        match aws.elbv2().delete_listener().listener_arn(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = aws_err("elasticloadbalancing:DeleteListener", e);
                if e.is_not_found() { Ok(()) } else { Err(e.into()) }
            }
        }
    }
}

// ------------------------------------------------------------------ ACM certificate with DNS validation

/// A certificate for `domain` and `*.domain`, validated by CNAME records in
/// the hosted zone; create waits (with progress logs) until it is issued.
pub struct CertificateNode {
    pub c: Arc<Common>,
    pub domain: String,
    pub zone: String,
    pub validation_timeout: Duration,
}

impl CertificateNode {
    fn names(&self) -> Vec<String> {
        vec![self.domain.clone(), format!("*.{}", self.domain)]
    }

    async fn validation_records(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>, NodeError> {
        let out = aws.acm().describe_certificate().certificate_arn(arn).send().await.map_err(|e| aws_err("acm:DescribeCertificate", e))?;
        let mut recs: Vec<(String, String)> = out
            .certificate()
            .map(|c| c.domain_validation_options())
            .unwrap_or_default()
            .iter()
            .filter_map(|o| o.resource_record().map(|r| (r.name().to_string(), r.value().to_string())))
            .collect();
        recs.sort();
        recs.dedup();
        Ok(recs)
    }

    async fn status(aws: &Aws, arn: &str) -> Result<Option<String>, AwsError> {
        match aws.acm().describe_certificate().certificate_arn(arn).send().await {
            Ok(o) => Ok(o.certificate().and_then(|c| c.status()).map(|s| s.as_str().to_string())),
            Err(e) => {
                let e = aws_err("acm:DescribeCertificate", e);
                if e.is_not_found() { Ok(None) } else { Err(e) }
            }
        }
    }

    async fn validate(&self, aws: &Aws, arn: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let zone = zone_id(aws, &self.zone).await?;
        // The validation records appear shortly after the request.
        let recs =
            until("certificate validation records", Duration::from_secs(120).min(cx.remaining()), cx.cancel, Duration::from_millis(500), Duration::from_secs(5), || async move {
                let r = Self::validation_records(aws, arn).await?;
                Ok(if r.is_empty() { Poll::Pending("waiting for ACM to publish validation records".into()) } else { Poll::Done(r) })
            })
            .await
            .map_err(|e| wait_err("certificate validation records", e))?;
        let changes: Vec<r53::Change> = recs
            .iter()
            .map(|(name, value)| {
                r53::Change::builder()
                    .action(r53::ChangeAction::Upsert)
                    .resource_record_set(
                        r53::ResourceRecordSet::builder()
                            .name(name)
                            .r#type(r53::RrType::Cname)
                            .ttl(300)
                            .resource_records(r53::ResourceRecord::builder().value(value).build().expect("value set"))
                            .build()
                            .expect("name and type set"),
                    )
                    .build()
                    .expect("action and record set")
            })
            .collect();
        aws.route53()
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(r53::ChangeBatch::builder().set_changes(Some(changes)).comment("ACM validation for cxflow").build().expect("changes set"))
            .send()
            .await
            .map_err(|e| aws_err("route53:ChangeResourceRecordSets", e))?;
        let timeout = self.validation_timeout.min(cx.remaining());
        until(&format!("certificate for {} to be issued", self.domain), timeout, cx.cancel, Duration::from_secs(2), Duration::from_secs(20), || async move {
            match Self::status(aws, arn).await? {
                Some(s) if s == "ISSUED" => Ok(Poll::Done(())),
                Some(s) if s == "FAILED" || s == "VALIDATION_TIMED_OUT" || s == "REVOKED" => Err(NodeError::other(format!("certificate validation ended with status {s}"))),
                s => Ok(Poll::Pending(s.unwrap_or_else(|| "unknown".into()))),
            }
        })
        .await
        .map_err(|e| wait_err("certificate validation", e))
    }
}

#[async_trait]
impl Node<Aws> for CertificateNode {
    fn key(&self) -> &str {
        "certificate"
    }
    fn describe(&self) -> String {
        format!("ACM certificate for {} and *.{}", self.domain, self.domain)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"names": self.names(), "zone": self.zone})
    }
    fn update_replaces(&self) -> bool {
        true
    }
    async fn adopt(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.acm().list_certificates().send().await.map_err(|e| aws_err("acm:ListCertificates", e))?;
        for s in out.certificate_summary_list() {
            if s.domain_name() != Some(self.domain.as_str()) {
                continue;
            }
            let arn = s.certificate_arn().unwrap_or_default();
            let tags = aws.acm().list_tags_for_certificate().certificate_arn(arn).send().await.map_err(|e| aws_err("acm:ListTagsForCertificate", e))?;
            let owned = tags.tags().iter().any(|t| t.key() == crate::engine::OWNER_TAG && t.value() == Some(self.c.owner.tag_value()));
            if owned {
                return Ok(Found::Owned(arn.to_string()));
            }
        }
        // A certificate someone else requested for the same name is no conflict: ACM allows several.
        Ok(Found::None)
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let tags: Vec<aws_sdk_acm::types::Tag> =
            self.c.tags_for("certificate", None).iter().map(|(k, v)| aws_sdk_acm::types::Tag::builder().key(k).value(v).build().expect("key set")).collect();
        let out = aws
            .acm()
            .request_certificate()
            .domain_name(&self.domain)
            .subject_alternative_names(format!("*.{}", self.domain))
            .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_err("acm:RequestCertificate", e))?;
        let arn = out.certificate_arn().unwrap_or_default().to_string();
        tracing::info!(target: "cxflow::children", certificate = arn.as_str(), "requested certificate; validating through DNS");
        self.validate(aws, &arn, cx).await.map_err(|e| e.with_id(&arn))?;
        Ok(Made::id(arn))
    }
    async fn read(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<Observed, NodeError> {
        Ok(match Self::status(aws, id).await? {
            None => Observed::Gone,
            Some(s) if s == "ISSUED" => Observed::InSync,
            Some(s) => Observed::Drifted(format!("status {s}")),
        })
    }
    async fn update(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        match Self::status(aws, id).await? {
            Some(s) if s == "ISSUED" => {
                let out = aws.acm().describe_certificate().certificate_arn(id).send().await.map_err(|e| aws_err("acm:DescribeCertificate", e))?;
                let mut have: Vec<String> = out.certificate().map(|c| c.subject_alternative_names().to_vec()).unwrap_or_default();
                have.sort();
                let mut want = self.names();
                want.sort();
                if have == want { Ok(Made::id(id)) } else { self.create(aws, cx).await }
            }
            Some(s) if s == "PENDING_VALIDATION" => {
                self.validate(aws, id, cx).await?;
                Ok(Made::id(id))
            }
            _ => self.create(aws, cx).await,
        }
    }
    async fn delete(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        // ACM refuses while a listener still uses the certificate: retry briefly.
        until(&format!("certificate {id} deletion"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || async move {
            match aws.acm().delete_certificate().certificate_arn(id).send().await {
                Ok(_) => Ok(Poll::Done(())),
                Err(e) => {
                    let e = aws_err("acm:DeleteCertificate", e);
                    if e.is_not_found() {
                        Ok(Poll::Done(()))
                    } else if e.is_code(&["ResourceInUseException"]) {
                        Ok(Poll::Pending("still in use by a listener".into()))
                    } else {
                        Err(NodeError::from(e))
                    }
                }
            }
        })
        .await
        .map_err(|e| wait_err("certificate deletion", e))
    }
}

// ------------------------------------------------------------------ Route53 alias record

/// `A` alias `<fqdn>` → the load balancer. Identity: `<zone id>|<fqdn>`.
pub struct AliasRecordNode {
    pub c: Arc<Common>,
    pub key: String,
    pub zone: String,
    pub fqdn: String,
}

impl AliasRecordNode {
    fn dotted(&self) -> String {
        format!("{}.", self.fqdn.trim_end_matches('.'))
    }
    async fn current(&self, aws: &Aws, zone: &str) -> Result<Option<r53::ResourceRecordSet>, NodeError> {
        let out = aws
            .route53()
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(self.dotted())
            .start_record_type(r53::RrType::A)
            .max_items(1)
            .send()
            .await
            .map_err(|e| aws_err("route53:ListResourceRecordSets", e))?;
        Ok(out.resource_record_sets().iter().find(|r| r.name() == self.dotted() && *r.r#type() == r53::RrType::A).cloned())
    }
    async fn target(aws: &Aws, lb_arn: &str) -> Result<(String, String), NodeError> {
        let o = aws.elbv2().describe_load_balancers().load_balancer_arns(lb_arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeLoadBalancers", e))?;
        let lb = o.load_balancers().first().ok_or_else(|| NodeError::other("load balancer vanished"))?;
        Ok((lb.dns_name().unwrap_or_default().to_string(), lb.canonical_hosted_zone_id().unwrap_or_default().to_string()))
    }
    fn record(&self, dns: &str, lb_zone: &str) -> r53::ResourceRecordSet {
        r53::ResourceRecordSet::builder()
            .name(self.dotted())
            .r#type(r53::RrType::A)
            .alias_target(r53::AliasTarget::builder().dns_name(dns).hosted_zone_id(lb_zone).evaluate_target_health(true).build().expect("alias fields set"))
            .build()
            .expect("name and type set")
    }
    async fn change(aws: &Aws, zone: &str, action: r53::ChangeAction, rec: r53::ResourceRecordSet) -> Result<(), NodeError> {
        aws.route53()
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(r53::ChangeBatch::builder().changes(r53::Change::builder().action(action).resource_record_set(rec).build().expect("set")).build().expect("set"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_err("route53:ChangeResourceRecordSets", e).into())
    }
    fn points_at(rec: &r53::ResourceRecordSet, dns: &str) -> bool {
        rec.alias_target().is_some_and(|a| a.dns_name().trim_end_matches('.').eq_ignore_ascii_case(dns.trim_end_matches('.')))
    }
}

#[async_trait]
impl Node<Aws> for AliasRecordNode {
    fn key(&self) -> &str {
        &self.key
    }
    fn deps(&self) -> Vec<&str> {
        vec!["load_balancer"]
    }
    fn describe(&self) -> String {
        format!("Route53 alias {}", self.fqdn)
    }
    fn spec(&self) -> serde_json::Value {
        json!({"fqdn": self.fqdn, "zone": self.zone})
    }
    async fn adopt(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let zone = zone_id(aws, &self.zone).await?;
        let Some(rec) = self.current(aws, &zone).await? else { return Ok(Found::None) };
        let (dns, _) = Self::target(aws, cx.dep("load_balancer")?).await?;
        Ok(if Self::points_at(&rec, &dns) {
            Found::Owned(format!("{zone}|{}", self.fqdn))
        } else {
            Found::Foreign(format!("an A record for {} already exists and points elsewhere", self.fqdn))
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let zone = zone_id(aws, &self.zone).await?;
        let (dns, lb_zone) = Self::target(aws, cx.dep("load_balancer")?).await?;
        Self::change(aws, &zone, r53::ChangeAction::Upsert, self.record(&dns, &lb_zone)).await?;
        Ok(Made::id(format!("{zone}|{}", self.fqdn)))
    }
    async fn read(&self, aws: &Aws, id: &str, cx: &Cx<'_>) -> Result<Observed, NodeError> {
        let zone = id.split('|').next().unwrap_or_default();
        let Some(rec) = self.current(aws, zone).await? else { return Ok(Observed::Gone) };
        let Ok(lb) = cx.dep("load_balancer") else { return Ok(Observed::Drifted("load balancer missing".into())) };
        let (dns, _) = Self::target(aws, lb).await?;
        Ok(if Self::points_at(&rec, &dns) { Observed::InSync } else { Observed::Drifted("points elsewhere".into()) })
    }
    async fn update(&self, aws: &Aws, _id: &str, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.create(aws, cx).await
    }
    async fn delete(&self, aws: &Aws, id: &str, _cx: &Cx<'_>) -> Result<(), NodeError> {
        let zone = id.split('|').next().unwrap_or_default().to_string();
        match self.current(aws, &zone).await {
            Ok(Some(rec)) => Self::change(aws, &zone, r53::ChangeAction::Delete, rec).await,
            Ok(None) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}
