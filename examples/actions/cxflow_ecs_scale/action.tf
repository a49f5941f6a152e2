# terraform apply -invoke=action.cxflow_ecs_scale.web
action "cxflow_ecs_scale" "web" {
  config {
    cluster       = "production"
    service       = "web"
    desired_count = 4
  }
}
