//! Provider functions (Terraform 1.8+): `provider::<name>::<function>(...)`.
//! Pure computations on their arguments, no AWS calls; an error names the
//! argument at fault, which Terraform shows with the parameter's name.

use super::value::{Type, Value};

#[derive(Clone, Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: Type,
    pub description: &'static str,
}

#[derive(Clone, Debug)]
pub struct Signature {
    pub name: &'static str,
    pub summary: &'static str,
    pub description: &'static str,
    pub params: Vec<Param>,
    pub returns: Type,
}

/// What went wrong, and with which argument (0-based) when one is to blame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionError {
    pub text: String,
    pub argument: Option<usize>,
}

impl FunctionError {
    pub fn arg(index: usize, text: impl Into<String>) -> FunctionError {
        FunctionError { text: text.into(), argument: Some(index) }
    }
}

pub trait Function: Send + Sync {
    fn signature(&self) -> Signature;
    /// `args` are known, non-null and of the parameters' types (Terraform checks).
    fn call(&self, args: &[Value]) -> Result<Value, FunctionError>;
}
