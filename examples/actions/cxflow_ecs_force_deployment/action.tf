# terraform apply -invoke=action.cxflow_ecs_force_deployment.web
action "cxflow_ecs_force_deployment" "web" {
  config {
    cluster = "production"
    service = "web"
    timeout = "15m"
  }
}
