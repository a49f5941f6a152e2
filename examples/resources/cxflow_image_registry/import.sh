# Import by registry name. Stages, levels, GitHub trust, lifecycle and members
# are read back from AWS (the groups and roles under /cxflow/<name>/); the next
# plan is empty.
terraform import cxflow_image_registry.sample sample-image
