# Import every parameter under a path prefix. Values stay out of state; the
# next plan compares SSM with the configured secrets_wo in memory.
terraform import cxflow_secret_sync.production /cxflow/production
