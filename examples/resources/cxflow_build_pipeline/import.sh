# Import by pipeline name (or ARN). The project, log group, artifact bucket
# and both roles are found by the names the pipeline implies and read back,
# so the next plan is empty.
terraform import cxflow_build_pipeline.backend cruddur-backend-fargate
