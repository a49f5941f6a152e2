# A worker whose image CI deploys (register a revision, UpdateService): the
# revision CI deployed is not drift, and a revision Terraform registers for
# another change carries the image running now. The sidecars' image is the
# configuration's, pinned to its digest at plan time.
resource "cxflow_ecs_fargate_service" "worker" {
  name    = "worker"
  cluster = "cruddur"
  cpu     = 1024
  memory  = 2048

  runtime_platform {
    cpu_architecture = "ARM64"
  }

  container {
    name                     = "worker"
    image                    = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/worker:bootstrap"
    image_policy             = "external"
    memory                   = 1536
    readonly_root_filesystem = true
    user                     = "1000:1000"

    linux_parameters {
      init_process_enabled = true
      capabilities {
        drop = ["ALL"]
      }
    }
    mount_point {
      source_volume  = "scratch"
      container_path = "/tmp"
    }
    depends_on {
      container = "migrate"
      condition = "SUCCESS"
    }
  }

  container {
    name         = "migrate"
    image        = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/worker-migrate:latest"
    image_policy = "digest"
    essential    = false
    memory       = 256
  }

  volume {
    name = "scratch"
  }

  # Logs go through a Fluent Bit sidecar; the task role may write them.
  log_router {
    container_log_options = { Name = "cloudwatch", region = "eu-west-2", log_group_name = "/cruddur/worker", auto_create_group = "false" }
  }
  task_role_policy_json = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = ["logs:CreateLogStream", "logs:PutLogEvents"], Resource = "arn:aws:logs:eu-west-2:123456789012:log-group:/cruddur/worker:*" }]
  })
  task_role_policy_arns = ["arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"]

  network {
    subnet_ids = ["subnet-0462b87709683ccaa", "subnet-066a53dd88d557e05"]
  }
}
