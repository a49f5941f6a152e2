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

  # The role the container repository's pipeline assumes with its OIDC token
  # to push the image and write the parameters (the seed's AKeyless producer).
  dynamic "ci_role" {
    for_each = var.ci_oidc_provider_arn == null ? [] : [1]
    content {
      oidc_provider_arn = var.ci_oidc_provider_arn
      subjects          = var.ci_subjects
    }
  }
}

# Secrets go from ephemeral input straight to SSM SecureStrings under the
# keys the cluster's services read (its secret_keys output, checked at plan
# time); a change forces a new deployment of that environment's service.
resource "cxflow_secret_sync" "environment" {
  for_each = var.environments

  path_prefix   = cxflow_cluster.this.ssm_path_prefixes[each.key]
  required_keys = cxflow_cluster.this.secret_keys[each.key]
  secrets_wo = {
    "checkmarx/username"   = var.secrets[each.key].checkmarx_username
    "checkmarx/password"   = var.secrets[each.key].checkmarx_password
    "checkmarx/token"      = var.secrets[each.key].checkmarx_token
    "gitlab/token"         = var.secrets[each.key].gitlab_token
    "gitlab/webhook_token" = var.secrets[each.key].gitlab_webhook_token
  }
  parameters = {
    "checkmarx/url" = var.checkmarx_url
  }
  redeploy_services = [cxflow_cluster.this.service_arns[each.key]]
}
