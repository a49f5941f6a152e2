# The Cruddur backend on Fargate: log group, least-privilege roles, security
# group, target group and listener rule, task definition and service, created
# in dependency order and tagged cxflow:owner. Apply waits for a steady state.
resource "cxflow_ecs_fargate_service" "backend" {
  name          = "backend-flask"
  cluster       = "cruddur"
  cpu           = 256
  memory        = 512
  desired_count = 1

  container {
    name  = "backend-flask"
    image = "123456789012.dkr.ecr.eu-west-2.amazonaws.com/backend-flask:latest"
    port  = 4567

    environment = {
      FRONTEND_URL = "*"
      BACKEND_URL  = "*"
    }

    # Read at task start by the execution role, which may read exactly these.
    secrets = {
      CONNECTION_URL = "arn:aws:ssm:eu-west-2:123456789012:parameter/cruddur/backend-flask/CONNECTION_URL"
    }

    health_check {
      command      = ["CMD-SHELL", "python /backend-flask/bin/flask/health-check"]
      interval     = 30
      timeout      = 5
      retries      = 3
      start_period = 60
    }
  }

  network {
    subnet_ids       = ["subnet-0462b87709683ccaa", "subnet-066a53dd88d557e05"]
    assign_public_ip = true

    ingress {
      port                      = 4567
      source_security_group_ids = ["sg-0a1b2c3d4e5f60718"]
    }
  }

  load_balancer {
    listener_arn = "arn:aws:elasticloadbalancing:eu-west-2:123456789012:listener/app/cruddur-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
    host_header  = "api.cruddur.example.com"
    priority     = 10

    health_check {
      path = "/api/health-check"
    }
  }

  service_connect {
    namespace = "cruddur"
  }

  enable_execute_command = true
  log_retention_days     = 1

  # The scaler owns the task count: Terraform never reverts what it set.
  autoscaling {
    min                 = 1
    max                 = 6
    cpu_target          = 60
    requests_per_target = 1000

    scheduled_action {
      name     = "nights"
      schedule = "cron(0 22 * * ? *)"
      timezone = "Europe/London"
      max      = 2
    }
  }

  # One task on Fargate, the rest mostly on Spot; changed in place.
  capacity_provider_strategy {
    capacity_provider = "FARGATE"
    base              = 1
    weight            = 1
  }
  capacity_provider_strategy {
    capacity_provider = "FARGATE_SPOT"
    weight            = 3
  }

  deployment {
    minimum_healthy_percent = 50
    alarms {
      names = ["backend-flask-5xx"]
    }
  }
  health_check_grace_period = 60

  # Change it to roll the tasks with nothing else changing.
  redeploy_trigger = "2026-12-02"

  timeouts {
    create = "20m"
    update = "20m"
  }

  tags = {
    App = "cruddur"
  }
}
