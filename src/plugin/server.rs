//! The tfplugin6 `Provider` service, generic over a framework provider.
//! Every RPC decodes its values with the cached schema, calls the provider
//! code, and encodes the answer. Identity, functions and actions have their
//! wire helpers in their own files; RPCs for features the provider has none
//! of (state stores) answer cleanly.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use super::convert::{self, decode, diags, encode};
use super::tfplugin6 as pb;
use super::{function, identity};
use crate::framework::diag::{Diagnostic, Diags};
use crate::framework::provider::{ApplyRequest, ClientCaps, Ctx, EphemeralResource, PlanRequest, Provider, Resource};
use crate::framework::schema::{self, Schema};
use crate::framework::value::{Type, Value};
use crate::framework::{Action, DataSource, IdentitySchema, ListResource, ListedItem, Progress};

struct Entry<T: ?Sized> {
    imp: Arc<T>,
    schema: Schema,
    ty: Type,
    /// Managed resources with a resource identity.
    identity: Option<IdentitySchema>,
}

pub struct ProviderService<P: Provider> {
    provider: Arc<P>,
    provider_schema: Schema,
    resources: HashMap<String, Entry<dyn Resource<P::Client>>>,
    ephemerals: HashMap<String, Entry<dyn EphemeralResource<P::Client>>>,
    functions: function::Functions,
    actions: HashMap<String, Entry<dyn Action<P::Client>>>,
    data_sources: HashMap<String, Entry<dyn DataSource<P::Client>>>,
    lists: HashMap<String, Entry<dyn ListResource<P::Client>>>,
    client: RwLock<Option<Arc<P::Client>>>,
    stop: Mutex<CancellationToken>,
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn err_diags(d: Diags) -> Vec<pb::Diagnostic> {
    diags(&d)
}

fn unknown_type(kind: &str, name: &str) -> Vec<pb::Diagnostic> {
    vec![convert::diag(&Diagnostic::error(format!("Unknown {kind}"), format!("This provider has no {kind} named {name:?}.")))]
}

fn caps(c: Option<&pb::ClientCapabilities>) -> ClientCaps {
    c.map(|c| ClientCaps { deferral_allowed: c.deferral_allowed, write_only_attributes_allowed: c.write_only_attributes_allowed }).unwrap_or_default()
}

impl<P: Provider> ProviderService<P> {
    pub fn new(provider: P) -> Self {
        let provider_schema = provider.schema();
        let resources = provider
            .resources()
            .into_iter()
            .map(|r| {
                let schema = r.schema();
                let ty = schema.value_type();
                let identity = r.identity().map(|i| i.identity_schema());
                (r.type_name().to_string(), Entry { imp: r, schema, ty, identity })
            })
            .collect();
        let ephemerals = provider
            .ephemeral_resources()
            .into_iter()
            .map(|r| {
                let schema = r.schema();
                let ty = schema.value_type();
                (r.type_name().to_string(), Entry { imp: r, schema, ty, identity: None })
            })
            .collect();
        let functions = function::Functions::new(provider.functions());
        let actions = provider
            .actions()
            .into_iter()
            .map(|a| {
                let schema = a.schema();
                let ty = schema.value_type();
                (a.type_name().to_string(), Entry { imp: a, schema, ty, identity: None })
            })
            .collect();
        let data_sources = provider
            .data_sources()
            .into_iter()
            .map(|d| {
                let schema = d.schema();
                let ty = schema.value_type();
                (d.type_name().to_string(), Entry { imp: d, schema, ty, identity: None })
            })
            .collect();
        let lists = provider
            .list_resources()
            .into_iter()
            .map(|l| {
                let schema = l.schema();
                let ty = schema.value_type();
                (l.type_name().to_string(), Entry { imp: l, schema, ty, identity: None })
            })
            .collect();
        ProviderService {
            provider: Arc::new(provider),
            provider_schema,
            resources,
            ephemerals,
            functions,
            actions,
            data_sources,
            lists,
            client: RwLock::new(None),
            stop: Mutex::new(CancellationToken::new()),
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx { cancel: self.stop.lock().unwrap().clone() }
    }

    async fn client(&self) -> Result<Arc<P::Client>, Diags> {
        self.client
            .read()
            .await
            .clone()
            .ok_or_else(|| Diagnostic::error("Provider not configured", "Terraform called the provider before ConfigureProvider; this is a bug.").into())
    }

    fn resource(&self, name: &str) -> Result<&Entry<dyn Resource<P::Client>>, Vec<pb::Diagnostic>> {
        self.resources.get(name).ok_or_else(|| unknown_type("resource type", name))
    }

    /// A configuration's problems: its schema's checks, then the type's own
    /// `validate` (actions, ephemeral resources and data sources alike).
    fn config_diags<T: ?Sized>(e: &Entry<T>, config: Option<&pb::DynamicValue>, own: impl FnOnce(&T, &Value) -> Diags) -> Diags {
        match decode(config, &e.ty) {
            Ok(cfg) => Self::value_diags(e, &cfg, own),
            Err(d) => d,
        }
    }

    /// [`Self::config_diags`] on a decoded configuration (ReadDataSource checks again what validate saw unknown).
    fn value_diags<T: ?Sized>(e: &Entry<T>, cfg: &Value, own: impl FnOnce(&T, &Value) -> Diags) -> Diags {
        let mut d = crate::framework::check::validate(&e.schema.block, cfg);
        d.extend(own(&e.imp, cfg));
        d
    }

    fn action_diags(e: &Entry<dyn Action<P::Client>>, config: Option<&pb::DynamicValue>) -> Diags {
        Self::config_diags(e, config, |a, c| a.validate(c))
    }

    /// The identity of the object `state` manages, for resources that have one.
    async fn identity_of(e: &Entry<dyn Resource<P::Client>>, client: &P::Client, state: &Value) -> Result<Option<pb::ResourceIdentityData>, Diags> {
        let (Some(imp), Some(s)) = (e.imp.identity(), &e.identity) else { return Ok(None) };
        if state.is_null() {
            return Ok(None);
        }
        let v = imp.identity_of(client, state).await?;
        Ok(Some(identity::data(&v, &s.value_type())?))
    }

    /// The import ID: the one given, or the one an `import` block's identity names.
    async fn import_id(&self, e: &Entry<dyn Resource<P::Client>>, client: &P::Client, r: &pb::import_resource_state::Request) -> Result<String, Diags> {
        let given = r.identity.as_ref().filter(|i| i.identity_data.is_some());
        let (Some(given), true) = (given, r.id.is_empty()) else { return Ok(r.id.clone()) };
        let (Some(imp), Some(s)) = (e.imp.identity(), &e.identity) else {
            return Err(Diagnostic::error("Import by identity not supported", format!("{} has no resource identity; import it by ID.", r.type_name)).into());
        };
        let v = identity::read(Some(given), &s.value_type())?;
        let missing = s.missing_for_import(&v);
        if !missing.is_empty() {
            return Err(Diagnostic::error("Incomplete resource identity", format!("Importing a {} by identity needs {}.", r.type_name, missing.join(", "))).into());
        }
        imp.import_id(client, &v).await
    }

    /// One ListResource event: the identity, and the object (write-only values nulled) when asked for.
    fn list_event(res: &Entry<dyn Resource<P::Client>>, id: &IdentitySchema, item: ListedItem, include: bool) -> Result<pb::list_resource::Event, Diags> {
        let resource_object = match item.object.filter(|_| include) {
            Some(mut o) => {
                schema::null_write_only(&res.schema.block, &mut o);
                Some(encode(&o, &res.ty)?)
            }
            None => None,
        };
        Ok(pb::list_resource::Event {
            identity: Some(identity::data(&item.identity, &id.value_type())?),
            display_name: item.display_name,
            resource_object,
            diagnostic: diags(&item.diags),
        })
    }

    /// Runs `fut`, or gives up with a diagnostic when Terraform asks the provider to stop.
    async fn cancellable<T>(&self, fut: impl Future<Output = Result<T, Diags>>) -> Result<T, Diags> {
        let token = self.ctx().cancel;
        tokio::select! {
            r = fut => r,
            _ = token.cancelled() => Err(Diagnostic::error("Operation cancelled", "Terraform asked the provider to stop.").into()),
        }
    }

    /// Write-only attributes need a client that keeps them out of plan and state.
    fn check_write_only(schema: &Schema, config: &Value, caps: ClientCaps) -> Diags {
        let mut d = Diags::new();
        if caps.write_only_attributes_allowed {
            return d;
        }
        for p in schema.block.write_only_paths() {
            if !schema::value_at(config, &p).is_null() {
                d.attr_error(
                    p,
                    "Write-only attributes need Terraform 1.11 or later",
                    "This Terraform does not support write-only attributes, so it could store this value in plan and state. \
                     The provider refuses it rather than let a secret reach state. Upgrade Terraform to 1.11 or later.",
                );
            }
        }
        d
    }
}

#[tonic::async_trait]
impl<P: Provider> pb::provider_server::Provider for ProviderService<P> {
    async fn get_metadata(&self, _r: Request<pb::get_metadata::Request>) -> Result<Response<pb::get_metadata::Response>, Status> {
        Ok(Response::new(pb::get_metadata::Response {
            server_capabilities: Some(server_caps()),
            resources: self.resources.keys().map(|k| pb::get_metadata::ResourceMetadata { type_name: k.clone() }).collect(),
            ephemeral_resources: self.ephemerals.keys().map(|k| pb::get_metadata::EphemeralMetadata { type_name: k.clone() }).collect(),
            functions: self.functions.names().map(|n| pb::get_metadata::FunctionMetadata { name: n.clone() }).collect(),
            actions: self.actions.keys().map(|k| pb::get_metadata::ActionMetadata { type_name: k.clone() }).collect(),
            data_sources: self.data_sources.keys().map(|k| pb::get_metadata::DataSourceMetadata { type_name: k.clone() }).collect(),
            list_resources: self.lists.keys().map(|k| pb::get_metadata::ListResourceMetadata { type_name: k.clone() }).collect(),
            ..Default::default()
        }))
    }

