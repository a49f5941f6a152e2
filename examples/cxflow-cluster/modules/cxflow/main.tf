# The CxFlow deployment as a reusable module: one cxflow_cluster and, per
# environment, the SSM parameters its service reads. It has no provider block,
# so callers may use it with for_each (see examples/cxflow-cluster-multi).

terraform {
  required_providers {
    cxflow = {
      source = "cxflow/cxflow"
    }
  }
}

resource "cxflow_cluster" "this" {
  name                 = var.name
  dns_zone             = var.dns_zone
  domain               = var.domain
  environments         = var.environments
  webhook_source_cidrs = var.webhook_source_cidrs

  vpc {
    cidr_block = var.vpc_cidr
  }
}

# Secrets go from ephemeral input straight to SSM SecureStrings; a change
# forces a new deployment of that environment's service.
resource "cxflow_secret_sync" "environment" {
  for_each = var.environments

  path_prefix = cxflow_cluster.this.ssm_path_prefixes[each.key]
  secrets_wo = {
    "checkmarx/username"   = var.secrets[each.key].checkmarx_username
    "checkmarx/password"   = var.secrets[each.key].checkmarx_password
    "checkmarx/token"      = var.secrets[each.key].checkmarx_token
    "gitlab/token"         = var.secrets[each.key].gitlab_token
    "gitlab/webhook-token" = var.secrets[each.key].gitlab_webhook_token
  }
  parameters = {
    "checkmarx/url" = var.checkmarx_url
  }
  redeploy_services = [cxflow_cluster.this.service_arns[each.key]]
}
