# Import by <cluster>/<service>. Containers, network, load balancer and roles
# are read back from AWS; objects tagged cxflow:owner by this resource are
# recorded as its children, so the next plan is empty.
terraform import cxflow_ecs_fargate_service.backend cruddur/backend-flask
