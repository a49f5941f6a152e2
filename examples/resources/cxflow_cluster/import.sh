# Import a deployment by its name: the configuration is read back from AWS
# and every child carrying the cxflow:owner tag is found.
terraform import cxflow_cluster.this cxflow
