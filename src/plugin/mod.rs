//! The protocol layer: Terraform plugin protocol 6 over gRPC, served the way
//! go-plugin expects. Generic over the framework's `Provider` trait; it knows
//! nothing about AWS.

pub mod convert;
pub mod function;
pub mod identity;
pub mod logging;
pub mod serve;
pub mod server;
pub mod tls;

#[allow(clippy::all, clippy::pedantic)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

#[allow(clippy::all, clippy::pedantic)]
pub mod goplugin {
    tonic::include_proto!("plugin");
}
