# Seed staging's GitLab token from production's without storing it anywhere.
ephemeral "cxflow_ssm_secret" "gitlab_token" {
  name = "/cxflow/production/gitlab/token"
}

resource "cxflow_secret_sync" "staging" {
  path_prefix = "/cxflow/staging"
  secrets_wo = {
    "gitlab/token" = ephemeral.cxflow_ssm_secret.gitlab_token.value
  }
}
