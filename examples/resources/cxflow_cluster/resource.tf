resource "cxflow_cluster" "this" {
  name     = "cxflow"
  dns_zone = "example.com" # an existing public hosted zone
  domain   = "cxflow.example.com"

  environments = {
    # Served at the domain itself; runs the digest `stable` resolves to at plan time.
    production = { image_tag = "stable", hostname = "cxflow.example.com" }
    # The seed's flow: CI re-pushes `latest`, the next apply rolls staging to the new digest.
    staging = { image_tag = "latest", desired_count = 1, cpu = 512, memory = 2048 }
  }

  vpc {
    cidr_block   = "10.0.0.0/16"
    nat_gateways = "single"
  }

  # GitLab.com's webhook source ranges: the load balancer accepts HTTPS from these only.
  webhook_source_cidrs = ["34.74.90.64/28", "34.74.226.0/24"]

  # The container repository's pipeline assumes this role with its GitLab ID token
  # to push the image and write the SSM parameters (policy: ci_policy_json).
  ci_role {
    oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/gitlab.com"
    subjects          = ["project_path:example-group/cxflow-container:ref_type:branch:ref:main"]
  }

  tags = { Team = "appsec" }
}

# Each environment reads its secrets from /<name>/<environment>/<key> for the
# keys in secret_keys; write them with cxflow_secret_sync (required_keys checks them).
output "secret_keys" {
  value = cxflow_cluster.this.secret_keys
}

output "gitlab_webhooks" {
  value = cxflow_cluster.this.gitlab_webhooks
}
