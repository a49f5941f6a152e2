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
      pull_principals      = ["111122223333", "arn:aws:iam::444455556666:role/puller"]
    }
    qa = {
      developers  = ["authorize", "read"]
      github      = ["authorize", "read", "write"]
      github_refs = ["refs/heads/qa/*"]
    }
  }

  image_lifecycle {
    keep_tagged           = 20
    expire_untagged_days  = 3
    archive_old_tagged    = true
    archive_unpulled_days = 60
    expire_archived_days  = 120
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
