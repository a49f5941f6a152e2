# Module composition: the CxFlow module from examples/cxflow-cluster, called
# once per deployment with for_each (here an internal and a partner-facing
# CxFlow in one account; a module per account works the same way with one
# aliased provider per account).

terraform {
  required_version = ">= 1.11"

  required_providers {
    cxflow = {
      source = "cxflow/cxflow"
    }
  }
}

provider "cxflow" {
  region = "us-east-1"
}

variable "deployments" {
  type = map(object({
    domain       = string
    vpc_cidr     = string
    environments = map(object({ image_tag = string }))
  }))
  default = {
    internal = {
      domain       = "cxflow.example.com"
      vpc_cidr     = "10.10.0.0/16"
      environments = { production = { image_tag = "stable" } }
    }
    partners = {
      domain       = "partners-cxflow.example.com"
      vpc_cidr     = "10.20.0.0/16"
      environments = { production = { image_tag = "stable" } }
    }
  }
}

variable "cxflow_secrets" {
  description = "Per deployment, per environment secrets."
  type = map(map(object({
    checkmarx_username   = string
    checkmarx_password   = string
    checkmarx_token      = string
    gitlab_token         = string
    gitlab_webhook_token = string
  })))
  ephemeral = true
  sensitive = true
}

module "cxflow" {
  source   = "../cxflow-cluster/modules/cxflow"
  for_each = var.deployments

  name                 = "cxflow-${each.key}"
  dns_zone             = "example.com"
  domain               = each.value.domain
  environments         = each.value.environments
  vpc_cidr             = each.value.vpc_cidr
  webhook_source_cidrs = ["34.74.90.64/28", "34.74.226.0/24"]
  checkmarx_url        = "https://checkmarx.example.com"
  secrets              = var.cxflow_secrets[each.key]
}

output "webhook_urls" {
  value = { for k, m in module.cxflow : k => m.webhook_urls }
}
