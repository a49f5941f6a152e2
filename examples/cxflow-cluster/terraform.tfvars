region   = "us-east-1"
name     = "cxflow"
dns_zone = "example.com"
domain   = "cxflow.example.com"

environments = {
  production = { image_tag = "stable" }
  staging    = { image_tag = "latest", desired_count = 1, cpu = 512, memory = 2048 }
}

# GitLab.com's webhook source ranges.
webhook_source_cidrs = ["34.74.90.64/28", "34.74.226.0/24"]

checkmarx_url = "https://checkmarx.example.com"

tags = {
  Team    = "appsec"
  Service = "cxflow"
}

# The container repository's pipeline assumes a role through its GitLab ID
# token to push the image and write the SSM parameters (uncomment to create it):
# ci_oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/gitlab.com"
# ci_subjects          = ["project_path:example-group/cxflow-container:ref_type:branch:ref:main"]
