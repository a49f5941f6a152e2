# CxFlow on ECS Fargate: the whole deployment, step by step.
#
# 1. Fill in terraform.tfvars (region, hosted zone, domain, tags, environments,
#    and the CI system's OIDC provider for the pusher role).
# 2. Export the secrets as ephemeral variables (they never reach state):
#      export TF_VAR_cxflow_secrets='{"production":{"checkmarx_username":"...",...}}'
# 3. terraform init && terraform apply
# 4. Enter each gitlab_webhooks entry in the GitLab project's webhook settings.
# 5. Update CxFlow the seed's way: the container pipeline re-pushes `latest`,
#    then `terraform apply` rolls the environments on `latest` to its new digest.

terraform {
  required_version = ">= 1.11"

  required_providers {
    cxflow = {
      source = "cxflow/cxflow"
    }
  }

  # Keep state in S3 with locking (recommended for teams):
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "cxflow/terraform.tfstate"
  #   region       = "us-east-1"
  #   use_lockfile = true
  # }
}

provider "cxflow" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}

module "cxflow" {
  source = "./modules/cxflow"

  name                 = var.name
  dns_zone             = var.dns_zone
  domain               = var.domain
  environments         = var.environments
  webhook_source_cidrs = var.webhook_source_cidrs
  vpc_cidr             = var.vpc_cidr
  checkmarx_url        = var.checkmarx_url
  secrets              = var.cxflow_secrets
  ci_oidc_provider_arn = var.ci_oidc_provider_arn
  ci_subjects          = var.ci_subjects
}
