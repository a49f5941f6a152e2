//! Composite resources: the Terraform side every composite shares. A composite
//! implements [`Composite`] — its schema, validation, the graph of children
//! for a configuration, and how outputs follow from the children — and
//! [`CompositeResource`] turns it into a framework `Resource` with plan,
//! apply (partial state on failure), destroy, refresh with per-child drift,
//! and import.
//!
//! State carries two standard attributes: `children` (child key → identity,
//! see [`Record`]) and `drift` (child key → why it needs repair).

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Graph, Owner, PlanSummary, Record, RunOpts};
use crate::framework::provider::{ApplyRequest, ApplyResponse, Ctx, PlanRequest, PlanResponse, ReadResponse, Resource};
use crate::framework::{Attribute, Diagnostic, Diags, Schema, Type, Value, schema, typed};

/// Why a child is listed in `drift` after an apply that stopped early.
pub const UNFINISHED: &str = "the last apply stopped before this child was brought up to date";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// The `children` and `drift` attributes every composite has.
pub fn standard_attributes() -> Vec<Attribute> {
    vec![
        Attribute::new("children", Type::map(Type::String))
            .computed()
            .describe("Every AWS object this resource owns: child key → identity (ARN, ID or name). Lets the provider finish, repair or clean up after any interruption."),
        Attribute::new("drift", Type::map(Type::String))
            .computed()
            .describe("Children found changed out of band, or left unfinished by an interrupted apply: child key → reason. The next apply repairs exactly these."),
    ]
}

/// What a plan can promise about children's identities.
pub struct PlannedChildren<'a, E: ?Sized + Sync> {
    pub summary: &'a PlanSummary,
    pub graph: &'a Graph<E>,
    pub record: &'a Record,
}

impl<E: ?Sized + Sync> PlannedChildren<'_, E> {
    /// Null when not wanted, the recorded identity when it stays, the
    /// predictable one when it is created, else unknown.
    pub fn identity(&self, key: &str) -> Value {
        let Some(node) = self.graph.node(key) else { return Value::Unknown };
        if !node.wanted() {
            return Value::Null;
        }
        if self.summary.create.contains(key) {
            return node.planned_identity().map(Value::string).unwrap_or(Value::Unknown);
        }
        if self.summary.new_identity.contains(key) {
            return Value::Unknown;
        }
        self.record.get(key).map(Value::string).unwrap_or(Value::Unknown)
    }
}

/// A composite resource over environment `E` (the AWS client holder).
#[async_trait]
pub trait Composite<E: Send + Sync + 'static>: Send + Sync + 'static {
    /// The typed object: configuration and computed attributes, including
    /// `children: Option<BTreeMap<String, String>>` and `drift`.
    type State: DeserializeOwned + Serialize + Send + Sync;

    const TYPE_NAME: &'static str;

    fn schema() -> Schema;
    fn validate(config: &Value) -> Diags;

    /// Fill optional+computed attributes the configuration left unset.
    fn fill_defaults(_planned: &mut Value) {}

    /// Computed attributes that follow from configuration alone (ids, names,
    /// URLs), set during plan and kept at apply.
    fn derived(_planned: &mut Value) {}

    /// Every child this configuration can have, wanted or not.
    async fn graph(state: &Self::State, env: &E) -> Result<Graph<E>, Diags>;

    fn children(state: &Self::State) -> Record;
    fn drift(state: &Self::State) -> BTreeMap<String, String>;
    fn owner(state: &Self::State) -> Owner;
    fn import_hint(state: &Self::State) -> String;
    fn timeout(state: &Self::State, op: Op) -> Duration;

