terraform {
  required_providers {
    cxflow = {
      source = "cxflow/cxflow"
    }
  }
}

# Credentials come from the standard AWS chain: environment variables, shared
# config and credentials files (profile), SSO, or an instance/task role.
provider "cxflow" {
  region = "eu-west-1"

  # Tags added to every object the provider creates.
  default_tags {
    tags = {
      team        = "platform"
      environment = "production"
      managed_by  = "terraform"
    }
  }

  # Point individual services at another endpoint, e.g. a local AWS stand-in
  # such as moto or LocalStack (AWS_ENDPOINT_URL works too):
  #
  # endpoints {
  #   ecs  = "http://127.0.0.1:5000"
  #   iam  = "http://127.0.0.1:5000"
  #   ssm  = "http://127.0.0.1:5000"
  #   sts  = "http://127.0.0.1:5000"
  # }
}
