# The image tagged v1.4.0, pinned by digest so a moved tag changes the plan.
data "cxflow_image" "app" {
  repository = "cxflow/app"
  tag        = "v1.4.0"
}

output "app_image" {
  value = data.cxflow_image.app.image_uri
}

output "app_critical_findings" {
  value = lookup(data.cxflow_image.app.scan_findings, "CRITICAL", 0)
}
