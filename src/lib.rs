//! terraform-provider-cxflow: containerised services on AWS ECS Fargate as a
//! few composite Terraform resources.
//!
//! Layers, bottom up: `plugin` (protocol 6 over gRPC, go-plugin serving),
//! `framework` (values, schemas, diagnostics, provider traits), `aws` (clients,
//! retries, waiters, errors), `engine` (composite resources), `resources`
//! (one module per resource) and `provider` (the provider block).

pub mod actions;
pub mod aws;
pub mod calls;
pub mod children;
pub mod data_sources;
pub mod docs;
pub mod engine;
pub mod framework;
pub mod functions;
pub mod plugin;
pub mod provider;
pub mod resources;
