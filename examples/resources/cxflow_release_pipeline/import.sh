# Import by pipeline name (or ARN). The builders are read from the pipeline's
# Build stage, the projects, roles, log group and artifact bucket are found by
# the names the pipeline implies, so the next plan is empty.
terraform import cxflow_release_pipeline.agent ecs-agent
