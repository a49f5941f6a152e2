resource "cxflow_release_pipeline" "this" {
  name = "contract"

  source {
    connection_arn = "arn:aws:codestar-connections:us-east-1:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f"
    repository     = "example-org/contract"
    branch         = "master"
  }

  builders = {
    amd64 = { buildspec = "buildspecs/merge-build.yml" }
    arm64 = { buildspec = "buildspecs/merge-build-ubuntu.yml", environment_type = "ARM_CONTAINER", image = "aws/codebuild/amazonlinux2-aarch64-standard:3.0" }
  }

  signing {
    key_secret_arn        = "arn:aws:secretsmanager:us-east-1:123456789012:secret:release/gpg-key-AbCdEf"
    passphrase_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:release/gpg-passphrase-GhIjKl"
  }

  publish {
    bucket_arn = "arn:aws:s3:::contract-releases"
  }

  audit {}

  tags = { Suite = "contract" }
}