    async fn get_provider_schema(&self, _r: Request<pb::get_provider_schema::Request>) -> Result<Response<pb::get_provider_schema::Response>, Status> {
        debug!(target: "cxflow::plugin", "GetProviderSchema");
        Ok(Response::new(pb::get_provider_schema::Response {
            provider: Some(convert::schema(&self.provider_schema)),
            resource_schemas: self.resources.iter().map(|(k, e)| (k.clone(), convert::schema(&e.schema))).collect(),
            ephemeral_resource_schemas: self.ephemerals.iter().map(|(k, e)| (k.clone(), convert::schema(&e.schema))).collect(),
            functions: self.functions.definitions(),
            action_schemas: self.actions.iter().map(|(k, e)| (k.clone(), pb::ActionSchema { schema: Some(convert::schema(&e.schema)) })).collect(),
            data_source_schemas: self.data_sources.iter().map(|(k, e)| (k.clone(), convert::schema(&e.schema))).collect(),
            list_resource_schemas: self.lists.iter().map(|(k, e)| (k.clone(), convert::schema(&e.schema))).collect(),
            server_capabilities: Some(server_caps()),
            ..Default::default()
        }))
    }

    async fn validate_provider_config(&self, r: Request<pb::validate_provider_config::Request>) -> Result<Response<pb::validate_provider_config::Response>, Status> {
        let r = r.into_inner();
        let d = match decode(r.config.as_ref(), &self.provider_schema.value_type()) {
            Ok(cfg) => {
                let mut d = crate::framework::check::validate(&self.provider_schema.block, &cfg);
                d.extend(self.provider.validate(&cfg));
                d
            }
            Err(d) => d,
        };
        Ok(Response::new(pb::validate_provider_config::Response { diagnostics: diags(&d) }))
    }

