# terraform apply -invoke=action.cxflow_ecs_run_task.migrate
action "cxflow_ecs_run_task" "migrate" {
  config {
    cluster = "production"
    service = "web"
    command = ["bin/db/migrate"]
    environment = {
      MIGRATION_LOCK_TIMEOUT = "60"
    }
    timeout = "30m"
  }
}
