//! The edge: application load balancer, its HTTPS listener, the ACM
//! certificate, the DNS records that validate it, and Route53 alias records.
//! Route53 records cannot carry tags: they are owned through the record and
//! their names, and deleted by exactly that name, type and value.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_sdk_route53::types as r53;
use serde_json::json;

use super::lb::{delete_listener, elb_release, elb_retag, elb_tags, elb_tags_of};
use super::{Common, Ref, ref_specs, spec_tags, tags_json, user_visible, wait_err};
use crate::aws::wait::{Poll, until};
use crate::aws::{Aws, AwsError, aws_err};
use crate::engine::{Cx, Found, Identity, Made, Node, NodeError, Spec, Tags, spec};

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

fn dotted(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// The record set `name`/`ty` in a zone, if any.
async fn record_set(aws: &Aws, zone: &str, name: &str, ty: r53::RrType) -> Result<Option<r53::ResourceRecordSet>, NodeError> {
    let out = match aws.route53().list_resource_record_sets().hosted_zone_id(zone).start_record_name(dotted(name)).start_record_type(ty.clone()).max_items(1).send().await {
        Ok(o) => o,
        Err(e) => {
            let e = aws_err("route53:ListResourceRecordSets", e);
            return if e.is_not_found() { Ok(None) } else { Err(e.into()) };
        }
    };
    Ok(out.resource_record_sets().iter().find(|r| r.name().eq_ignore_ascii_case(&dotted(name)) && *r.r#type() == ty).cloned())
}

async fn change(aws: &Aws, zone: &str, changes: Vec<(r53::ChangeAction, r53::ResourceRecordSet)>) -> Result<(), NodeError> {
    let changes: Vec<r53::Change> = changes.into_iter().map(|(a, r)| r53::Change::builder().action(a).resource_record_set(r).build().expect("action and record set")).collect();
    aws.route53()
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(r53::ChangeBatch::builder().set_changes(Some(changes)).build().expect("changes set"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_err("route53:ChangeResourceRecordSets", e).into())
}

/// Delete a record set as it is now (Route53 wants the exact record); gone counts as done.
async fn delete_record(aws: &Aws, zone: &str, name: &str, ty: r53::RrType) -> Result<(), NodeError> {
    match record_set(aws, zone, name, ty).await {
        Ok(Some(rec)) => match change(aws, zone, vec![(r53::ChangeAction::Delete, rec)]).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() || matches!(&e.kind, crate::engine::NodeErrorKind::Aws(a) if a.is_code(&["InvalidChangeBatch"])) => Ok(()),
            Err(e) => Err(e),
        },
        Ok(None) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
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
    async fn get(aws: &Aws, arn: &str) -> Result<Option<elb::LoadBalancer>, AwsError> {
        aws.read_load_balancer(arn).await
    }
    fn tags(&self) -> Tags {
        self.c.tags_for("load_balancer", None)
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
    fn spec(&self) -> Spec {
        spec(json!({"name": self.name, "subnets": ref_specs(&self.subnets), "security_groups": [self.security_group.spec()], "tags": tags_json(&self.tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let lb = match aws.elbv2().describe_load_balancers().names(&self.name).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeLoadBalancers", e)) {
            Ok(o) => o.load_balancers().first().cloned(),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let Some(arn) = lb.and_then(|l| l.load_balancer_arn().map(str::to_string)) else { return Ok(Found::None) };
        let tags = elb_tags_of(aws, &arn).await?;
        Ok(Found::Tagged(Identity::new(arn), tags))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let subnets = self.subnets.iter().map(|r| r.resolve(cx)).collect::<Result<Vec<_>, _>>()?;
        let out = aws
            .elbv2()
            .create_load_balancer()
            .name(&self.name)
            .r#type(elb::LoadBalancerTypeEnum::Application)
            .scheme(elb::LoadBalancerSchemeEnum::InternetFacing)
            .set_subnets(Some(subnets))
            .security_groups(self.security_group.resolve(cx)?)
            .set_tags(Some(elb_tags(&self.c.create_tags("load_balancer", None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateLoadBalancer", e))?;
        let lb = out.load_balancers().first().cloned().ok_or_else(|| NodeError::no_identity("elasticloadbalancing:CreateLoadBalancer"))?;
        let arn = lb.load_balancer_arn().filter(|a| !a.is_empty()).ok_or_else(|| NodeError::no_identity("elasticloadbalancing:CreateLoadBalancer"))?.to_string();
        super::lb::elb_created_by_this_apply(aws, &arn, "elasticloadbalancing:CreateLoadBalancer", cx).await?;
        until(&format!("load balancer {} to become active", self.name), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(15), || async {
            let l = Self::get(aws, &arn).await.map_err(NodeError::from)?;
            match l.as_ref().and_then(|l| l.state()).and_then(|s| s.code()).map(|c| c.as_str().to_string()) {
                Some(c) if c == "active" => Ok(Poll::Done(())),
                Some(c) if c == "failed" => Err(NodeError::other("load balancer provisioning failed")),
                c => Ok(Poll::Pending(c.unwrap_or_else(|| "provisioning".into()))),
            }
        })
        .await
        .map_err(|e| wait_err("load balancer", e).with_id(&arn))?;
        Ok(Made::id(&arn).with("dns_name", lb.dns_name().unwrap_or_default()).with("zone_id", lb.canonical_hosted_zone_id().unwrap_or_default()))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(lb) = Self::get(aws, &id.id).await? else { return Ok(None) };
        let subnets: Vec<String> = lb.availability_zones().iter().filter_map(|z| z.subnet_id().map(str::to_string)).collect();
        let sgs: Vec<String> = lb.security_groups().iter().map(|g| self.security_group.observed(g, cx)).collect();
        Ok(Some(spec(json!({
            "name": lb.load_balancer_name(), "subnets": super::observed_refs(&subnets, &self.subnets, cx), "security_groups": sgs,
            "dns_name": lb.dns_name(), "zone_id": lb.canonical_hosted_zone_id(),
        }))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let s = self.spec();
        if base.get("security_groups") != s.get("security_groups") {
            aws.elbv2()
                .set_security_groups()
                .load_balancer_arn(&id.id)
                .security_groups(self.security_group.resolve(cx)?)
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:SetSecurityGroups", e))?;
        }
        if base.get("subnets") != s.get("subnets") {
            let subnets = self.subnets.iter().map(|r| r.resolve(cx)).collect::<Result<Vec<_>, _>>()?;
            aws.elbv2().set_subnets().load_balancer_arn(&id.id).set_subnets(Some(subnets)).send().await.map_err(|e| aws_err("elasticloadbalancing:SetSubnets", e))?;
        }
        elb_retag(aws, &id.id, spec_tags(base), &self.tags()).await?;
        let mut m = Made::identity(id.clone());
        for f in ["dns_name", "zone_id"] {
            if let Some(v) = super::spec_str(base, f) {
                m = m.with(f, v);
            }
        }
        Ok(m)
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let arn = id.id.as_str();
        match aws.elbv2().delete_load_balancer().load_balancer_arn(arn).send().await.map_err(|e| aws_err("elasticloadbalancing:DeleteLoadBalancer", e)) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        until(&format!("load balancer {} to be deleted", self.name), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || async move {
            Ok(match Self::get(aws, arn).await.map_err(NodeError::from)? {
                None => Poll::Done(()),
                Some(_) => Poll::Pending("deleting".into()),
            })
        })
        .await
        .map_err(|e| wait_err("load balancer deletion", e))
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        elb_release(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ HTTPS listener

pub const MISSING_ENVIRONMENT: &str = "Missing environment in path";

/// HTTPS listener on 443 whose default action is a fixed 404.
pub struct HttpsListenerNode {
    pub c: Arc<Common>,
    pub certificate: Ref,
    pub tls_policy: String,
    /// Children that must exist first although not referenced (the certificate's validation).
    pub after: Vec<String>,
}

impl HttpsListenerNode {
    fn default_action() -> elb::Action {
        elb::Action::builder()
            .r#type(elb::ActionTypeEnum::FixedResponse)
            .fixed_response_config(elb::FixedResponseActionConfig::builder().status_code("404").content_type("text/plain").message_body(MISSING_ENVIRONMENT).build())
            .build()
    }
    fn tags(&self) -> Tags {
        self.c.tags_for("https_listener", None)
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
        d.extend(self.after.iter().map(String::as_str));
        d
    }
    fn describe(&self) -> String {
        "HTTPS listener (443)".to_string()
    }
    fn spec(&self) -> Spec {
        spec(json!({"port": 443, "certificate": self.certificate.spec(), "ssl_policy": self.tls_policy, "tags": tags_json(&self.tags())}))
    }
    fn find_deps(&self) -> Vec<&str> {
        vec!["load_balancer"]
    }
    async fn find(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let lb = cx.dep("load_balancer")?;
        let out = aws.elbv2().describe_listeners().load_balancer_arn(lb).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeListeners", e))?;
        // The load balancer is ours (an owned dependency), so its 443 listener is too.
        Ok(out.listeners().iter().find(|l| l.port() == Some(443)).and_then(|l| l.listener_arn()).map(|a| Found::Derived(Identity::new(a))).unwrap_or(Found::None))
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .elbv2()
            .create_listener()
            .load_balancer_arn(cx.dep("load_balancer")?)
            .protocol(elb::ProtocolEnum::Https)
            .port(443)
            .ssl_policy(&self.tls_policy)
            .certificates(elb::Certificate::builder().certificate_arn(self.certificate.resolve(cx)?).build())
            .default_actions(Self::default_action())
            .set_tags(Some(elb_tags(&self.c.create_tags("https_listener", None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("elasticloadbalancing:CreateListener", e))?;
        Ok(Made::id(out.listeners().first().and_then(|l| l.listener_arn()).ok_or_else(|| NodeError::no_identity("elasticloadbalancing:CreateListener"))?))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let out = match aws.elbv2().describe_listeners().listener_arns(&id.id).send().await.map_err(|e| aws_err("elasticloadbalancing:DescribeListeners", e)) {
            Ok(o) => o,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(out.listeners().first().map(|l| {
            let cert = l.certificates().first().and_then(|c| c.certificate_arn()).map(|c| self.certificate.observed(c, cx));
            spec(json!({"port": l.port(), "certificate": cert, "ssl_policy": l.ssl_policy()}))
        }))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let s = self.spec();
        if base.get("certificate") != s.get("certificate") || base.get("ssl_policy") != s.get("ssl_policy") || base.get("port") != s.get("port") {
            aws.elbv2()
                .modify_listener()
                .listener_arn(&id.id)
                .protocol(elb::ProtocolEnum::Https)
                .port(443)
                .ssl_policy(&self.tls_policy)
                .certificates(elb::Certificate::builder().certificate_arn(self.certificate.resolve(cx)?).build())
                .default_actions(Self::default_action())
                .send()
                .await
                .map_err(|e| aws_err("elasticloadbalancing:ModifyListener", e))?;
        }
        elb_retag(aws, &id.id, spec_tags(base), &self.tags()).await?;
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        delete_listener(aws, &id.id).await
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        elb_release(aws, &id.id, cx).await
    }
}

// ------------------------------------------------------------------ ACM certificate

fn acm_tags(t: &Tags) -> Vec<aws_sdk_acm::types::Tag> {
    t.iter().filter_map(|(k, v)| aws_sdk_acm::types::Tag::builder().key(k).value(v).build().ok()).collect()
}

async fn acm_tags_of(aws: &Aws, arn: &str) -> Result<Tags, NodeError> {
    let out = aws.acm().list_tags_for_certificate().certificate_arn(arn).send().await.map_err(|e| aws_err("acm:ListTagsForCertificate", e))?;
    Ok(user_visible(out.tags().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string()))))
}

async fn describe_cert(aws: &Aws, arn: &str) -> Result<Option<aws_sdk_acm::types::CertificateDetail>, NodeError> {
    match aws.acm().describe_certificate().certificate_arn(arn).send().await.map_err(|e| aws_err("acm:DescribeCertificate", e)) {
        Ok(o) => Ok(o.certificate().cloned()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A certificate requested for `domain` and the alternative `names`, validated
/// through DNS by [`CertificateValidationNode`].
pub struct CertificateNode {
    pub c: Arc<Common>,
    pub domain: String,
    /// Subject alternative names besides the domain (e.g. `*.domain`).
    pub names: Vec<String>,
}

impl CertificateNode {
    fn all_names(&self) -> Vec<String> {
        let mut v = vec![self.domain.clone()];
        v.extend(self.names.iter().cloned());
        v.sort();
        v.dedup();
        v
    }
    fn tags(&self) -> Tags {
        self.c.tags_for("certificate", None)
    }
}

#[async_trait]
impl Node<Aws> for CertificateNode {
    fn key(&self) -> &str {
        "certificate"
    }
    fn describe(&self) -> String {
        format!("ACM certificate for {}", self.all_names().join(", "))
    }
    fn spec(&self) -> Spec {
        spec(json!({"domain": self.domain, "names": self.all_names(), "tags": tags_json(&self.tags())}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["domain", "names"]
    }
    async fn find(&self, aws: &Aws, _cx: &Cx<'_>) -> Result<Found, NodeError> {
        let out = aws.acm().list_certificates().send().await.map_err(|e| aws_err("acm:ListCertificates", e))?;
        for s in out.certificate_summary_list().iter().filter(|s| s.domain_name() == Some(self.domain.as_str())) {
            let arn = s.certificate_arn().unwrap_or_default();
            let tags = acm_tags_of(aws, arn).await?;
            if tags.get(crate::engine::OWNER_TAG).map(String::as_str) == Some(self.c.owner.tag_value()) {
                return Ok(Found::Tagged(Identity::new(arn), tags));
            }
        }
        // Certificates others requested for the same name are no conflict: ACM allows several.
        Ok(Found::None)
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let out = aws
            .acm()
            .request_certificate()
            .domain_name(&self.domain)
            .set_subject_alternative_names(Some(self.all_names()))
            .validation_method(aws_sdk_acm::types::ValidationMethod::Dns)
            // A retried request whose first answer was lost gets the same certificate.
            .idempotency_token(crate::engine::names::short_hash(&format!("{}/certificate", cx.lease.token)))
            .set_tags(Some(acm_tags(&self.c.create_tags("certificate", None, cx))))
            .send()
            .await
            .map_err(|e| aws_err("acm:RequestCertificate", e))?;
        Ok(Made::id(out.certificate_arn().ok_or_else(|| NodeError::no_identity("acm:RequestCertificate"))?))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let Some(c) = describe_cert(aws, &id.id).await? else { return Ok(None) };
        let mut names = c.subject_alternative_names().to_vec();
        names.sort();
        let tags = acm_tags_of(aws, &id.id).await?;
        Ok(Some(spec(json!({"domain": c.domain_name(), "names": names, "tags": tags_json(&tags)}))))
    }
    async fn update(&self, aws: &Aws, id: &Identity, base: &Spec, _cx: &Cx<'_>) -> Result<Made, NodeError> {
        let current = match spec_tags(base) {
            Some(t) => t,
            None => acm_tags_of(aws, &id.id).await?,
        };
        let (add, remove) = super::tag_diff(&current, &self.tags());
        if !add.is_empty() {
            aws.acm().add_tags_to_certificate().certificate_arn(&id.id).set_tags(Some(acm_tags(&add))).send().await.map_err(|e| aws_err("acm:AddTagsToCertificate", e))?;
        }
        if !remove.is_empty() {
            let tags = remove.iter().filter_map(|k| aws_sdk_acm::types::Tag::builder().key(k).build().ok()).collect();
            aws.acm().remove_tags_from_certificate().certificate_arn(&id.id).set_tags(Some(tags)).send().await.map_err(|e| aws_err("acm:RemoveTagsFromCertificate", e))?;
        }
        Ok(Made::identity(id.clone()))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let arn = id.id.as_str();
        // ACM refuses while a listener still uses the certificate: retry briefly.
        until(&format!("certificate {arn} deletion"), cx.remaining(), cx.cancel, Duration::from_secs(2), Duration::from_secs(10), || async move {
            match aws.acm().delete_certificate().certificate_arn(arn).send().await.map_err(|e| aws_err("acm:DeleteCertificate", e)) {
                Ok(_) => Ok(Poll::Done(())),
                Err(e) if e.is_not_found() => Ok(Poll::Done(())),
                Err(e) if e.is_code(&["ResourceInUseException"]) => Ok(Poll::Pending("still in use by a listener".into())),
                Err(e) => Err(NodeError::from(e)),
            }
        })
        .await
        .map_err(|e| wait_err("certificate deletion", e))
    }
    async fn release(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<(), NodeError> {
        let (k, v) = cx.recorded_tag();
        aws.acm().add_tags_to_certificate().certificate_arn(&id.id).set_tags(Some(acm_tags(&[(k, v)].into()))).send().await.map_err(|e| aws_err("acm:AddTagsToCertificate", e))?;
        Ok(())
    }
}

// ------------------------------------------------------------------ certificate validation

/// The DNS records that validate the certificate, in the user's hosted zone,
/// and the wait until ACM has issued it. Identity: the first record's name,
/// with parts `zone` and `record_<n>` / `value_<n>` for every record made,
/// so destroy deletes exactly those.
pub struct CertificateValidationNode {
    pub c: Arc<Common>,
    pub zone: String,
    pub timeout: Duration,
}

impl CertificateValidationNode {
    /// (name, value) of the CNAMEs ACM asks for.
    async fn wanted_records(aws: &Aws, arn: &str, cx: &Cx<'_>) -> Result<Vec<(String, String)>, NodeError> {
        // The records appear shortly after the request.
        until("certificate validation records", Duration::from_secs(120).min(cx.remaining()), cx.cancel, Duration::from_millis(500), Duration::from_secs(5), || async move {
            let c = describe_cert(aws, arn).await?.ok_or_else(|| NodeError::other(format!("certificate {arn} vanished")))?;
            let mut recs: Vec<(String, String)> =
                c.domain_validation_options().iter().filter_map(|o| o.resource_record().map(|r| (r.name().to_string(), r.value().to_string()))).collect();
            recs.sort();
            recs.dedup();
            Ok(if recs.is_empty() { Poll::Pending("waiting for ACM to publish validation records".into()) } else { Poll::Done(recs) })
        })
        .await
        .map_err(|e| wait_err("certificate validation records", e))
    }
    fn identity(zone: &str, recs: &[(String, String)]) -> Identity {
        let mut id = Identity::new(recs.first().map(|r| r.0.clone()).unwrap_or_default()).with("zone", zone);
        for (i, (n, v)) in recs.iter().enumerate() {
            id = id.with(&format!("record_{i}"), n).with(&format!("value_{i}"), v);
        }
        id
    }
    fn recorded(id: &Identity) -> Vec<String> {
        (0..).map_while(|i| id.part(&format!("record_{i}")).map(str::to_string)).collect()
    }
    async fn issued(&self, aws: &Aws, arn: &str, cx: &Cx<'_>) -> Result<(), NodeError> {
        let timeout = self.timeout.min(cx.remaining());
        until("the certificate to be issued", timeout, cx.cancel, Duration::from_secs(2), Duration::from_secs(20), || async move {
            match describe_cert(aws, arn).await?.and_then(|c| c.status().map(|s| s.as_str().to_string())) {
                Some(s) if s == "ISSUED" => Ok(Poll::Done(())),
                Some(s) if s == "FAILED" || s == "VALIDATION_TIMED_OUT" || s == "REVOKED" => Err(NodeError::other(format!("certificate validation ended with status {s}"))),
                s => Ok(Poll::Pending(s.unwrap_or_else(|| "unknown".into()))),
            }
        })
        .await
        .map_err(|e| wait_err("certificate validation", e))
    }
    async fn upsert(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Identity, NodeError> {
        let zone = zone_id(aws, &self.zone).await?;
        let arn = cx.dep("certificate")?.to_string();
        let recs = Self::wanted_records(aws, &arn, cx).await?;
        let changes = recs
            .iter()
            .map(|(name, value)| {
                let rec = r53::ResourceRecordSet::builder()
                    .name(name)
                    .r#type(r53::RrType::Cname)
                    .ttl(300)
                    .resource_records(r53::ResourceRecord::builder().value(value).build().expect("value set"))
                    .build()
                    .expect("name and type set");
                (r53::ChangeAction::Upsert, rec)
            })
            .collect();
        change(aws, &zone, changes).await?;
        let id = Self::identity(&zone, &recs);
        self.issued(aws, &arn, cx).await.map_err(|e| e.with_identity(id.clone()))?;
        Ok(id)
    }
}

#[async_trait]
impl Node<Aws> for CertificateValidationNode {
    fn key(&self) -> &str {
        "certificate_validation"
    }
    fn deps(&self) -> Vec<&str> {
        vec!["certificate"]
    }
    fn describe(&self) -> String {
        format!("certificate validation records in {}", self.zone)
    }
    fn spec(&self) -> Spec {
        spec(json!({"certificate": "<certificate>", "zone": self.zone, "issued": true, "records_as_made": true}))
    }
    fn find_deps(&self) -> Vec<&str> {
        vec!["certificate"]
    }
    async fn find(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        // The records are named after the certificate, which is ours: if they exist, so are they.
        let arn = cx.dep("certificate")?;
        let Some(c) = describe_cert(aws, arn).await? else { return Ok(Found::None) };
        let mut recs: Vec<(String, String)> =
            c.domain_validation_options().iter().filter_map(|o| o.resource_record().map(|r| (r.name().to_string(), r.value().to_string()))).collect();
        recs.sort();
        recs.dedup();
        let zone = zone_id(aws, &self.zone).await?;
        match recs.first() {
            Some((name, _)) if record_set(aws, &zone, name, r53::RrType::Cname).await?.is_some() => Ok(Found::Derived(Self::identity(&zone, &recs))),
            _ => Ok(Found::None),
        }
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        Ok(Made::identity(self.upsert(aws, cx).await?))
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let zone = id.part("zone").unwrap_or_default();
        // Each record still holds the value it was made with (a changed one no longer validates).
        let mut as_made = true;
        for (i, name) in Self::recorded(id).iter().enumerate() {
            let Some(rec) = record_set(aws, zone, name, r53::RrType::Cname).await? else { return Ok(None) };
            let made = id.part(&format!("value_{i}")).unwrap_or_default();
            as_made &= rec.resource_records().iter().any(|r| r.value().trim_end_matches('.') == made.trim_end_matches('.'));
        }
        let Ok(arn) = cx.dep("certificate") else { return Ok(Some(spec(json!({"zone": self.zone, "records_as_made": as_made})))) };
        let status = describe_cert(aws, arn).await?.and_then(|c| c.status().map(|s| s.as_str().to_string()));
        Ok(Some(spec(json!({"certificate": "<certificate>", "zone": self.zone, "issued": status.as_deref() == Some("ISSUED"), "records_as_made": as_made}))))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, _base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        Ok(Made::identity(self.upsert(aws, cx).await?))
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        let zone = id.part("zone").unwrap_or_default().to_string();
        for name in Self::recorded(id) {
            delete_record(aws, &zone, &name, r53::RrType::Cname).await?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ Route53 alias record

/// `A` alias `<fqdn>` → the load balancer. Identity: the record's name, with
/// the hosted zone as part `zone`.
pub struct AliasRecordNode {
    pub c: Arc<Common>,
    pub key: String,
    pub zone: String,
    pub fqdn: String,
}

impl AliasRecordNode {
    fn record(&self, dns: &str, lb_zone: &str) -> r53::ResourceRecordSet {
        r53::ResourceRecordSet::builder()
            .name(dotted(&self.fqdn))
            .r#type(r53::RrType::A)
            .alias_target(r53::AliasTarget::builder().dns_name(dns).hosted_zone_id(lb_zone).evaluate_target_health(true).build().expect("alias fields set"))
            .build()
            .expect("name and type set")
    }
    /// The load balancer's DNS name and zone, if it exists.
    async fn target_of(aws: &Aws, lb_arn: &str) -> Result<Option<(String, String)>, NodeError> {
        let lb = LoadBalancerNode::get(aws, lb_arn).await?;
        Ok(lb.map(|lb| (lb.dns_name().unwrap_or_default().to_string(), lb.canonical_hosted_zone_id().unwrap_or_default().to_string())))
    }
    async fn target(aws: &Aws, lb_arn: &str) -> Result<(String, String), NodeError> {
        Self::target_of(aws, lb_arn).await?.ok_or_else(|| NodeError::other(format!("load balancer {lb_arn} does not exist")))
    }
    fn points_at(rec: &r53::ResourceRecordSet, dns: &str) -> bool {
        rec.alias_target().is_some_and(|a| a.dns_name().trim_end_matches('.').eq_ignore_ascii_case(dns.trim_end_matches('.')))
    }
    async fn upsert(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        let zone = zone_id(aws, &self.zone).await?;
        let (dns, lb_zone) = Self::target(aws, cx.dep("load_balancer")?).await?;
        change(aws, &zone, vec![(r53::ChangeAction::Upsert, self.record(&dns, &lb_zone))]).await?;
        Ok(Made::identity(Identity::new(dotted(&self.fqdn)).with("zone", zone)))
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
    fn spec(&self) -> Spec {
        spec(json!({"name": dotted(&self.fqdn), "target": "<load_balancer>"}))
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        &["name"]
    }
    fn find_deps(&self) -> Vec<&str> {
        vec!["load_balancer"]
    }
    /// `<zone id>|<fqdn>` from before identities had parts.
    fn legacy_identity(&self, recorded: &str) -> Vec<(String, Identity)> {
        match recorded.split_once('|') {
            Some((zone, fqdn)) => vec![(self.key.clone(), Identity::new(dotted(fqdn)).with("zone", zone))],
            None => Vec::new(),
        }
    }
    async fn find(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Found, NodeError> {
        let zone = zone_id(aws, &self.zone).await?;
        let Some(rec) = record_set(aws, &zone, &self.fqdn, r53::RrType::A).await? else { return Ok(Found::None) };
        let (dns, _) = Self::target(aws, cx.dep("load_balancer")?).await?;
        Ok(if Self::points_at(&rec, &dns) {
            Found::Derived(Identity::new(dotted(&self.fqdn)).with("zone", zone))
        } else {
            Found::Foreign(format!("an A record for {} already exists in {} and points elsewhere", self.fqdn, self.zone))
        })
    }
    async fn create(&self, aws: &Aws, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.upsert(aws, cx).await
    }
    async fn observe(&self, aws: &Aws, id: &Identity, cx: &Cx<'_>) -> Result<Option<Spec>, NodeError> {
        let zone = id.part("zone").unwrap_or_default();
        let Some(rec) = record_set(aws, zone, &id.id, r53::RrType::A).await? else { return Ok(None) };
        let literal = || rec.alias_target().map(|a| a.dns_name().to_string()).unwrap_or_default();
        // Without its load balancer (deleted outside Terraform) the record points at what it names.
        let target = match cx.dep("load_balancer") {
            Ok(lb) => match Self::target_of(aws, lb).await? {
                Some((dns, _)) if Self::points_at(&rec, &dns) => "<load_balancer>".to_string(),
                _ => literal(),
            },
            Err(_) => literal(),
        };
        Ok(Some(spec(json!({"name": rec.name(), "target": target}))))
    }
    async fn update(&self, aws: &Aws, _id: &Identity, _base: &Spec, cx: &Cx<'_>) -> Result<Made, NodeError> {
        self.upsert(aws, cx).await
    }
    async fn delete(&self, aws: &Aws, id: &Identity, _cx: &Cx<'_>) -> Result<(), NodeError> {
        delete_record(aws, id.part("zone").unwrap_or_default(), &id.id, r53::RrType::A).await
    }
}
