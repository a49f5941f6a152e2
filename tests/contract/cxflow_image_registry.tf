resource "cxflow_image_registry" "this" {
  name = "contract"

  github {
    repository = "example-org/contract"
  }

  stages = {
    development = {}
    master      = {}
    release = {
      image_tag_mutability = "IMMUTABLE"
    }
    qa = {
      developers  = ["authorize", "read"]
      github      = ["authorize", "read", "write"]
      github_refs = ["refs/heads/qa/*"]
    }
  }

  image_lifecycle {
    keep_tagged          = 20
    expire_untagged_days = 3
  }

  deployment_role {
    github_environment = "Deployment"
    policy_json = jsonencode({
      Version = "2012-10-17"
      Statement = [{
        Sid      = "DescribeStacks"
        Effect   = "Allow"
        Action   = "cloudformation:DescribeStacks"
        Resource = "arn:aws:cloudformation:us-east-1:123456789012:stack/contract-*/*"
      }]
    })
  }

  tags = { Suite = "contract" }
}
