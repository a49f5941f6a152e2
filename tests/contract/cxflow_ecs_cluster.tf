resource "cxflow_ecs_cluster" "this" {
  name               = "contract"
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
    namespace_name = "contract"
  }

  execute_command {
    log_retention_days = 7
  }

  tags = { Suite = "contract" }
}
