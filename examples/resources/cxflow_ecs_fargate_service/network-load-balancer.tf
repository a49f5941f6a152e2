# An MQTT broker behind an existing Network Load Balancer: the service creates
# a TCP target group and a TCP listener of its own on port 8883 of that NLB
# (the NLB's other listeners are left alone). Destroy removes both; the NLB
# stays.
resource "cxflow_ecs_fargate_service" "broker" {
  name    = "broker"
  cluster = "cruddur"
  cpu     = 512
  memory  = 1024

  container {
    name  = "mosquitto"
    image = "public.ecr.aws/docker/library/eclipse-mosquitto:2"
    port  = 8883
  }

  network {
    subnet_ids = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    ingress {
      port        = 8883
      cidr_blocks = ["10.0.0.0/16"]
    }
  }

  network_load_balancer {
    load_balancer_arn    = "arn:aws:elasticloadbalancing:eu-west-2:123456789012:loadbalancer/net/edge/0123456789abcdef"
    port                 = 8883
    deregistration_delay = 30
  }
}

output "broker_listener" {
  value = cxflow_ecs_fargate_service.broker.listener_arn
}
