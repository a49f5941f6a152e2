variable "name" {
  type = string
}

variable "dns_zone" {
  type = string
}

variable "domain" {
  type = string
}

variable "environments" {
  type = map(object({
    image_tag     = string
    desired_count = optional(number)
    cpu           = optional(number)
    memory        = optional(number)
    hostname      = optional(string)
  }))
}

variable "webhook_source_cidrs" {
  type = list(string)
}

variable "vpc_cidr" {
  type    = string
  default = "10.0.0.0/16"
}

variable "checkmarx_url" {
  type = string
}

variable "secrets" {
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
  type    = string
  default = null
}

variable "ci_subjects" {
  type    = list(string)
  default = []
}
