//! The AWS layer: client construction from the provider block (aws-config's
//! standard credential chain), retries, waiters and error mapping. It knows
//! nothing about gRPC or Terraform's wire types.

pub mod batch;
pub mod config;
pub mod error;
pub mod inflight;
pub mod reads;
pub mod wait;

pub use config::{Aws, AwsSettings};
pub use error::{AwsError, aws_err, aws_err_hiding};