    async fn validate_resource_config(&self, r: Request<pb::validate_resource_config::Request>) -> Result<Response<pb::validate_resource_config::Response>, Status> {
        let r = r.into_inner();
        let e = match self.resource(&r.type_name) {
            Ok(e) => e,
            Err(d) => return Ok(Response::new(pb::validate_resource_config::Response { diagnostics: d })),
        };
        let d = match decode(r.config.as_ref(), &e.ty) {
            Ok(cfg) => {
                let mut d = Self::check_write_only(&e.schema, &cfg, caps(r.client_capabilities.as_ref()));
                d.extend(crate::framework::check::validate(&e.schema.block, &cfg));
                d.extend(e.imp.validate(&cfg));
                d
            }
            Err(d) => d,
        };
        debug!(target: "cxflow::plugin", resource = r.type_name.as_str(), diagnostics = d.0.len(), "ValidateResourceConfig");
        Ok(Response::new(pb::validate_resource_config::Response { diagnostics: diags(&d) }))
    }

    async fn validate_data_resource_config(&self, r: Request<pb::validate_data_resource_config::Request>) -> Result<Response<pb::validate_data_resource_config::Response>, Status> {
        let r = r.into_inner();
        let Some(e) = self.data_sources.get(&r.type_name) else {
            return Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics: unknown_type("data source", &r.type_name) }));
        };
        let d = Self::config_diags(e, r.config.as_ref(), |ds, c| ds.validate(c));
        debug!(target: "cxflow::plugin", data_source = r.type_name.as_str(), diagnostics = d.0.len(), "ValidateDataResourceConfig");
        Ok(Response::new(pb::validate_data_resource_config::Response { diagnostics: diags(&d) }))
    }

    async fn upgrade_resource_state(&self, r: Request<pb::upgrade_resource_state::Request>) -> Result<Response<pb::upgrade_resource_state::Response>, Status> {
        let r = r.into_inner();
        let e = match self.resource(&r.type_name) {
            Ok(e) => e,
            Err(d) => return Ok(Response::new(pb::upgrade_resource_state::Response { upgraded_state: None, diagnostics: d })),
        };
        let raw = r.raw_state.map(|s| s.json).unwrap_or_default();
        let res = (|| -> Result<pb::DynamicValue, Diags> {
            if raw.is_empty() {
                return encode(&Value::Null, &e.ty);
            }
            let j: serde_json::Value = serde_json::from_slice(&raw)
                .map_err(|_| Diags::from(Diagnostic::error("Stored state is not valid JSON", "The state file entry for this resource could not be parsed.")))?;
            let v = e.imp.upgrade(r.version, &j)?;
            encode(&v, &e.ty)
        })();
        Ok(Response::new(match res {
            Ok(v) => pb::upgrade_resource_state::Response { upgraded_state: Some(v), diagnostics: vec![] },
            Err(d) => pb::upgrade_resource_state::Response { upgraded_state: None, diagnostics: err_diags(d) },
        }))
    }

    async fn get_resource_identity_schemas(
        &self,
        _r: Request<pb::get_resource_identity_schemas::Request>,
    ) -> Result<Response<pb::get_resource_identity_schemas::Response>, Status> {
        let identity_schemas = self.resources.iter().filter_map(|(k, e)| Some((k.clone(), identity::schema(e.identity.as_ref()?)))).collect();
        Ok(Response::new(pb::get_resource_identity_schemas::Response { identity_schemas, diagnostics: Vec::new() }))
    }

    async fn upgrade_resource_identity(&self, r: Request<pb::upgrade_resource_identity::Request>) -> Result<Response<pb::upgrade_resource_identity::Response>, Status> {
        let r = r.into_inner();
        let e = match self.resource(&r.type_name) {
            Ok(e) => e,
            Err(d) => return Ok(Response::new(pb::upgrade_resource_identity::Response { upgraded_identity: None, diagnostics: d })),
        };
        let res = (|| -> Result<pb::ResourceIdentityData, Diags> {
            let (Some(imp), Some(s)) = (e.imp.identity(), &e.identity) else {
                return Err(Diagnostic::error("Resource identity not supported", format!("{} has no identity schema.", r.type_name)).into());
            };
            let raw = r.raw_identity.map(|s| s.json).unwrap_or_default();
            let j: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| Diags::from(Diagnostic::error("Could not read the stored resource identity", e.to_string())))?;
            let v = imp.upgrade_identity(r.version, &j)?;
            identity::data(&v, &s.value_type())
        })();
        Ok(Response::new(match res {
            Ok(v) => pb::upgrade_resource_identity::Response { upgraded_identity: Some(v), diagnostics: Vec::new() },
            Err(d) => pb::upgrade_resource_identity::Response { upgraded_identity: None, diagnostics: err_diags(d) },
        }))
    }

    async fn configure_provider(&self, r: Request<pb::configure_provider::Request>) -> Result<Response<pb::configure_provider::Response>, Status> {
        let r = r.into_inner();
        info!(target: "cxflow::plugin", terraform_version = r.terraform_version.as_str(), "configuring provider");
        let res = match decode(r.config.as_ref(), &self.provider_schema.value_type()) {
            Ok(cfg) => self.cancellable(self.provider.configure(cfg, &r.terraform_version, self.ctx())).await,
            Err(d) => Err(d),
        };
        let d = match res {
            Ok(c) => {
                *self.client.write().await = Some(Arc::new(c));
                Diags::new()
            }
            Err(d) => d,
        };
        Ok(Response::new(pb::configure_provider::Response { diagnostics: diags(&d) }))
    }

    async fn read_resource(&self, r: Request<pb::read_resource::Request>) -> Result<Response<pb::read_resource::Response>, Status> {
        let r = r.into_inner();
        let e = match self.resource(&r.type_name) {
            Ok(e) => e,
            Err(d) => return Ok(Response::new(pb::read_resource::Response { diagnostics: d, ..Default::default() })),
        };
        let res = async {
            let state = decode(r.current_state.as_ref(), &e.ty)?;
            let client = self.client().await?;
            let out = self.cancellable(async { Ok(e.imp.read(&client, state, r.private.clone(), self.ctx()).await) }).await?;
            let mut new_state = out.new_state;
            schema::null_write_only(&e.schema.block, &mut new_state);
            let mut d = out.diags;
            let new_identity = if d.has_errors() {
                None
            } else {
                Self::identity_of(e, &client, &new_state).await.unwrap_or_else(|x| {
                    d.extend(x);
                    None
                })
            };
            Ok::<_, Diags>((encode(&new_state, &e.ty)?, out.private, d, new_identity))
        }
        .await;
        Ok(Response::new(match res {
            Ok((state, private, d, new_identity)) => pb::read_resource::Response { new_state: Some(state), private, diagnostics: diags(&d), new_identity, ..Default::default() },
            Err(d) => pb::read_resource::Response { new_state: r.current_state, private: r.private, diagnostics: err_diags(d), ..Default::default() },
        }))
    }

    async fn plan_resource_change(&self, r: Request<pb::plan_resource_change::Request>) -> Result<Response<pb::plan_resource_change::Response>, Status> {
        let r = r.into_inner();
        let e = match self.resource(&r.type_name) {
            Ok(e) => e,
            Err(d) => return Ok(Response::new(pb::plan_resource_change::Response { diagnostics: d, ..Default::default() })),
        };
        let res = async {
            let prior = decode(r.prior_state.as_ref(), &e.ty)?;
            let proposed = decode(r.proposed_new_state.as_ref(), &e.ty)?;
            let config = decode(r.config.as_ref(), &e.ty)?;
            let client = self.client().await?;
            let req = PlanRequest { prior, proposed, config, prior_private: r.prior_private.clone(), ctx: self.ctx() };
            let out = self.cancellable(async { Ok(e.imp.plan(&client, req).await) }).await?;
            let mut planned = out.planned;
            schema::null_write_only(&e.schema.block, &mut planned);
            // An identity names the object, which an update keeps; a create's
            // identity is known once the object exists.
            let planned_identity = if planned.is_null() || !out.requires_replace.is_empty() { None } else { r.prior_identity.clone().filter(|i| i.identity_data.is_some()) };
            Ok::<_, Diags>(pb::plan_resource_change::Response {
                planned_state: Some(encode(&planned, &e.ty)?),
                requires_replace: out.requires_replace.iter().map(convert::path).collect(),
                planned_private: out.private,
                diagnostics: diags(&out.diags),
                planned_identity,
                ..Default::default()
            })
        }
        .await;
        debug!(target: "cxflow::plugin", resource = r.type_name.as_str(), "PlanResourceChange");
        Ok(Response::new(res.unwrap_or_else(|d| pb::plan_resource_change::Response { diagnostics: err_diags(d), ..Default::default() })))
    }

    async fn apply_resource_change(&self, r: Request<pb::apply_resource_change::Request>) -> Result<Response<pb::apply_resource_change::Response>, Status> {
        let r = r.into_inner();
        let e = match self.resource(&r.type_name) {
            Ok(e) => e,
            Err(d) => return Ok(Response::new(pb::apply_resource_change::Response { diagnostics: d, ..Default::default() })),
        };
        let res = async {
            let prior = decode(r.prior_state.as_ref(), &e.ty)?;
            let planned = decode(r.planned_state.as_ref(), &e.ty)?;
            let config = decode(r.config.as_ref(), &e.ty)?;
            let client = self.client().await?;
            // Apply is not raced against StopProvider: the resource sees the
            // cancellation in its context and returns what it has done so far.
            let req = ApplyRequest { prior: prior.clone(), planned, config, planned_private: r.planned_private.clone(), ctx: self.ctx() };
            let out = e.imp.apply(&client, req).await;
            let mut new_state = out.new_state;
            schema::null_write_only(&e.schema.block, &mut new_state);
            let mut d = out.diags;
            let new_identity = Self::identity_of(e, &client, &new_state).await.unwrap_or_else(|x| {
                d.extend(x);
                None
            });
            Ok::<_, Diags>(pb::apply_resource_change::Response {
                new_state: Some(encode(&new_state, &e.ty)?),
                private: out.private,
                diagnostics: diags(&d),
                new_identity,
                ..Default::default()
            })
        }
        .await;
        info!(target: "cxflow::plugin", resource = r.type_name.as_str(), ok = res.as_ref().map(|x| x.diagnostics.is_empty()).unwrap_or(false), "ApplyResourceChange done");
        Ok(Response::new(res.unwrap_or_else(|d| pb::apply_resource_change::Response {
            // Nothing was attempted: hand Terraform back the prior state.
            new_state: r.prior_state,
            diagnostics: err_diags(d),
            ..Default::default()
        })))
    }

    async fn import_resource_state(&self, r: Request<pb::import_resource_state::Request>) -> Result<Response<pb::import_resource_state::Response>, Status> {
        let r = r.into_inner();
        let e = match self.resource(&r.type_name) {
            Ok(e) => e,
            Err(d) => return Ok(Response::new(pb::import_resource_state::Response { diagnostics: d, ..Default::default() })),
        };
        let res = async {
            let client = self.client().await?;
            let id = self.import_id(e, &client, &r).await?;
            let mut state = self.cancellable(e.imp.import(&client, &id, self.ctx())).await?;
            schema::null_write_only(&e.schema.block, &mut state);
            let identity = Self::identity_of(e, &client, &state).await?;
            Ok::<_, Diags>(pb::import_resource_state::ImportedResource { type_name: r.type_name.clone(), state: Some(encode(&state, &e.ty)?), identity, ..Default::default() })
        }
        .await;
        Ok(Response::new(match res {
            Ok(imp) => pb::import_resource_state::Response { imported_resources: vec![imp], ..Default::default() },
            Err(d) => pb::import_resource_state::Response { diagnostics: err_diags(d), ..Default::default() },
        }))
    }

    async fn move_resource_state(&self, r: Request<pb::move_resource_state::Request>) -> Result<Response<pb::move_resource_state::Response>, Status> {
        let name = r.into_inner().target_type_name;
        Ok(Response::new(pb::move_resource_state::Response {
            diagnostics: vec![convert::diag(&Diagnostic::error("Move not supported", format!("{name} does not accept state moved from another resource type.")))],
            ..Default::default()
        }))
    }

    async fn read_data_source(&self, r: Request<pb::read_data_source::Request>) -> Result<Response<pb::read_data_source::Response>, Status> {
        let r = r.into_inner();
        let Some(e) = self.data_sources.get(&r.type_name) else {
            return Ok(Response::new(pb::read_data_source::Response { diagnostics: unknown_type("data source", &r.type_name), ..Default::default() }));
        };
        let res = async {
            let cfg = decode(r.config.as_ref(), &e.ty)?;
            if !cfg.is_wholly_known() {
                // Nothing to read yet: the computed attributes are unknown
                // until the configuration is known, and a client that allows
                // deferral is told why.
                let mut v = cfg;
                schema::mark_computed_unknown(&e.schema.block, &mut v);
                let deferred = caps(r.client_capabilities.as_ref()).deferral_allowed.then_some(pb::Deferred { reason: pb::deferred::Reason::ResourceConfigUnknown as i32 });
                return Ok::<_, Diags>((encode(&v, &e.ty)?, deferred));
            }
            // Values known only now (validate saw them unknown) are checked before any AWS call.
            let d = Self::value_diags(e, &cfg, |ds, c| ds.validate(c));
            if d.has_errors() {
                return Err(d);
            }
            let client = self.client().await?;
            let v = self.cancellable(e.imp.read(&client, cfg, self.ctx())).await?;
            Ok((encode(&v, &e.ty)?, None))
        }
        .await;
        debug!(target: "cxflow::plugin", data_source = r.type_name.as_str(), ok = res.is_ok(), "ReadDataSource");
        Ok(Response::new(match res {
            Ok((state, deferred)) => pb::read_data_source::Response { state: Some(state), deferred, diagnostics: Vec::new() },
            Err(d) => pb::read_data_source::Response { diagnostics: err_diags(d), ..Default::default() },
        }))
    }

    async fn generate_resource_config(&self, r: Request<pb::generate_resource_config::Request>) -> Result<Response<pb::generate_resource_config::Response>, Status> {
        let name = r.into_inner().type_name;
        Ok(Response::new(pb::generate_resource_config::Response {
            config: None,
            diagnostics: vec![convert::diag(&Diagnostic::error(
                "Config generation not supported",
                format!("{name} does not generate configuration; Terraform's own generation applies."),
            ))],
        }))
    }

    async fn validate_ephemeral_resource_config(
        &self,
        r: Request<pb::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<pb::validate_ephemeral_resource_config::Response>, Status> {
        let r = r.into_inner();
        let d = match self.ephemerals.get(&r.type_name) {
            None => return Ok(Response::new(pb::validate_ephemeral_resource_config::Response { diagnostics: unknown_type("ephemeral resource", &r.type_name) })),
            Some(e) => Self::config_diags(e, r.config.as_ref(), |x, c| x.validate(c)),
        };
        Ok(Response::new(pb::validate_ephemeral_resource_config::Response { diagnostics: diags(&d) }))
    }

    async fn open_ephemeral_resource(&self, r: Request<pb::open_ephemeral_resource::Request>) -> Result<Response<pb::open_ephemeral_resource::Response>, Status> {
        let r = r.into_inner();
        let Some(e) = self.ephemerals.get(&r.type_name) else {
            return Ok(Response::new(pb::open_ephemeral_resource::Response { diagnostics: unknown_type("ephemeral resource", &r.type_name), ..Default::default() }));
        };
        let res = async {
            let cfg = decode(r.config.as_ref(), &e.ty)?;
            let client = self.client().await?;
            let v = self.cancellable(e.imp.open(&client, cfg, self.ctx())).await?;
            encode(&v, &e.ty)
        }
        .await;
        Ok(Response::new(match res {
            Ok(v) => pb::open_ephemeral_resource::Response { result: Some(v), ..Default::default() },
            Err(d) => pb::open_ephemeral_resource::Response { diagnostics: err_diags(d), ..Default::default() },
        }))
    }

    async fn renew_ephemeral_resource(&self, _r: Request<pb::renew_ephemeral_resource::Request>) -> Result<Response<pb::renew_ephemeral_resource::Response>, Status> {
        Ok(Response::new(Default::default()))
    }

    async fn close_ephemeral_resource(&self, _r: Request<pb::close_ephemeral_resource::Request>) -> Result<Response<pb::close_ephemeral_resource::Response>, Status> {
        Ok(Response::new(Default::default()))
    }

    type ListResourceStream = EventStream<pb::list_resource::Event>;
    async fn list_resource(&self, r: Request<pb::list_resource::Request>) -> Result<Response<Self::ListResourceStream>, Status> {
        let r = r.into_inner();
        let failed = |d: Vec<pb::Diagnostic>| -> Result<Response<Self::ListResourceStream>, Status> {
            Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(pb::list_resource::Event { diagnostic: d, ..Default::default() })]))))
        };
        // A list yields objects of the managed resource of the same name, encoded with its schemas.
        let (Some(l), Some(res)) = (self.lists.get(&r.type_name), self.resources.get(&r.type_name)) else {
            return failed(unknown_type("list resource", &r.type_name));
        };
        let Some(id_schema) = &res.identity else {
            return failed(err_diags(Diagnostic::error("Internal error in the provider", format!("{} has a list resource but no resource identity.", r.type_name)).into()));
        };
        let res = async {
            let cfg = decode(r.config.as_ref(), &l.ty)?;
            // Values known only now are checked before any AWS call.
            let d = Self::value_diags(l, &cfg, |x, c| x.validate(c));
            if d.has_errors() {
                return Err(d);
            }
            let client = self.client().await?;
            let items = self.cancellable(l.imp.list(&client, cfg, r.include_resource_object, r.limit, self.ctx())).await?;
            let limit = usize::try_from(r.limit).ok().filter(|n| *n > 0).unwrap_or(usize::MAX);
            items.into_iter().take(limit).map(|i| Self::list_event(res, id_schema, i, r.include_resource_object)).collect::<Result<Vec<_>, Diags>>()
        }
        .await;
        info!(target: "cxflow::plugin", list = r.type_name.as_str(), found = res.as_ref().map(Vec::len).unwrap_or(0), "ListResource");
        match res {
            Ok(events) => Ok(Response::new(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))),
            Err(d) => failed(err_diags(d)),
        }
    }

    async fn validate_list_resource_config(&self, r: Request<pb::validate_list_resource_config::Request>) -> Result<Response<pb::validate_list_resource_config::Response>, Status> {
        let r = r.into_inner();
        let Some(e) = self.lists.get(&r.type_name) else {
            return Ok(Response::new(pb::validate_list_resource_config::Response { diagnostics: unknown_type("list resource", &r.type_name) }));
        };
        let d = Self::config_diags(e, r.config.as_ref(), |x, c| x.validate(c));
        debug!(target: "cxflow::plugin", list = r.type_name.as_str(), diagnostics = d.0.len(), "ValidateListResourceConfig");
        Ok(Response::new(pb::validate_list_resource_config::Response { diagnostics: diags(&d) }))
    }

    async fn get_functions(&self, _r: Request<pb::get_functions::Request>) -> Result<Response<pb::get_functions::Response>, Status> {
        Ok(Response::new(pb::get_functions::Response { functions: self.functions.definitions(), diagnostics: Vec::new() }))
    }

    async fn call_function(&self, r: Request<pb::call_function::Request>) -> Result<Response<pb::call_function::Response>, Status> {
        Ok(Response::new(self.functions.call(r.into_inner())))
    }

    async fn validate_state_store_config(&self, r: Request<pb::validate_state_store::Request>) -> Result<Response<pb::validate_state_store::Response>, Status> {
        let name = r.into_inner().type_name;
        Ok(Response::new(pb::validate_state_store::Response { diagnostics: unknown_type("state store", &name) }))
    }

    async fn configure_state_store(&self, r: Request<pb::configure_state_store::Request>) -> Result<Response<pb::configure_state_store::Response>, Status> {
        let name = r.into_inner().type_name;
        Ok(Response::new(pb::configure_state_store::Response { diagnostics: unknown_type("state store", &name), capabilities: None }))
    }

    type ReadStateBytesStream = EventStream<pb::read_state_bytes::Response>;
    async fn read_state_bytes(&self, r: Request<pb::read_state_bytes::Request>) -> Result<Response<Self::ReadStateBytesStream>, Status> {
        let name = r.into_inner().type_name;
        let ev = pb::read_state_bytes::Response { diagnostics: unknown_type("state store", &name), ..Default::default() };
        Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(ev)]))))
    }

    async fn write_state_bytes(&self, _r: Request<Streaming<pb::write_state_bytes::RequestChunk>>) -> Result<Response<pb::write_state_bytes::Response>, Status> {
        Ok(Response::new(pb::write_state_bytes::Response { diagnostics: unknown_type("state store", "") }))
    }

    async fn lock_state(&self, r: Request<pb::lock_state::Request>) -> Result<Response<pb::lock_state::Response>, Status> {
        let name = r.into_inner().type_name;
        Ok(Response::new(pb::lock_state::Response { lock_id: String::new(), diagnostics: unknown_type("state store", &name) }))
    }

    async fn unlock_state(&self, r: Request<pb::unlock_state::Request>) -> Result<Response<pb::unlock_state::Response>, Status> {
        let name = r.into_inner().type_name;
        Ok(Response::new(pb::unlock_state::Response { diagnostics: unknown_type("state store", &name) }))
    }

    async fn get_states(&self, r: Request<pb::get_states::Request>) -> Result<Response<pb::get_states::Response>, Status> {
        let name = r.into_inner().type_name;
        Ok(Response::new(pb::get_states::Response { state_id: vec![], diagnostics: unknown_type("state store", &name) }))
    }

    async fn delete_state(&self, r: Request<pb::delete_state::Request>) -> Result<Response<pb::delete_state::Response>, Status> {
        let name = r.into_inner().type_name;
        Ok(Response::new(pb::delete_state::Response { diagnostics: unknown_type("state store", &name) }))
    }

    async fn plan_action(&self, r: Request<pb::plan_action::Request>) -> Result<Response<pb::plan_action::Response>, Status> {
        let r = r.into_inner();
        let Some(e) = self.actions.get(&r.action_type) else {
            return Ok(Response::new(pb::plan_action::Response { diagnostics: unknown_type("action", &r.action_type), deferred: None }));
        };
        // Validation again, now with the values plan knows; no AWS calls.
        let d = Self::action_diags(e, r.config.as_ref());
        Ok(Response::new(pb::plan_action::Response { diagnostics: diags(&d), deferred: None }))
    }

    type InvokeActionStream = EventStream<pb::invoke_action::Event>;
    async fn invoke_action(&self, r: Request<pb::invoke_action::Request>) -> Result<Response<Self::InvokeActionStream>, Status> {
        use pb::invoke_action::event::{Completed, Progress as Step, Type};
        let r = r.into_inner();
        let completed = |d: Vec<pb::Diagnostic>| pb::invoke_action::Event { r#type: Some(Type::Completed(Completed { diagnostics: d })) };
        let Some(e) = self.actions.get(&r.action_type) else {
            return Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(completed(unknown_type("action", &r.action_type)))]))));
        };
        let start = async { Ok::<_, Diags>((decode(r.config.as_ref(), &e.ty)?, self.client().await?)) }.await;
        let (cfg, client) = match start {
            Ok(x) => x,
            Err(d) => return Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(completed(err_diags(d)))])))),
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<pb::invoke_action::Event>();
        let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let imp = e.imp.clone();
        let ctx = self.ctx();
        let name = r.action_type.clone();
        let events = tx.clone();
        // Progress messages are forwarded as they come; Completed goes last.
        let forward = tokio::spawn(async move {
            while let Some(m) = prx.recv().await {
                let _ = events.send(pb::invoke_action::Event { r#type: Some(Type::Progress(Step { message: m })) });
            }
        });
        tokio::spawn(async move {
            let d = imp.invoke(&client, cfg, &Progress::new(ptx), ctx).await;
            let _ = forward.await;
            info!(target: "cxflow::plugin", action = name.as_str(), ok = !d.has_errors(), "InvokeAction done");
            let _ = tx.send(completed(diags(&d)));
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(Ok))))
    }

    async fn validate_action_config(&self, r: Request<pb::validate_action_config::Request>) -> Result<Response<pb::validate_action_config::Response>, Status> {
        let r = r.into_inner();
        let Some(e) = self.actions.get(&r.type_name) else {
            return Ok(Response::new(pb::validate_action_config::Response { diagnostics: unknown_type("action", &r.type_name) }));
        };
        let d = Self::action_diags(e, r.config.as_ref());
        Ok(Response::new(pb::validate_action_config::Response { diagnostics: diags(&d) }))
    }

    async fn stop_provider(&self, _r: Request<pb::stop_provider::Request>) -> Result<Response<pb::stop_provider::Response>, Status> {
        info!(target: "cxflow::plugin", "StopProvider: cancelling in-flight work");
        let mut guard = self.stop.lock().unwrap();
        guard.cancel();
        // Later calls (Terraform may still ask for state) get a fresh token.
        *guard = CancellationToken::new();
        Ok(Response::new(pb::stop_provider::Response { error: String::new() }))
    }
}

