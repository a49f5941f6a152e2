variable "memory" {
  type    = number
  default = 2048
  validation {
    condition     = contains(provider::cxflow::fargate_memory_options(1024), var.memory)
    error_message = "Fargate does not offer this memory size with 1024 CPU units."
  }
}
