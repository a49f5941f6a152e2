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

output "images" {
  description = "The image (digest) each environment runs."
  value       = module.cxflow.images
}

output "gitlab_webhooks" {
  description = "Per environment: what to enter in GitLab's webhook settings."
  value       = module.cxflow.gitlab_webhooks
}

output "ci_policy_json" {
  description = "The least-privilege policy for the job that pushes the image and writes the parameters."
  value       = module.cxflow.ci_policy_json
}

output "ci_role_arn" {
  value = module.cxflow.ci_role_arn
}
