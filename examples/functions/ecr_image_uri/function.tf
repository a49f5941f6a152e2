# The image CI pushed, pinned by digest.
output "app_image" {
  value = provider::cxflow::ecr_image_uri("123456789012", "eu-west-2", "cxflow/app", "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945")
}
