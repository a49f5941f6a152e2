"""Helpers for scripts/demo.sh, run with the bootstrap venv's Python (boto3
comes with moto): `seed` creates the hosted zone a user would already have,
`summary` prints what the demo's apply created, read back from the AWS API,
`push TAG` does what the container pipeline does to ECR: puts an image
manifest (a fresh one each time) under TAG in the cxflow repository."""

import json
import os
import sys
import uuid

import boto3


def client(service):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))


def seed():
    r53 = client("route53")
    if not any(z["Name"] == "example.com." for z in r53.list_hosted_zones()["HostedZones"]):
        r53.create_hosted_zone(Name="example.com", CallerReference="cxflow-demo")
    print("hosted zone example.com ready")


def push():
    tag = sys.argv[2]
    layer = "sha256:" + uuid.uuid4().hex * 2
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7023, "digest": "sha256:" + "c" * 64},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 32654, "digest": layer}],
    }
    out = client("ecr").put_image(repositoryName="cxflow", imageManifest=json.dumps(manifest), imageTag=tag)
    print(f"pushed cxflow:{tag} as {out['image']['imageId']['imageDigest']}")


def summary():
    ecs = client("ecs")
    rows = []
    for arn in ecs.list_clusters()["clusterArns"]:
        c = ecs.describe_clusters(clusters=[arn], include=["SETTINGS"])["clusters"][0]
        insights = {s["name"]: s["value"] for s in c.get("settings", [])}.get("containerInsights", "?")
        rows.append(("ECS cluster", c["clusterName"], f"status {c['status']}, container insights {insights}"))
        svcs = ecs.list_services(cluster=arn)["serviceArns"]
        for s in ecs.describe_services(cluster=arn, services=svcs)["services"] if svcs else []:
            td = s["taskDefinition"].rsplit("/", 1)[-1]
            rows.append(("  service", s["serviceName"], f"{s['status']}, running {s['runningCount']}/{s['desiredCount']}, task definition {td}"))
    elb = client("elbv2")
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        rows.append(("load balancer", lb["LoadBalancerName"], lb["DNSName"]))
        for li in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            rules = elb.describe_rules(ListenerArn=li["ListenerArn"])["Rules"]
            hosts = [v for r in rules for c in r.get("Conditions", []) if c.get("Field") == "host-header" for v in c.get("Values", []) or c.get("HostHeaderConfig", {}).get("Values", [])]
            rows.append(("  listener", f"{li['Protocol']}:{li['Port']}", f"{li.get('SslPolicy', '')} rules for {', '.join(sorted(hosts)) or 'none'}"))
    acm = client("acm")
    for cert in acm.list_certificates()["CertificateSummaryList"]:
        d = acm.describe_certificate(CertificateArn=cert["CertificateArn"])["Certificate"]
        rows.append(("certificate", d["DomainName"], f"{d['Status']}, names {', '.join(d.get('SubjectAlternativeNames', []))}"))
    r53 = client("route53")
    for z in r53.list_hosted_zones()["HostedZones"]:
        recs = r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]
        alias = [r["Name"] for r in recs if r.get("AliasTarget")]
        rows.append(("hosted zone", z["Name"], f"{len(recs)} records; aliases {', '.join(alias) or 'none'}"))
    ecr = client("ecr")
    for repo in ecr.describe_repositories()["repositories"]:
        scan = repo.get("imageScanningConfiguration", {}).get("scanOnPush")
        rows.append(("ECR repository", repo["repositoryName"], f"{repo['repositoryUri']}, tags {repo.get('imageTagMutability')}, scan on push {scan}"))
    ssm = client("ssm")
    params = [p for page in ssm.get_paginator("get_parameters_by_path").paginate(Path="/", Recursive=True) for p in page["Parameters"]]
    by_prefix = {}
    for p in params:
        prefix = "/".join(p["Name"].split("/")[:3])
        by_prefix.setdefault(prefix, []).append(p["Type"])
    for prefix, types in sorted(by_prefix.items()):
        rows.append(("SSM parameters", prefix, f"{types.count('SecureString')} SecureString, {types.count('String')} String"))
    ec2 = client("ec2")
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "tag-key", "Values": ["cxflow:owner"]}])["Vpcs"]:
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]
        nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["NatGateways"]
        rows.append(("VPC", vpc["VpcId"], f"{vpc['CidrBlock']}, {len(subnets)} subnets, {len(nats)} NAT gateways"))
    iam = client("iam")
    for role in iam.list_roles()["Roles"]:
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
        if "cxflow:owner" in tags:
            rows.append(("IAM role", role["RoleName"], f"owned by {tags['cxflow:owner']}"))
    width = max(len(r[1]) for r in rows) if rows else 10
    for kind, name, detail in rows:
        print(f"{kind:<16} {name:<{width}}  {detail}")
    if not rows:
        sys.exit("nothing found: the apply created nothing?")


if __name__ == "__main__":
    {"seed": seed, "summary": summary, "push": push}[sys.argv[1]]()
