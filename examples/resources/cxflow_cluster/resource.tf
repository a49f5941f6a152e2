resource "cxflow_cluster" "this" {
  name     = "cxflow"
  dns_zone = "example.com" # an existing public hosted zone
  domain   = "cxflow.example.com"

  environments = {
    production = { image_tag = "stable" }
    staging    = { image_tag = "latest", desired_count = 1, cpu = 512, memory = 2048 }
  }

  vpc {
    cidr_block   = "10.0.0.0/16"
    nat_gateways = "single"
  }

  # GitLab.com's webhook source ranges: the load balancer accepts HTTPS from these only.
  webhook_source_cidrs = ["34.74.90.64/28", "34.74.226.0/24"]

  tags = { Team = "appsec" }
}

# Each environment reads its secrets from /<name>/<environment>/...
output "webhook_urls" {
  value = cxflow_cluster.this.webhook_urls
}
