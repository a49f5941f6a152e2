//! One module per resource.

use std::sync::Arc;

use crate::aws::Aws;
use crate::framework::{EphemeralResource, Resource};

pub fn all() -> Vec<Arc<dyn Resource<Aws>>> {
    vec![]
}

pub fn all_ephemeral() -> Vec<Arc<dyn EphemeralResource<Aws>>> {
    vec![]
}
