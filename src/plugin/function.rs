//! Provider functions on the wire: their signatures, and calls decoded with
//! the parameters' types and answered with the return type.

use std::collections::HashMap;
use std::sync::Arc;

use super::convert::{decode, encode};
use super::tfplugin6 as pb;
use crate::framework::Function;

pub struct Functions(HashMap<String, Arc<dyn Function>>);

fn markdown() -> i32 {
    pb::StringKind::Markdown as i32
}

fn ty(t: &crate::framework::Type) -> Vec<u8> {
    serde_json::to_vec(&t.to_json()).unwrap_or_default()
}

impl Functions {
    pub fn new(fs: Vec<Arc<dyn Function>>) -> Functions {
        Functions(fs.into_iter().map(|f| (f.signature().name.to_string(), f)).collect())
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    pub fn definitions(&self) -> HashMap<String, pb::Function> {
        self.0
            .iter()
            .map(|(name, f)| {
                let s = f.signature();
                let params = s
                    .params
                    .iter()
                    .map(|p| pb::function::Parameter {
                        name: p.name.to_string(),
                        r#type: ty(&p.ty),
                        allow_null_value: false,
                        allow_unknown_values: false,
                        description: p.description.to_string(),
                        description_kind: markdown(),
                    })
                    .collect();
                let def = pb::Function {
                    parameters: params,
                    variadic_parameter: None,
                    r#return: Some(pb::function::Return { r#type: ty(&s.returns) }),
                    summary: s.summary.to_string(),
                    description: s.description.to_string(),
                    description_kind: markdown(),
                    deprecation_message: String::new(),
                };
                (name.clone(), def)
            })
            .collect()
    }

    pub fn call(&self, r: pb::call_function::Request) -> pb::call_function::Response {
        let fail = |text: String, argument: Option<usize>| pb::call_function::Response {
            result: None,
            error: Some(pb::FunctionError { text, function_argument: argument.map(|i| i as i64) }),
        };
        let Some(f) = self.0.get(&r.name) else { return fail(format!("This provider has no function named {:?}.", r.name), None) };
        let s = f.signature();
        if r.arguments.len() != s.params.len() {
            return fail(format!("{} expects {} argument(s), got {}.", s.name, s.params.len(), r.arguments.len()), None);
        }
        let mut args = Vec::with_capacity(s.params.len());
        for (i, (a, p)) in r.arguments.iter().zip(&s.params).enumerate() {
            match decode(Some(a), &p.ty) {
                Ok(v) => args.push(v),
                Err(d) => return fail(d.0.iter().map(|x| x.detail.clone()).collect::<Vec<_>>().join("; "), Some(i)),
            }
        }
        match f.call(&args) {
            Ok(v) => match encode(&v, &s.returns) {
                Ok(dv) => pb::call_function::Response { result: Some(dv), error: None },
                Err(d) => fail(d.0.iter().map(|x| x.detail.clone()).collect::<Vec<_>>().join("; "), None),
            },
            Err(e) => fail(e.text, e.argument),
        }
    }
}
