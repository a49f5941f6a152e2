output "webhook_urls" {
  value = cxflow_cluster.this.webhook_urls
}

output "repository_url" {
  value = cxflow_cluster.this.repository_url
}

output "load_balancer_dns_name" {
  value = cxflow_cluster.this.load_balancer_dns_name
}

output "ssm_path_prefixes" {
  value = cxflow_cluster.this.ssm_path_prefixes
}

output "service_arns" {
  value = cxflow_cluster.this.service_arns
}

output "cluster_arn" {
  value = cxflow_cluster.this.cluster_arn
}

output "images" {
  value = cxflow_cluster.this.images
}

output "gitlab_webhooks" {
  value = cxflow_cluster.this.gitlab_webhooks
}

output "ci_policy_json" {
  value = cxflow_cluster.this.ci_policy_json
}

output "ci_role_arn" {
  value = cxflow_cluster.this.ci_role_arn
}