    /// Computed outputs at plan time.
    fn planned_outputs(planned: &mut Value, children: &PlannedChildren<'_, E>);
    /// Computed outputs from the children that exist (apply, refresh, import).
    async fn outputs(env: &E, state: &mut Value, typed: &Self::State, record: &Record);

    /// The configuration of an existing deployment, read from AWS (for import).
    /// The driver then finds every child by adopting through the graph.
    async fn import_config(_env: &E, id: &str) -> Result<Self::State, Diags> {
        Err(Diagnostic::error("Import not supported", format!("{} cannot import {id:?}.", Self::TYPE_NAME)).into())
    }
}

/// Find every child of `graph` that already exists and carries our ownership
/// tag, in dependency order (import). An object under a child's name that
/// belongs to someone else is an error.
pub async fn adopt_all<E: ?Sized + Sync>(env: &E, graph: &Graph<E>, ctx: &Ctx, timeout: Duration) -> Result<Record, Diags> {
    let mut record = Record::new();
    let deadline = std::time::Instant::now() + timeout;
    for key in graph.keys_in_order() {
        let Some(node) = graph.node(key) else { continue };
        if !node.wanted() {
            continue;
        }
        let deps = node.deps().iter().filter_map(|d| record.get(d).map(|id| (d.to_string(), id.to_string()))).collect();
        let cx = super::Cx { deps, cancel: &ctx.cancel, deadline };
        match node.adopt(env, &cx).await {
            Ok(super::Found::Owned(id)) => record.set(key, id),
            Ok(super::Found::None) => {}
            Ok(super::Found::Foreign(why)) => return Err(Diagnostic::error("Cannot import", format!("{}: {why}", node.describe())).into()),
            Err(e) => return Err(Diagnostic::error("Import failed", format!("{}: {e}", node.describe())).into()),
        }
    }
    Ok(record)
}

/// A child the previous configuration had and the new one drops (an
/// environment removed from a map): kept in the graph, unwanted, so that the
/// engine plans and performs its deletion in dependency order.
struct Removed<E: ?Sized + Sync>(Box<dyn super::Node<E>>);

#[async_trait]
impl<E: ?Sized + Sync> super::Node<E> for Removed<E> {
    fn key(&self) -> &str {
        self.0.key()
    }
    fn deps(&self) -> Vec<&str> {
        self.0.deps()
    }
    fn wanted(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn spec(&self) -> serde_json::Value {
        self.0.spec()
    }
    async fn create(&self, env: &E, cx: &super::Cx<'_>) -> Result<super::Made, super::NodeError> {
        self.0.create(env, cx).await
    }
    async fn read(&self, env: &E, id: &str, cx: &super::Cx<'_>) -> Result<super::Observed, super::NodeError> {
        self.0.read(env, id, cx).await
    }
    async fn update(&self, env: &E, id: &str, cx: &super::Cx<'_>) -> Result<super::Made, super::NodeError> {
        self.0.update(env, id, cx).await
    }
    async fn delete(&self, env: &E, id: &str, cx: &super::Cx<'_>) -> Result<(), super::NodeError> {
        self.0.delete(env, id, cx).await
    }
}

/// The desired graph plus, as unwanted nodes, every recorded child that only
/// the prior configuration's graph knows.
fn with_removed<E: ?Sized + Sync + 'static>(desired: Graph<E>, prior: Option<Graph<E>>, record: &Record) -> Result<Graph<E>, Diags> {
    let Some(prior) = prior else { return Ok(desired) };
    let recorded: BTreeSet<&str> = record.entries().map(|(_, key, _)| key).collect();
    let mut extra: Vec<Box<dyn super::Node<E>>> = Vec::new();
    for node in prior.nodes {
        if desired.node(node.key()).is_none() && recorded.contains(node.key()) {
            extra.push(Box::new(Removed(node)));
        }
    }
    if extra.is_empty() {
        return Ok(desired);
    }
    let mut nodes = desired.nodes;
    nodes.extend(extra);
    Graph::new(nodes).map_err(|e| Diagnostic::error("Internal error in the provider", e.to_string()).into())
}

/// Adapts a [`Composite`] to the framework's `Resource` trait.
pub struct CompositeResource<T>(PhantomData<T>);

impl<T> CompositeResource<T> {
    pub fn new() -> Self {
        CompositeResource(PhantomData)
    }
}

impl<T> Default for CompositeResource<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Replace unknowns with null (typed structs see unknown configuration as unset).
pub fn known_or_null(v: &Value) -> Value {
    v.known_or_null()
}

fn computed_only(s: &Schema) -> Vec<String> {
    s.block.attributes.iter().filter(|a| a.computed && !a.optional).map(|a| a.name.clone()).collect()
}

/// Whether every configuration attribute (computed-only ones aside) is known.
fn config_known(s: &Schema, v: &Value) -> bool {
    let mut c = v.clone();
    for a in computed_only(s) {
        c.set_attr(&a, Value::Null);
    }
    c.is_wholly_known()
}

fn map_value(m: BTreeMap<String, String>) -> Value {
    Value::Map(m.into_iter().map(|(k, v)| (k, Value::string(v))).collect())
}

impl<T> CompositeResource<T> {
    fn opts<E: Send + Sync + 'static>(st: &T::State, ctx: &Ctx, op: Op) -> RunOpts
    where
        T: Composite<E>,
    {
        RunOpts::new(T::owner(st), ctx.cancel.clone(), T::timeout(st, op)).import_hint(T::import_hint(st))
    }

