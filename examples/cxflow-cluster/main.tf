# CxFlow on ECS Fargate: the whole deployment, step by step.
#
# 1. Fill in terraform.tfvars (region, hosted zone, domain, tags, environments).
# 2. Export the secrets as ephemeral variables (they never reach state):
#      export TF_VAR_cxflow_secrets='{"production":{"checkmarx_username":"...",...}}'
# 3. terraform init && terraform apply
# 4. Point each Git webhook at the webhook URL printed for its environment.
# 5. Update CxFlow by changing an environment's image_tag and applying again.

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
}
