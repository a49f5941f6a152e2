# Seed 003's `aws ecs create-cluster --service-connect-defaults namespace=cruddur`,
# with Container Insights, FARGATE_SPOT for most tasks and ECS Exec sessions
# logged to a log group the resource owns.
resource "cxflow_ecs_cluster" "cruddur" {
  name               = "cruddur"
  container_insights = "enhanced"

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    base              = 1
    weight            = 1
  }

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE_SPOT"
    weight            = 3
  }

  service_connect {
    namespace_name = "cruddur"
  }

  execute_command {
    log_retention_days = 14
  }

  tags = {
    App = "cruddur"
  }
}

# Services name the cluster by ARN or name.
output "cluster_arn" {
  value = cxflow_ecs_cluster.cruddur.arn
}