    async fn finish<E: Send + Sync + 'static>(env: &E, mut st: Value, typed_st: &T::State, record: &Record, drift: BTreeMap<String, String>) -> Value
    where
        T: Composite<E>,
    {
        T::derived(&mut st);
        T::outputs(env, &mut st, typed_st, record).await;
        st.set_attr("children", record.to_value());
        st.set_attr("drift", map_value(drift));
        st
    }

    async fn destroy_all<E: Send + Sync + 'static>(env: &E, prior: Value, ctx: &Ctx) -> ApplyResponse
    where
        T: Composite<E>,
    {
        let cur: T::State = match typed::from_value(&known_or_null(&prior)) {
            Ok(c) => c,
            Err(d) => return ApplyResponse::partial(prior, d),
        };
        let graph = match T::graph(&cur, env).await {
            Ok(g) => g,
            Err(d) => return ApplyResponse::partial(prior, d),
        };
        let out = super::destroy(env, &graph, T::children(&cur), &Self::opts(&cur, ctx, Op::Delete)).await;
        if out.ok() {
            return ApplyResponse::ok(Value::Null);
        }
        let st = Self::finish(env, prior, &cur, &out.record, T::drift(&cur)).await;
        ApplyResponse::partial(st, out.diags)
    }
}

#[async_trait]
impl<E: Send + Sync + 'static, T: Composite<E>> Resource<E> for CompositeResource<T> {
    fn type_name(&self) -> &'static str {
        T::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        T::schema()
    }

    fn validate(&self, config: &Value) -> Diags {
        T::validate(config)
    }

    async fn plan(&self, env: &E, req: PlanRequest) -> PlanResponse {
        let sch = T::schema();
        let mut resp = PlanResponse { private: req.prior_private.clone(), ..Default::default() };
        if req.proposed.is_null() {
            resp.planned = Value::Null;
            return resp;
        }
        let mut planned = req.proposed.clone();
        T::fill_defaults(&mut planned);
        let creating = req.prior.is_null();
        if !creating {
            resp.requires_replace = schema::replace_paths(&sch.block, &req.prior, &planned);
        }
        let fresh = creating || !resp.requires_replace.is_empty();
        T::derived(&mut planned);
        planned.set_attr("drift", Value::Map(BTreeMap::new()));

        let prior: Option<T::State> = if fresh { None } else { typed::from_value(&known_or_null(&req.prior)).ok() };
        let record = prior.as_ref().map(T::children).unwrap_or_default();
        let drifted: BTreeSet<String> = prior.as_ref().map(T::drift).unwrap_or_default().into_keys().collect();

        let mut summary = None;
        if config_known(&sch, &planned) {
            match typed::from_value::<T::State>(&known_or_null(&planned)) {
                Ok(cfg) => match T::graph(&cfg, env).await {
                    Ok(g) => {
                        let pg = match &prior {
                            Some(p) => T::graph(p, env).await.ok(),
                            None => None,
                        };
                        let removed_from = match &prior {
                            Some(p) => T::graph(p, env).await.ok(),
                            None => None,
                        };
                        let g = match with_removed(g, removed_from, &record) {
                            Ok(g) => g,
                            Err(d) => {
                                resp.diags.extend(d);
                                resp.planned = planned;
                                return resp;
                            }
                        };
                        let s = super::plan(&g, pg.as_ref(), &record, &drifted);
                        tracing::debug!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, create = ?s.create, update = ?s.update, delete = ?s.delete, "planned children");
                        summary = Some((s, g));
                    }
                    Err(d) => resp.diags.extend(d),
                },
                Err(d) => resp.diags.extend(d),
            }
        }
        match &summary {
            Some((s, g)) => {
                let pc = PlannedChildren { summary: s, graph: g, record: &record };
                T::planned_outputs(&mut planned, &pc);
                let changes = s.changes_record() || record.has_superseded();
                planned.set_attr("children", if changes { Value::Unknown } else { record.to_value() });
            }
            None => {
                // Unknown configuration: every provider-computed value may change.
                for a in computed_only(&sch).iter().filter(|a| *a != "drift") {
                    planned.set_attr(a, Value::Unknown);
                }
                T::derived(&mut planned);
            }
        }
        resp.planned = planned;
        resp
    }

    async fn apply(&self, env: &E, req: ApplyRequest) -> ApplyResponse {
        if req.planned.is_null() {
            return Self::destroy_all(env, req.prior, &req.ctx).await;
        }
        let fail = |prior: Value, d: Diags| ApplyResponse::partial(prior, d);
        let desired: T::State = match typed::from_value(&known_or_null(&req.planned)) {
            Ok(d) => d,
            Err(d) => return fail(req.prior, d),
        };
        let creating = req.prior.is_null();
        let prior: Option<T::State> = if creating {
            None
        } else {
            match typed::from_value(&known_or_null(&req.prior)) {
                Ok(p) => Some(p),
                Err(d) => return fail(req.prior, d),
            }
        };
        let graph = match T::graph(&desired, env).await {
            Ok(g) => g,
            Err(d) => return fail(req.prior, d),
        };
        let prior_graph = match &prior {
            Some(p) => T::graph(p, env).await.ok(),
            None => None,
        };
        let record = prior.as_ref().map(T::children).unwrap_or_default();
        let removed_from = match &prior {
            Some(p) => T::graph(p, env).await.ok(),
            None => None,
        };
        let graph = match with_removed(graph, removed_from, &record) {
            Ok(g) => g,
            Err(d) => return fail(req.prior, d),
        };
        let drifted: BTreeSet<String> = prior.as_ref().map(T::drift).unwrap_or_default().into_keys().collect();
        let opts = Self::opts(&desired, &req.ctx, if creating { Op::Create } else { Op::Update });
        tracing::info!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, owner = opts.owner.tag_value(), critical_path_len = graph.critical_path_len(), "applying");
        let out = super::apply(env, &graph, prior_graph.as_ref(), record, &drifted, &opts).await;
        if creating && out.record.is_empty() {
            return ApplyResponse { new_state: Value::Null, diags: out.diags, ..Default::default() };
        }
        let drift: BTreeMap<String, String> = out.unfinished.iter().filter(|k| out.record.get(k).is_some()).map(|k| (k.clone(), UNFINISHED.to_string())).collect();
        let st = Self::finish(env, known_or_null(&req.planned), &desired, &out.record, drift).await;
        if out.ok() { ApplyResponse::ok(st) } else { ApplyResponse::partial(st, out.diags) }
    }

    async fn read(&self, env: &E, state: Value, private: Vec<u8>, ctx: Ctx) -> ReadResponse {
        let fail = |state: Value, d: Diags| ReadResponse { new_state: state, private: private.clone(), diags: d };
        let cur: T::State = match typed::from_value(&known_or_null(&state)) {
            Ok(c) => c,
            Err(d) => return fail(state, d),
        };
        let graph = match T::graph(&cur, env).await {
            Ok(g) => g,
            Err(d) => return fail(state, d),
        };
        let record = T::children(&cur);
        let mut opts = Self::opts(&cur, &ctx, Op::Update);
        opts.deadline = std::time::Instant::now() + Duration::from_secs(300);
        let r = super::refresh(env, &graph, record.clone(), &opts).await;
        if r.diags.has_errors() {
            return fail(state, r.diags);
        }
        if r.record.is_empty() && !record.is_empty() {
            tracing::info!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, "every child is gone: the resource no longer exists");
            return ReadResponse { new_state: Value::Null, private, diags: r.diags };
        }
        // Unfinished children stay marked until an apply completes them.
        let mut drift: BTreeMap<String, String> = T::drift(&cur).into_iter().filter(|(k, v)| v == UNFINISHED && r.record.get(k).is_some()).collect();
        drift.extend(r.drift);
        let st = Self::finish(env, state, &cur, &r.record, drift).await;
        ReadResponse { new_state: st, private, diags: r.diags }
    }

    async fn import(&self, env: &E, id: &str, ctx: Ctx) -> Result<Value, Diags> {
        let cfg = T::import_config(env, id).await?;
        let graph = T::graph(&cfg, env).await?;
        let record = adopt_all(env, &graph, &ctx, Duration::from_secs(300)).await?;
        if record.is_empty() {
            return Err(Diagnostic::error("Nothing to import", format!("No AWS object owned by {} exists.", T::owner(&cfg))).into());
        }
        let mut st = typed::to_value(&cfg, &T::schema().value_type())?;
        T::fill_defaults(&mut st);
        Ok(Self::finish(env, st, &cfg, &record, BTreeMap::new()).await)
    }
}
