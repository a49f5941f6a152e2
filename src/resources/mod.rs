//! One module per resource.

pub mod build_pipeline;
pub mod cxflow_cluster;
pub mod ecs_cluster;
pub mod ecs_fargate_service;
pub mod image_registry;
pub mod release_pipeline;
pub mod secret_sync;
pub mod ssm_secret;

use std::sync::Arc;

use crate::aws::Aws;
use crate::framework::{EphemeralResource, Resource};

pub fn all() -> Vec<Arc<dyn Resource<Aws>>> {
    vec![
        build_pipeline::resource(),
        cxflow_cluster::resource(),
        ecs_cluster::resource(),
        ecs_fargate_service::resource(),
        image_registry::resource(),
        release_pipeline::resource(),
        secret_sync::resource(),
    ]
}

pub fn all_list() -> Vec<Arc<dyn crate::framework::ListResource<Aws>>> {
    vec![secret_sync::list_resource(), ecs_fargate_service::list_resource(), ecs_cluster::list_resource()]
}

pub fn all_ephemeral() -> Vec<Arc<dyn EphemeralResource<Aws>>> {
    vec![ssm_secret::resource()]
}

#[cfg(test)]
mod tests {
    use crate::framework::check::Check;
    use crate::framework::schema::{AttrType, Attribute, Block};

    fn patterns(block: &Block, out: &mut Vec<(String, &'static str)>) {
        fn attr(a: &Attribute, out: &mut Vec<(String, &'static str)>) {
            fn walk(c: &Check, name: &str, out: &mut Vec<(String, &'static str)>) {
                match c {
                    Check::Matches(re, _) => out.push((name.to_string(), re)),
                    Check::Each(inner) | Check::Keys(inner) => walk(inner, name, out),
                    _ => {}
                }
            }
            for c in &a.checks {
                walk(c, &a.name, out);
            }
            if let AttrType::Nested(_, attrs) = &a.ty {
                attrs.iter().for_each(|x| attr(x, out));
            }
        }
        block.attributes.iter().for_each(|a| attr(a, out));
        for b in &block.blocks {
            patterns(&b.block, out);
        }
    }

    /// A check's pattern that does not compile (or exceeds the regex size
    /// limit, as `\p{L}{1,256}` does) would make validation panic.
    #[test]
    fn every_check_pattern_compiles() {
        let mut all = Vec::new();
        for r in super::all() {
            patterns(&r.schema().block, &mut all);
        }
        assert!(all.len() > 50, "the walk finds the schema's patterns: {}", all.len());
        for (name, re) in all {
            assert!(regex::Regex::new(&format!("^(?:{re})$")).is_ok(), "{name}: {re}");
        }
    }
}
