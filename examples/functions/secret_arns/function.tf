# { CHECKMARX_PASSWORD = "arn:…/checkmarx/password", GITLAB_TOKEN = "arn:…/gitlab/token" },
# ready for a container's `secrets`.
output "secrets" {
  value = provider::cxflow::secret_arns(
    "arn:aws:ssm:eu-west-2:123456789012:parameter/cxflow/production",
    ["checkmarx/password", "gitlab/token"],
  )
}
