# Run `terraform query -generate-config-out=generated.tf` to list the Fargate
# services of the cluster (made by this provider or by hand) and write a
# resource block and an import block for each; `terraform plan` then imports
# them with no changes.
list "cxflow_ecs_fargate_service" "cruddur" {
  provider         = cxflow
  include_resource = true

  config {
    cluster     = "cruddur"
    name_prefix = "backend"
    tags        = { team = "web" }
  }
}