fn server_caps() -> pb::ServerCapabilities {
    pb::ServerCapabilities { plan_destroy: true, get_provider_schema_optional: false, move_resource_state: false, generate_resource_config: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Attribute, Block};

    /// Stand-in provider type for calling the service's associated functions.
    struct Nothing;
    #[tonic::async_trait]
    impl Provider for Nothing {
        type Client = ();
        fn type_name(&self) -> &'static str {
            "nothing"
        }
        fn schema(&self) -> Schema {
            Schema::default()
        }
        async fn configure(&self, _c: Value, _v: &str, _x: Ctx) -> Result<(), Diags> {
            Ok(())
        }
        fn resources(&self) -> Vec<Arc<dyn Resource<()>>> {
            Vec::new()
        }
    }

    #[test]
    fn write_only_values_are_refused_without_client_support() {
        let schema = Schema::new(0, Block::new(vec![Attribute::new("secrets_wo", Type::map(Type::String)).optional().write_only()]));
        let with = Value::Object([("secrets_wo".to_string(), Value::Map([("k".to_string(), Value::string("v"))].into()))].into());
        let without = Value::Object([("secrets_wo".to_string(), Value::Null)].into());
        // A Terraform older than 1.11 sends no write_only_attributes_allowed capability.
        let old = ClientCaps::default();
        let d = ProviderService::<Nothing>::check_write_only(&schema, &with, old);
        assert!(d.has_errors());
        assert_eq!(d.0[0].path.as_ref().map(|p| p.to_string()).as_deref(), Some("secrets_wo"));
        assert!(d.0[0].summary.contains("1.11"));
        assert!(ProviderService::<Nothing>::check_write_only(&schema, &without, old).is_empty());
        let new = ClientCaps { write_only_attributes_allowed: true, ..Default::default() };
        assert!(ProviderService::<Nothing>::check_write_only(&schema, &with, new).is_empty());
    }
}
