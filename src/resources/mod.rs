//! One module per resource.

pub mod cxflow_cluster;
pub mod ecs_cluster;
pub mod ecs_fargate_service;
pub mod image_registry;
pub mod secret_sync;
pub mod ssm_secret;

use std::sync::Arc;

use crate::aws::Aws;
use crate::framework::{EphemeralResource, Resource};

pub fn all() -> Vec<Arc<dyn Resource<Aws>>> {
    vec![cxflow_cluster::resource(), ecs_cluster::resource(), ecs_fargate_service::resource(), image_registry::resource(), secret_sync::resource()]
}

pub fn all_ephemeral() -> Vec<Arc<dyn EphemeralResource<Aws>>> {
    vec![ssm_secret::resource()]
}
