# Import by cluster name. The namespace, capacity providers, strategy and ECS
# Exec settings are read back from AWS; the next plan is empty.
terraform import cxflow_ecs_cluster.cruddur cruddur
