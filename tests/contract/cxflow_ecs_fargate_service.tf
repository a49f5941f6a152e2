resource "cxflow_ecs_fargate_service" "this" {
  name          = "contract"
  cluster       = var.ecs_cluster
  cpu           = 256
  memory        = 512
  desired_count = 1

  enable_execute_command = true

  container {
    name    = "app"
    image   = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1"
    port    = 8080
    secrets = { TOKEN = "arn:aws:ssm:us-east-1:123456789012:parameter/contract/token" }
  }

  network {
    subnet_ids = var.subnet_ids
    ingress {
      port        = 8080
      cidr_blocks = ["10.0.0.0/16"]
    }
  }

  load_balancer {
    listener_arn = var.listener_arn
    host_header  = "contract.example.com"
    priority     = 10
  }

  # The Application Auto Scaling kinds join the suite (drift, lost answers, crashes).
  autoscaling {
    min        = 1
    max        = 2
    cpu_target = 60
  }

  tags = { Suite = "contract" }
}
