# Seed 001: build the agent for two platforms, GPG-sign both artifacts and
# publish them with their signatures. Adding a platform is one more entry in
# `builders`.
resource "cxflow_release_pipeline" "agent" {
  name = "ecs-agent"

  source {
    connection_arn = "arn:aws:codestar-connections:us-west-2:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f"
    repository     = "example-org/amazon-ecs-agent"
    branch         = "master"
  }

  builders = {
    amd64 = { buildspec = "buildspecs/merge-build.yml", artifact_variable = "ARTIFACT_NAME" }
    arm64 = {
      buildspec         = "buildspecs/merge-build-ubuntu.yml"
      artifact_variable = "ARTIFACT_NAME"
      compute_type      = "BUILD_GENERAL1_LARGE"
      environment_type  = "ARM_CONTAINER"
      image             = "aws/codebuild/amazonlinux2-aarch64-standard:3.0"
    }
  }

  signing {
    key_secret_arn        = "arn:aws:secretsmanager:us-west-2:123456789012:secret:release/gpg-key-AbCdEf"
    passphrase_secret_arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:release/gpg-passphrase-GhIjKl"
    # Or let the provider keep them in secrets of its own that only the
    # signer role may read, never in state or plan (Terraform 1.11+):
    #   key_wo             = var.gpg_private_key # an ephemeral variable
    #   passphrase_wo      = var.gpg_passphrase
    #   secrets_wo_version = 1                   # bump to write new values
  }

  publish {
    bucket_arn = "arn:aws:s3:::example-releases"
    prefix     = "agent/"
  }

  # CloudTrail records every GetSecretValue into /cxflow/release/ecs-agent/audit;
  # the `audit_query` output finds the reads of the two signing secrets.
  audit {
    retention_days = 180
  }

  log_retention_days = 30
}
