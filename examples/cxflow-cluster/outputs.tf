output "webhook_urls" {
  description = "Point each environment's Git webhook here."
  value       = module.cxflow.webhook_urls
}

output "repository_url" {
  description = "Push CxFlow images here, tagged with each environment's image_tag."
  value       = module.cxflow.repository_url
}

output "load_balancer_dns_name" {
  value = module.cxflow.load_balancer_dns_name
}

output "ssm_path_prefixes" {
  value = module.cxflow.ssm_path_prefixes
}

output "service_arns" {
  value = module.cxflow.service_arns
}
