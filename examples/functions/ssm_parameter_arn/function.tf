output "gitlab_token_arn" {
  value = provider::cxflow::ssm_parameter_arn("eu-west-2", "123456789012", "/cxflow/production/gitlab/token")
}
