variable "region" {
  description = "AWS region for the cluster."
  type        = string
}

variable "name" {
  description = "Name of the deployment; prefixes every AWS object and the SSM paths (/<name>/<environment>/...)."
  type        = string
  default     = "cxflow"
}

variable "dns_zone" {
  description = "An existing public Route53 hosted zone."
  type        = string
}

variable "domain" {
  description = "Domain for the cluster, inside dns_zone. Each environment is served at <environment>.<domain> unless its hostname says otherwise (one may serve the domain itself)."
  type        = string
}

variable "environments" {
  description = "One CxFlow service per environment. image_tag may be a moving tag such as latest: plan pins its digest."
  type = map(object({
    image_tag     = string
    desired_count = optional(number)
    cpu           = optional(number)
    memory        = optional(number)
    hostname      = optional(string)
  }))
}

variable "webhook_source_cidrs" {
  description = "CIDRs the Git host sends webhooks from; the load balancer accepts HTTPS only from these."
  type        = list(string)
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC the provider creates."
  type        = string
  default     = "10.0.0.0/16"
}

variable "checkmarx_url" {
  description = "Checkmarx server URL, stored as a plain SSM parameter per environment."
  type        = string
}

variable "tags" {
  description = "Tags on every AWS object."
  type        = map(string)
  default     = {}
}

variable "cxflow_secrets" {
  description = "Per environment: the Checkmarx user, password and client secret, the GitLab token and webhook token. Ephemeral: never stored in plan or state."
  type = map(object({
    checkmarx_username   = string
    checkmarx_password   = string
    checkmarx_token      = string
    gitlab_token         = string
    gitlab_webhook_token = string
  }))
  ephemeral = true
  sensitive = true
}

variable "ci_oidc_provider_arn" {
  description = "IAM OIDC provider of the GitLab (or GitHub) that runs the container repository's pipeline; null: no CI role, use the ci_policy_json output yourself."
  type        = string
  default     = null
}

variable "ci_subjects" {
  description = "Token subjects allowed to assume the CI role, e.g. project_path:example-group/cxflow-container:ref_type:branch:ref:main."
  type        = list(string)
  default     = []
}
