# Secrets come from ephemeral, sensitive variables (or any ephemeral resource,
# such as a vault provider's) and go only to SSM: never to plan or state.
variable "checkmarx_password" {
  type      = string
  ephemeral = true
  sensitive = true
}

variable "gitlab_token" {
  type      = string
  ephemeral = true
  sensitive = true
}

resource "cxflow_secret_sync" "production" {
  path_prefix = "/cxflow/production"
  kms_key_id  = "alias/aws/ssm"

  secrets_wo = {
    "checkmarx/password" = var.checkmarx_password
    "gitlab/token"       = var.gitlab_token
  }

  parameters = {
    "checkmarx/url" = "https://checkmarx.example.com"
  }

  # A new deployment whenever a value changes, so the tasks read it.
  redeploy_services = ["arn:aws:ecs:eu-west-2:123456789012:service/cxflow/cxflow-production"]
}
