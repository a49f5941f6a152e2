# Seed 004's pipeline for the Cruddur backend: GitHub (version 2) source on
# branch prod, a privileged CodeBuild build that pushes to one ECR
# repository, a manual approval, and an ECS deploy to the Fargate service
# below. The deploy stage names the service's cluster and name from its
# outputs, and the pipeline may pass only that service's two roles.
resource "cxflow_ecs_fargate_service" "backend" {
  name    = "backend-flask"
  cluster = "cruddur"
  cpu     = 256
  memory  = 512

  container {
    name  = "backend-flask"
    image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/backend-flask:latest"
    port  = 4567
  }

  network {
    subnet_ids       = ["subnet-0462b87709683ccaa", "subnet-066a53dd88d557e05"]
    assign_public_ip = true
  }
}

resource "cxflow_build_pipeline" "backend" {
  name = "cruddur-backend-fargate"

  source {
    # Made once in the console (the GitHub app handshake needs a person).
    connection_arn = "arn:aws:codestar-connections:eu-west-2:123456789012:connection/0a1b2c3d-0a1b-4a1b-8a1b-0a1b2c3d4e5f"
    repository     = "example-org/aws-bootcamp-cruddur-2023"
    branch         = "prod"
  }

  build {
    buildspec       = "backend-flask/buildspec.yml"
    image           = "aws/codebuild/amazonlinux2-x86_64-standard:4.0"
    compute_type    = "BUILD_GENERAL1_SMALL"
    privileged      = true
    timeout_minutes = 20
    environment     = { CONTAINER_NAME = "backend-flask" }
    repository_arn  = "arn:aws:ecr:eu-west-2:123456789012:repository/backend-flask"
  }

  deploy_ecs {
    cluster        = cxflow_ecs_fargate_service.backend.cluster
    service        = cxflow_ecs_fargate_service.backend.name
    file           = "imagedefinitions.json"
    pass_role_arns = [cxflow_ecs_fargate_service.backend.task_role_arn, cxflow_ecs_fargate_service.backend.execution_role_arn]
  }

  manual_approval = true
}

output "start_pipeline" {
  value = cxflow_build_pipeline.backend.start_command
}

# The buildspec stays a file in the repository (backend-flask/buildspec.yml).
# The seed's, adapted: the account comes from the build's ARN, the image is
# tagged once, and imagedefinitions.json is written once (the seed also wrote
# a stray `echo` line into it first).
#
#   version: 0.2
#   env:
#     variables:
#       REPO_NAME: backend-flask:latest   # CONTAINER_NAME comes from build.environment
#   phases:
#     pre_build:
#       commands:
#         - ACCOUNT_ID=$(echo "$CODEBUILD_BUILD_ARN" | cut -d ':' -f 5)
#         - IMAGE_URL="$ACCOUNT_ID.dkr.ecr.$AWS_DEFAULT_REGION.amazonaws.com"
#         - aws ecr get-login-password --region "$AWS_DEFAULT_REGION" | docker login --username AWS --password-stdin "$IMAGE_URL"
#     build:
#       commands:
#         - cd "$CODEBUILD_SRC_DIR/backend-flask"
#         - docker build -t "$IMAGE_URL/$REPO_NAME" .
#     post_build:
#       commands:
#         - docker push "$IMAGE_URL/$REPO_NAME"
#         - cd "$CODEBUILD_SRC_DIR"
#         - printf '[{"name":"%s","imageUri":"%s"}]' "$CONTAINER_NAME" "$IMAGE_URL/$REPO_NAME" > imagedefinitions.json
#   artifacts:
#     files:
#       - imagedefinitions.json
