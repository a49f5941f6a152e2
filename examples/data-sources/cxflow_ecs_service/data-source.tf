# What the service runs now, e.g. to pin another service to the same image.
data "cxflow_ecs_service" "web" {
  cluster = "production"
  service = "web"
}

output "web_image" {
  value = data.cxflow_ecs_service.web.image
}

output "web_rollout" {
  value = [for d in data.cxflow_ecs_service.web.deployments : "${d.id}: ${d.rollout_state}"]
}
