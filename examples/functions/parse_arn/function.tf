output "service_cluster" {
  value = split("/", provider::cxflow::parse_arn("arn:aws:ecs:eu-west-2:123456789012:service/production/web").resource)[1]
}
