resource "cxflow_build_pipeline" "this" {
  name = "contract"

  source {
    connection_arn = "arn:aws:codestar-connections:us-east-1:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f"
    repository     = "example-org/contract"
    branch         = "prod"
  }

  build {
    buildspec       = "app/buildspec.yml"
    image           = "aws/codebuild/amazonlinux2-x86_64-standard:4.0"
    privileged      = true
    timeout_minutes = 20
    environment     = { CONTAINER_NAME = "app" }
    repository_arn  = "arn:aws:ecr:us-east-1:123456789012:repository/contract"
  }

  deploy_ecs {
    cluster        = var.ecs_cluster
    service        = "contract"
    pass_role_arns = ["arn:aws:iam::123456789012:role/contract-task"]
  }

  manual_approval = true
  tags            = { Suite = "contract" }
}
