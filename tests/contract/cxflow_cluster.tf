resource "cxflow_cluster" "this" {
  name     = "contract"
  dns_zone = var.dns_zone
  domain   = "contract.example.com"

  environments = {
    production = { image_tag = "stable" }
  }

  vpc {
    cidr_block   = "10.0.0.0/16"
    nat_gateways = "single"
  }

  webhook_source_cidrs = ["34.74.90.64/28"]

  tags = { Suite = "contract" }
}
