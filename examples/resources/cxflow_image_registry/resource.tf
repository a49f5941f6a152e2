# Seed 002's three CDK stacks (Development, Master, Release) as one resource.
# Stages named development, master and release get the seed's tables of who
# may authorize, read, write and read metadata; release also lets end users
# and another account pull.
resource "cxflow_image_registry" "sample" {
  name = "sample-image"

  github {
    repository = "example-org/sample-image"
    # oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
  }

  stages = {
    development = {}
    master      = {}
    release = {
      image_tag_mutability = "IMMUTABLE"
      # Another account (all its principals it allows) may pull releases.
      pull_principals = ["111122223333"]
    }
  }

  # Old tagged images go to the archive storage class, and leave it after a year.
  image_lifecycle {
    keep_tagged          = 30
    expire_untagged_days = 7
    archive_old_tagged   = true
    expire_archived_days = 365
  }

  # The seed's GitHubDeploymentRole: CDK deployments from master only.
  deployment_role {
    github_environment = "Deployment"
    policy_json = jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Sid      = "AssumeCdkRoles"
        Effect   = "Allow"
        Action   = "sts:AssumeRole"
        Resource = "arn:aws:iam::*:role/cdk-*"
      }]
    })
  }

  members {
    developers = ["alice"]
  }

  tags = {
    App = "sample-image"
  }
}

# What the seed asks you to paste into each GitHub environment's secrets.
output "github_environment_secrets" {
  value = {
    for stage, o in cxflow_image_registry.sample.stage_outputs : stage => {
      AWS_GITHUB_ROLE_ARN  = o.github_role_arn
      AWS_ECR_REGISTRY_ARN = o.repository_arn
    }
  }
}

output "deployment_secrets" {
  value = {
    AWS_DEPLOYMENT_ROLE_ARN = cxflow_image_registry.sample.deployment_role_arn
    AWS_GITHUB_PROVIDER_ARN = cxflow_image_registry.sample.oidc_provider_arn
  }
}
