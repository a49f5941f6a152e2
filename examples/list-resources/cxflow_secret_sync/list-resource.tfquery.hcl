# Run `terraform query -generate-config-out=generated.tf` to list the
# parameters under the path and write a resource block and an import block.
list "cxflow_secret_sync" "production" {
  provider = cxflow

  config {
    path_prefix = "/cxflow/production"
  }
}
