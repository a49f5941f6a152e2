# Run `terraform query -generate-config-out=generated.tf` to list the ECS
# clusters whose names start with "cruddur" and write their configuration.
list "cxflow_ecs_cluster" "cruddur" {
  provider         = cxflow
  include_resource = true

  config {
    name_prefix = "cruddur"
  }
}
