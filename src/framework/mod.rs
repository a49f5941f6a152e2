//! The framework layer: values, schemas, diagnostics, the typed bridge and the
//! traits a provider implements. Nothing here knows about gRPC or AWS.

pub mod action;
pub mod check;
pub mod data_source;
pub mod diag;
pub mod function;
pub mod identity;
pub mod list;
pub mod provider;
pub mod schema;
pub mod typed;
pub mod validate;
pub mod value;

pub use action::{Action, Progress};
pub use check::Check;
pub use data_source::DataSource;
pub use diag::{Diagnostic, Diags, Path};
pub use function::{Function, FunctionError, Param, Signature};
pub use identity::{IdentityAttribute, IdentitySchema, ResourceIdentity};
pub use list::{ListResource, ListedItem};
pub use provider::*;
pub use schema::{Attribute, Block, NestedBlock, Nesting, Schema};
pub use value::{Type, Value};
