//! The composite driver: the Terraform side every composite shares. A
//! composite implements [`Composite`] — its own schema and checks, the graph
//! of children for a configuration, how computed attributes follow from the
//! children, and how a configuration follows from observed children (import)
//! — and [`CompositeResource`] turns it into a framework `Resource` with plan,
//! apply (partial state on failure), destroy, refresh with per-field drift,
//! import and state upgrades.
//!
//! Every composite has the same standard attributes, added here: `id`,
//! `tags`, `tags_all` (the provider's `default_tags` merged under `tags`: a
//! change to either re-tags every taggable child), `children` (the record),
//! `drift` and a `timeouts` block.
//!
//! Private state carries what the last refresh observed and the outputs
//! children reported, so an update sends only what differs from what AWS
//! has, without reading it again.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Graph, Identity, Owner, PlanSummary, Record, RunOpts, Spec, Tags};
use crate::framework::check::{Check, MAX_DURATION_SECS};
use crate::framework::provider::{ApplyRequest, ApplyResponse, Ctx, PlanRequest, PlanResponse, ReadResponse, Resource};
use crate::framework::schema::{self, Block, NestedBlock, Nesting};
use crate::framework::{Attribute, Diagnostic, Diags, IdentitySchema, ResourceIdentity, Schema, Type, Value, typed};

/// Why a child is listed in `drift` after an apply that stopped early.
pub const UNFINISHED: &str = "the last apply stopped before this child was brought up to date";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// What a composite needs from its environment besides its own children.
#[async_trait]
pub trait Env: Send + Sync + 'static {
    /// The provider's `default_tags`.
    fn default_tags(&self) -> Tags;
    /// The account and region resource identities name.
    async fn scope(&self) -> Result<super::identity::Scope, Diags>;
}

/// What a graph is built from besides the configuration.
pub struct GraphCx<'a, E> {
    pub env: &'a E,
    pub owner: Owner,
    /// Tags for every taggable child: `tags_all`.
    pub tags: Tags,
}

/// Children that moved outside Terraform (see [`Composite::refresh_relinks`]).
#[derive(Default)]
pub struct Relinks {
    pub identities: BTreeMap<String, Identity>,
    pub attributes: Vec<(String, Value)>,
}

/// What is known about the children: identities, outputs they reported,
/// and what they looked like when last observed.
pub struct Kids<'a> {
    pub record: &'a Record,
    pub outputs: &'a BTreeMap<String, BTreeMap<String, String>>,
    pub observed: &'a BTreeMap<String, Spec>,
}

impl Kids<'_> {
    pub fn id(&self, key: &str) -> Option<String> {
        self.record.get(key).map(|i| i.id)
    }
    /// A value a child reported when it was made or updated, or showed when last observed.
    pub fn output(&self, key: &str, field: &str) -> Option<&str> {
        self.outputs.get(key).and_then(|o| o.get(field)).map(String::as_str).or_else(|| self.field(key, field).and_then(|v| v.as_str()))
    }
    pub fn observed(&self, key: &str) -> Option<&Spec> {
        self.observed.get(key)
    }
    /// A field of a child's observed spec.
    pub fn field(&self, key: &str, field: &str) -> Option<&serde_json::Value> {
        self.observed.get(key).and_then(|s| s.get(field))
    }
    pub fn str_field(&self, key: &str, field: &str) -> Option<String> {
        self.field(key, field).and_then(|v| v.as_str()).map(str::to_string)
    }
    /// The user's own tags on an observed child: its tags without the
    /// provider's default tags, the provider's ownership tags, AWS's tags and
    /// `Name` (which the provider sets on EC2 objects).
    pub fn user_tags(&self, key: &str, default_tags: &Tags) -> Tags {
        let Some(serde_json::Value::Object(t)) = self.field(key, "tags") else { return Tags::new() };
        t.iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .filter(|(k, v)| !k.starts_with("cxflow:") && !k.starts_with("aws:") && k != "Name" && default_tags.get(k) != Some(v))
            .collect()
    }
}

/// What a plan can promise about children's identities.
pub struct PlannedChildren<'a, E: ?Sized + Sync> {
    pub summary: &'a PlanSummary,
    pub graph: &'a Graph<E>,
    pub record: &'a Record,
    pub outputs: &'a BTreeMap<String, BTreeMap<String, String>>,
    pub observed: &'a BTreeMap<String, Spec>,
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
            return node.planned_identity().map(|i| Value::string(i.id)).unwrap_or(Value::Unknown);
        }
        if self.summary.new_identity.contains(key) {
            return Value::Unknown;
        }
        self.record.get(key).map(|i| Value::string(i.id)).unwrap_or(Value::Unknown)
    }
    /// An output a child reported, unless the apply will touch the child.
    pub fn output(&self, key: &str, field: &str) -> Value {
        if self.summary.touches(key) {
            return Value::Unknown;
        }
        let observed = self.observed.get(key).and_then(|s| s.get(field)).and_then(|v| v.as_str());
        self.outputs.get(key).and_then(|o| o.get(field)).map(String::as_str).or(observed).map(Value::string).unwrap_or(Value::Unknown)
    }
}

/// A composite resource over environment `E` (the AWS client holder).
#[async_trait]
pub trait Composite<E: Env>: Send + Sync + 'static {
    /// The typed configuration and computed attributes (standard ones may be left out).
    type State: DeserializeOwned + Serialize + Send + Sync;

    const TYPE_NAME: &'static str;
    /// Time limit of an operation when `timeouts` does not say.
    const DEFAULT_TIMEOUT: Duration;
    /// Attributes taken from the configuration when set there, else from a
    /// child's identity (a supplied role ARN, or the role this resource creates).
    const CONFIG_OR_CHILD: &'static [(&'static str, &'static str)] = &[];
    /// Extra time limits of the `timeouts` block (besides create, update, delete).
    const EXTRA_TIMEOUTS: &'static [&'static str] = &[];

    /// The resource's own attributes and blocks; the driver adds the standard ones.
    fn block() -> Block;
    /// Version of the stored state; raise it with [`Composite::upgrade`].
    fn schema_version() -> i64 {
        1
    }
    /// Checks across attributes (each attribute's own checks have run already).
    fn validate(_config: &Value) -> Diags {
        Diags::new()
    }
    /// Defaults that depend on other values (the schema's own defaults are filled first).
    fn plan_defaults(_planned: &mut Value) {}
    /// Computed attributes that follow from configuration alone.
    fn derived(_planned: &mut Value) {}
    /// Computed attributes plan looks up in AWS before the graph is built
    /// (an image tag's digest), with their warnings. Runs only when the
    /// configuration is wholly known; `prior` is null on create. The graph
    /// and apply see what it planned.
    async fn plan_lookups(_env: &E, _planned: &mut Value, _prior: &Value) -> Diags {
        Diags::new()
    }
    /// The name in the ownership tag after the type: `<cluster>/<service>`.
    fn owner_name(state: &Self::State) -> String;
    /// The `id` attribute, which is also the import ID.
    fn id(state: &Self::State) -> String;

    /// Every child this configuration can have, wanted or not.
    async fn graph(state: &Self::State, g: &GraphCx<'_, E>) -> Result<Graph<E>, Diags>;

    /// Computed attributes at plan time.
    fn planned_outputs(planned: &mut Value, children: &PlannedChildren<'_, E>);
    /// Computed attributes from the children (apply, refresh, import). No AWS calls.
    fn outputs(state: &mut Value, cfg: &Self::State, kids: &Kids<'_>);

    /// Import: the configuration an import ID names (enough to find the first children).
    fn import_seed(id: &str) -> Result<Self::State, Diags>;
    /// Import: the configuration the children found so far imply. It may
    /// look up only what no child observes (the hosted zone a domain is in,
    /// the services a cluster runs).
    async fn from_observed(env: &E, cfg: &Self::State, kids: &Kids<'_>) -> Result<Self::State, Diags>;
    /// Import: identities of children that other children's observations name
    /// (the task definition a service runs), used instead of looking them up.
    fn import_identities(_cfg: &Self::State, _kids: &Kids<'_>) -> BTreeMap<String, Identity> {
        BTreeMap::new()
    }
    /// Import: children that may be taken without the ownership tag, because
    /// the import ID names them (an ECS service made by hand) or the object
    /// named so refers to them as its own (the task definition revision that
    /// service runs). An object tagged for another owner is never taken.
    fn adopts_untagged(_key: &str) -> bool {
        false
    }
    /// Refresh: children whose identity moved to another object AWS shows
    /// this composite using (a task definition revision CI deployed, when the
    /// configuration leaves the image to CI), with the computed attributes
    /// that follow from the move. The record follows them, the state takes
    /// the attributes, and the children are observed afresh.
    async fn refresh_relinks(_env: &E, _cfg: &Self::State, _kids: &Kids<'_>) -> Result<Relinks, Diags> {
        Ok(Relinks::default())
    }
    /// Convert stored state from `version` to the current layout (JSON as Terraform stored it).
    fn upgrade(_version: i64, raw: serde_json::Value) -> serde_json::Value {
        raw
    }

    /// The resource identity besides `account_id` and `region`: attribute
    /// names with their descriptions, in the order of the `/`-separated parts
    /// of `id` (the import ID). Empty: the resource has no identity.
    fn identity() -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// Version of the identity's layout; raise it with [`Composite::upgrade_identity`].
    fn identity_version() -> i64 {
        0
    }
    /// Convert a stored identity from `version` to the current layout.
    fn upgrade_identity(_version: i64, raw: serde_json::Value) -> serde_json::Value {
        raw
    }
}

/// The standard attributes, in the order the docs list them.
fn standard_attributes() -> Vec<Attribute> {
    vec![
        Attribute::new("id", Type::String).computed().stable().describe("The import ID of this resource."),
        Attribute::new("tags", Type::map(Type::String))
            .optional()
            .check(Check::Tags)
            .describe("Tags for every AWS object this resource creates that can carry tags, merged over the provider's `default_tags`."),
        Attribute::new("tags_all", Type::map(Type::String)).computed().describe("The tags every taggable child carries: the provider's `default_tags` merged with `tags`."),
        Attribute::new("children", Type::map(Type::String)).computed().describe(
            "Every AWS object this resource owns: child key → identity (ARN, ID or name; further objects a child owns as `<key>.<part>`). Destroy and later applies work from this record.",
        ),
        Attribute::new("drift", Type::map(Type::String))
            .computed()
            .describe("Children found changed or deleted outside Terraform at the last refresh, or left unfinished by an interrupted apply: child key → what differs. The next apply repairs exactly these."),
    ]
}

fn timeouts_block(extra: &[&str], default: Duration) -> NestedBlock {
    let mins = default.as_secs() / 60;
    let mut attrs: Vec<Attribute> = ["create", "update", "delete"]
        .iter()
        .map(|op| Attribute::new(op, Type::String).optional().check(Check::Duration(MAX_DURATION_SECS)).describe(&format!("How long a {op} may take (default `{mins}m`).")))
        .collect();
    attrs.extend(extra.iter().map(|t| Attribute::new(t, Type::String).optional().check(Check::Duration(MAX_DURATION_SECS)).describe(&format!("How long the {t} step may take."))));
    NestedBlock::new("timeouts", Nesting::Single, Block::new(attrs).describe("Operation time limits. Waits (steady state, validation) count towards them."))
}

/// The schema of composite `T`: its own block plus the standard attributes.
pub fn schema_of<E: Env, T: Composite<E>>() -> Schema {
    let mut block = T::block();
    block.attributes.extend(standard_attributes());
    block.blocks.push(timeouts_block(T::EXTRA_TIMEOUTS, T::DEFAULT_TIMEOUT));
    Schema::new(T::schema_version(), block)
}

/// A time limit from a state's `timeouts` block (`op` or an extra one).
pub fn timeout_in(state: &Value, op: &str, default: Duration) -> Duration {
    state.get("timeouts").get(op).as_str().and_then(crate::framework::check::parse_duration).unwrap_or(default)
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Create => "create",
        Op::Update => "update",
        Op::Delete => "delete",
    }
}

/// `tags_all`: default tags under the resource's own.
fn merged_tags(default_tags: &Tags, own: &Value) -> Tags {
    let mut t = default_tags.clone();
    for (k, v) in own.entries().into_iter().flatten() {
        if let Some(s) = v.as_str() {
            t.insert(k.clone(), s.to_string());
        }
    }
    t
}

fn tags_value(t: &Tags) -> Value {
    Value::Map(t.iter().map(|(k, v)| (k.clone(), Value::string(v))).collect())
}

/// The tags a state's children carry: its `tags_all`, or (state written
/// before `tags_all` existed) the current merge.
fn tags_of(state: &Value, default_tags: &Tags) -> Tags {
    match state.get("tags_all").entries() {
        Some(m) => m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect(),
        None => merged_tags(default_tags, state.get("tags")),
    }
}

/// Private state: what the children looked like and reported last.
#[derive(Default, Serialize, serde::Deserialize)]
struct Private {
    #[serde(default)]
    observed: BTreeMap<String, Spec>,
    #[serde(default)]
    outputs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Private {
    fn decode(b: &[u8]) -> Private {
        serde_json::from_slice(b).unwrap_or_default()
    }
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    /// Forget children that are no longer recorded.
    fn retain(mut self, record: &Record) -> Private {
        self.observed.retain(|k, _| record.contains(k));
        self.outputs.retain(|k, _| record.contains(k));
        self
    }
}

/// A child the configuration does not want, kept in the graph so that a
/// recorded one is deleted in dependency order: one the previous
/// configuration had and the new one drops (an environment removed from a
/// map), or an optional child of a kind without a `wanted` switch.
pub struct Unwanted<E: ?Sized + Sync>(pub Box<dyn super::Node<E>>);

#[async_trait]
impl<E: ?Sized + Sync> super::Node<E> for Unwanted<E> {
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
    fn spec(&self) -> Spec {
        self.0.spec()
    }
    fn legacy_identity(&self, recorded: &str) -> Vec<(String, Identity)> {
        self.0.legacy_identity(recorded)
    }
    async fn create(&self, env: &E, cx: &super::Cx<'_>) -> Result<super::Made, super::NodeError> {
        self.0.create(env, cx).await
    }
    async fn observe(&self, env: &E, id: &Identity, cx: &super::Cx<'_>) -> Result<Option<Spec>, super::NodeError> {
        self.0.observe(env, id, cx).await
    }
    async fn update(&self, env: &E, id: &Identity, base: &Spec, cx: &super::Cx<'_>) -> Result<super::Made, super::NodeError> {
        self.0.update(env, id, base, cx).await
    }
    async fn delete(&self, env: &E, id: &Identity, cx: &super::Cx<'_>) -> Result<(), super::NodeError> {
        self.0.delete(env, id, cx).await
    }
}

/// A child that must come after others it does not name in its spec (a role
/// whose trust names, as a literal ARN, the OIDC provider this composite
/// creates): created and updated after `after`, deleted before them.
pub struct After<E: ?Sized + Sync> {
    pub node: Box<dyn super::Node<E>>,
    pub after: Vec<String>,
}

#[async_trait]
impl<E: ?Sized + Sync> super::Node<E> for After<E> {
    fn key(&self) -> &str {
        self.node.key()
    }
    fn deps(&self) -> Vec<&str> {
        let mut d = self.node.deps();
        d.extend(self.after.iter().map(String::as_str));
        d
    }
    fn wanted(&self) -> bool {
        self.node.wanted()
    }
    fn describe(&self) -> String {
        self.node.describe()
    }
    fn spec(&self) -> Spec {
        self.node.spec()
    }
    fn replaced_by(&self) -> &'static [&'static str] {
        self.node.replaced_by()
    }
    fn planned_identity(&self) -> Option<Identity> {
        self.node.planned_identity()
    }
    fn find_deps(&self) -> Vec<&str> {
        self.node.find_deps()
    }
    fn legacy_identity(&self, recorded: &str) -> Vec<(String, Identity)> {
        self.node.legacy_identity(recorded)
    }
    async fn find(&self, env: &E, cx: &super::Cx<'_>) -> Result<super::Found, super::NodeError> {
        self.node.find(env, cx).await
    }
    async fn create(&self, env: &E, cx: &super::Cx<'_>) -> Result<super::Made, super::NodeError> {
        self.node.create(env, cx).await
    }
    async fn observe(&self, env: &E, id: &Identity, cx: &super::Cx<'_>) -> Result<Option<Spec>, super::NodeError> {
        self.node.observe(env, id, cx).await
    }
    async fn update(&self, env: &E, id: &Identity, base: &Spec, cx: &super::Cx<'_>) -> Result<super::Made, super::NodeError> {
        self.node.update(env, id, base, cx).await
    }
    async fn delete(&self, env: &E, id: &Identity, cx: &super::Cx<'_>) -> Result<(), super::NodeError> {
        self.node.delete(env, id, cx).await
    }
    async fn release(&self, env: &E, id: &Identity, cx: &super::Cx<'_>) -> Result<(), super::NodeError> {
        self.node.release(env, id, cx).await
    }
}

/// The desired graph plus, as unwanted nodes, every recorded child that only
/// the prior configuration's graph knows.
fn with_removed<E: ?Sized + Sync + 'static>(desired: Graph<E>, prior: Option<Graph<E>>, record: &Record) -> Result<Graph<E>, Diags> {
    let Some(prior) = prior else { return Ok(desired) };
    let recorded: BTreeSet<String> = record.entries().into_iter().map(|(_, key, _)| key).collect();
    let mut extra: Vec<Box<dyn super::Node<E>>> = Vec::new();
    for node in prior.nodes {
        if desired.node(node.key()).is_none() && recorded.contains(node.key()) {
            extra.push(Box::new(Unwanted(node)));
        }
    }
    if extra.is_empty() {
        return Ok(desired);
    }
    let mut nodes = desired.nodes;
    nodes.extend(extra);
    Graph::new(nodes).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> Diags {
    Diagnostic::error("Internal error in the provider", e.to_string()).into()
}

/// Identities recorded by older provider versions (`a|b`), in today's form.
fn upgrade_legacy<E: ?Sized + Sync>(record: Record, graph: &Graph<E>) -> Record {
    let legacy: Vec<(String, String)> = record.as_map().iter().filter(|(_, v)| v.contains('|')).map(|(k, v)| (k.clone(), v.clone())).collect();
    if legacy.is_empty() {
        return record;
    }
    let mut r = record;
    for (entry, v) in legacy {
        let Some(node) = graph.node(super::entry_key(&entry)) else { continue };
        let today = node.legacy_identity(&v);
        if !today.is_empty() {
            r.remove(&entry);
            for (e, id) in today {
                r.set(&e, &id);
            }
        }
    }
    r
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

impl<T> CompositeResource<T> {
    fn owner<E: Env>(st: &T::State) -> Owner
    where
        T: Composite<E>,
    {
        Owner::new(T::TYPE_NAME, &T::owner_name(st))
    }

    fn opts<E: Env>(st: &T::State, state: &Value, ctx: &Ctx, op: Op) -> RunOpts
    where
        T: Composite<E>,
    {
        let hint = format!("terraform import {}.<name> {}", T::TYPE_NAME, T::id(st));
        RunOpts::new(Self::owner(st), ctx.cancel.clone(), timeout_in(state, op_name(op), T::DEFAULT_TIMEOUT)).import_hint(hint)
    }

    async fn graph_for<E: Env>(env: &E, st: &T::State, state: &Value) -> Result<Graph<E>, Diags>
    where
        T: Composite<E>,
    {
        let g = GraphCx { env, owner: Self::owner(st), tags: tags_of(state, &env.default_tags()) };
        T::graph(st, &g).await
    }

    /// Set the computed attributes every composite shares, then its own.
    fn finish<E: Env>(env: &E, mut st: Value, typed_st: &T::State, record: &Record, drift: BTreeMap<String, String>, private: &Private) -> Value
    where
        T: Composite<E>,
    {
        T::derived(&mut st);
        st.set_attr("id", Value::string(T::id(typed_st)));
        if st.get("tags_all").is_null() {
            let t = merged_tags(&env.default_tags(), st.get("tags"));
            st.set_attr("tags_all", tags_value(&t));
        }
        let kids = Kids { record, outputs: &private.outputs, observed: &private.observed };
        T::outputs(&mut st, typed_st, &kids);
        st.set_attr("children", map_value(record.as_map().clone()));
        st.set_attr("drift", map_value(drift));
        st
    }

    async fn destroy_all<E: Env>(env: &E, prior: Value, private: Vec<u8>, ctx: &Ctx) -> ApplyResponse
    where
        T: Composite<E>,
    {
        let cur: T::State = match typed::from_value(&known_or_null(&prior)) {
            Ok(c) => c,
            Err(d) => return ApplyResponse::partial(prior, d),
        };
        let graph = match Self::graph_for(env, &cur, &prior).await {
            Ok(g) => g,
            Err(d) => return ApplyResponse::partial(prior, d),
        };
        let record = upgrade_legacy(Record::from_value(prior.get("children")), &graph);
        let out = super::destroy(env, &graph, record, &Self::opts(&cur, &prior, ctx, Op::Delete)).await;
        if out.ok() {
            return ApplyResponse::ok(Value::Null);
        }
        let p = Private::decode(&private).retain(&out.record);
        let drift = Record::drift_of(&prior);
        let st = Self::finish(env, prior, &cur, &out.record, drift, &p);
        ApplyResponse { new_state: st, private: p.encode(), diags: out.diags }
    }
}

impl Record {
    /// The record a state holds (null or unknown means empty).
    pub fn from_value(v: &Value) -> Record {
        Record::from_map(v.entries().map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()).unwrap_or_default())
    }
    pub fn to_value(&self) -> Value {
        map_value(self.as_map().clone())
    }
    /// The `drift` map of a state.
    fn drift_of(state: &Value) -> BTreeMap<String, String> {
        state.get("drift").entries().map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect()).unwrap_or_default()
    }
}

#[async_trait]
impl<E: Env, T: Composite<E>> Resource<E> for CompositeResource<T> {
    fn type_name(&self) -> &'static str {
        T::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema_of::<E, T>()
    }

    fn validate(&self, config: &Value) -> Diags {
        T::validate(config)
    }

    fn identity(&self) -> Option<&dyn ResourceIdentity<E>> {
        if T::identity().is_empty() { None } else { Some(self) }
    }

    async fn plan(&self, env: &E, req: PlanRequest) -> PlanResponse {
        let sch = self.schema();
        let mut resp = PlanResponse { private: req.prior_private.clone(), ..Default::default() };
        if req.proposed.is_null() {
            resp.planned = Value::Null;
            return resp;
        }
        let mut planned = req.proposed.clone();
        schema::fill_defaults(&sch.block, &mut planned);
        T::plan_defaults(&mut planned);
        for (attr, _) in T::CONFIG_OR_CHILD {
            planned.set_attr(attr, req.config.get(attr).clone());
        }
        let creating = req.prior.is_null();
        if !creating {
            resp.requires_replace = schema::replace_paths(&sch.block, &req.prior, &planned);
        }
        let fresh = creating || !resp.requires_replace.is_empty();
        let tags_all = if planned.get("tags").is_wholly_known() { tags_value(&merged_tags(&env.default_tags(), planned.get("tags"))) } else { Value::Unknown };
        planned.set_attr("tags_all", tags_all);
        planned.set_attr("drift", Value::Map(BTreeMap::new()));
        T::derived(&mut planned);

        let prior: Option<T::State> = if fresh { None } else { typed::from_value(&known_or_null(&req.prior)).ok() };
        let private = if fresh { Private::default() } else { Private::decode(&req.prior_private) };
        let drifted: BTreeSet<String> = if fresh { BTreeSet::new() } else { Record::drift_of(&req.prior).into_keys().collect() };

        let mut summary = None;
        let known = config_known(&sch, &planned);
        if known {
            resp.diags.extend(T::plan_lookups(env, &mut planned, if fresh { &Value::Null } else { &req.prior }).await);
        }
        if known && !resp.diags.has_errors() {
            // The graph sees write-only values (in memory only); the planned value never holds them.
            match typed::from_value::<T::State>(&known_or_null(&schema::with_write_only(&sch.block, &planned, &req.config))) {
                Ok(cfg) => {
                    planned.set_attr("id", Value::string(T::id(&cfg)));
                    match Self::graph_for(env, &cfg, &planned).await {
                        Ok(g) => {
                            let (pg, removed_from) = match &prior {
                                Some(p) => (Self::graph_for(env, p, &req.prior).await.ok(), Self::graph_for(env, p, &req.prior).await.ok()),
                                None => (None, None),
                            };
                            let record = if fresh { Record::new() } else { Record::from_value(req.prior.get("children")) };
                            match with_removed(g, removed_from, &record) {
                                Ok(g) => {
                                    let record = upgrade_legacy(record, &g);
                                    let s = super::plan(&g, pg.as_ref(), &record, &private.observed, &drifted);
                                    tracing::debug!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, create = ?s.create, update = ?s.update, delete = ?s.delete, "planned children");
                                    summary = Some((s, g, record));
                                }
                                Err(d) => resp.diags.extend(d),
                            }
                        }
                        Err(d) => resp.diags.extend(d),
                    }
                }
                Err(d) => resp.diags.extend(d),
            }
        }
        match &summary {
            Some((s, g, record)) => {
                let pc = PlannedChildren { summary: s, graph: g, record, outputs: &private.outputs, observed: &private.observed };
                T::planned_outputs(&mut planned, &pc);
                for (attr, key) in T::CONFIG_OR_CHILD {
                    if planned.get(attr).is_null() {
                        planned.set_attr(attr, pc.identity(key));
                    }
                }
                let changes = s.changes_record() || record.has_superseded() || record.as_map().values().any(|v| v.contains('|'));
                planned.set_attr("children", if changes { Value::Unknown } else { record.to_value() });
            }
            None => {
                // Unknown configuration: every provider-computed value may change, except stable ones.
                for a in sch.block.attributes.iter().filter(|a| a.computed && !a.optional && !a.stable && a.name != "drift" && a.name != "tags_all") {
                    planned.set_attr(&a.name, Value::Unknown);
                }
                for (attr, _) in T::CONFIG_OR_CHILD {
                    if planned.get(attr).is_null() {
                        planned.set_attr(attr, Value::Unknown);
                    }
                }
                if fresh {
                    planned.set_attr("id", Value::Unknown);
                }
                T::derived(&mut planned);
            }
        }
        schema::null_write_only(&sch.block, &mut planned);
        resp.planned = planned;
        resp
    }

    async fn apply(&self, env: &E, req: ApplyRequest) -> ApplyResponse {
        if req.planned.is_null() {
            return Self::destroy_all(env, req.prior, req.planned_private, &req.ctx).await;
        }
        let fail = |prior: Value, private: Vec<u8>, d: Diags| ApplyResponse { new_state: prior, private, diags: d };
        let with_values = schema::with_write_only(&self.schema().block, &req.planned, &req.config);
        let desired: T::State = match typed::from_value(&known_or_null(&with_values)) {
            Ok(d) => d,
            Err(d) => return fail(req.prior, req.planned_private, d),
        };
        let creating = req.prior.is_null();
        let prior: Option<T::State> = if creating {
            None
        } else {
            match typed::from_value(&known_or_null(&req.prior)) {
                Ok(p) => Some(p),
                Err(d) => return fail(req.prior, req.planned_private, d),
            }
        };
        let planned = known_or_null(&req.planned);
        let graph = match Self::graph_for(env, &desired, &planned).await {
            Ok(g) => g,
            Err(d) => return fail(req.prior, req.planned_private, d),
        };
        let (prior_graph, removed_from) = match &prior {
            Some(p) => (Self::graph_for(env, p, &req.prior).await.ok(), Self::graph_for(env, p, &req.prior).await.ok()),
            None => (None, None),
        };
        let record = if creating { Record::new() } else { Record::from_value(req.prior.get("children")) };
        let graph = match with_removed(graph, removed_from, &record) {
            Ok(g) => g,
            Err(d) => return fail(req.prior, req.planned_private, d),
        };
        let record = upgrade_legacy(record, &graph);
        let private = if creating { Private::default() } else { Private::decode(&req.planned_private) };
        let drifted: BTreeSet<String> = if creating { BTreeSet::new() } else { Record::drift_of(&req.prior).into_keys().collect() };
        let opts = Self::opts(&desired, &planned, &req.ctx, if creating { Op::Create } else { Op::Update });
        tracing::info!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, owner = opts.owner.tag_value(), critical_path_len = graph.critical_path_len(), "applying");
        let out = super::apply(env, &graph, prior_graph.as_ref(), record, &private.observed, &drifted, &opts).await;
        if creating && out.record.is_empty() {
            return ApplyResponse { new_state: Value::Null, diags: out.diags, ..Default::default() };
        }
        let drift: BTreeMap<String, String> = out.unfinished.iter().filter(|k| out.record.contains(k)).map(|k| (k.clone(), UNFINISHED.to_string())).collect();
        let mut p = private;
        p.observed.extend(out.known);
        for (k, o) in out.outputs {
            p.outputs.entry(k).or_default().extend(o);
        }
        let p = p.retain(&out.record);
        let st = Self::finish(env, planned, &desired, &out.record, drift, &p);
        ApplyResponse { new_state: st, private: p.encode(), diags: out.diags }
    }

    async fn read(&self, env: &E, state: Value, private: Vec<u8>, ctx: Ctx) -> ReadResponse {
        let fail = |state: Value, d: Diags| ReadResponse { new_state: state, private: private.clone(), diags: d };
        let cur: T::State = match typed::from_value(&known_or_null(&state)) {
            Ok(c) => c,
            Err(d) => return fail(state, d),
        };
        let graph = match Self::graph_for(env, &cur, &state).await {
            Ok(g) => g,
            Err(d) => return fail(state, d),
        };
        let record = upgrade_legacy(Record::from_value(state.get("children")), &graph);
        let mut opts = Self::opts(&cur, &state, &ctx, Op::Update);
        opts.deadline = std::time::Instant::now() + Duration::from_secs(300);
        let mut r = super::refresh(env, &graph, record.clone(), &opts).await;
        if r.diags.has_errors() {
            return fail(state, r.diags);
        }
        let p0 = Private::decode(&private);
        let relinks = match T::refresh_relinks(env, &cur, &Kids { record: &r.record, outputs: &p0.outputs, observed: &r.observed }).await {
            Ok(x) => x,
            Err(d) => return fail(state, d),
        };
        let moved: Vec<(String, Identity)> = relinks.identities.into_iter().filter(|(k, i)| r.record.get(k).as_ref() != Some(i)).collect();
        let mut state = state;
        let mut cur = cur;
        if !moved.is_empty() {
            let mut relinked = r.record.clone();
            for (k, i) in &moved {
                tracing::info!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, child = k.as_str(), to = i.id.as_str(), "the child moved to another object outside Terraform: following it");
                relinked.set(k, i);
            }
            for (a, v) in relinks.attributes {
                state.set_attr(&a, v);
            }
            cur = match typed::from_value(&known_or_null(&state)) {
                Ok(c) => c,
                Err(d) => return fail(state, d),
            };
            let graph = match Self::graph_for(env, &cur, &state).await {
                Ok(g) => g,
                Err(d) => return fail(state, d),
            };
            r = super::refresh(env, &graph, relinked, &opts).await;
            if r.diags.has_errors() {
                return fail(state, r.diags);
            }
        }
        if r.record.is_empty() && !record.is_empty() {
            tracing::info!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, "every child is gone: the resource no longer exists");
            return ReadResponse { new_state: Value::Null, private, diags: r.diags };
        }
        // Unfinished children stay marked until an apply completes them.
        let mut drift: BTreeMap<String, String> = Record::drift_of(&state).into_iter().filter(|(k, v)| v == UNFINISHED && r.record.contains(k)).collect();
        drift.extend(r.drift);
        let mut p = Private::decode(&private);
        p.observed = r.observed;
        let p = p.retain(&r.record);
        let st = Self::finish(env, state, &cur, &r.record, drift, &p);
        ReadResponse { new_state: st, private: p.encode(), diags: r.diags }
    }

    async fn import(&self, env: &E, id: &str, ctx: Ctx) -> Result<Value, Diags> {
        let (cfg, record, p) = import_children::<E, T>(env, id, &ctx).await?;
        if record.is_empty() {
            return Err(Diagnostic::error("Nothing to import", format!("No AWS object owned by {} exists.", Self::owner(&cfg))).into());
        }
        let sch = self.schema();
        let mut st = typed::to_value(&cfg, &sch.value_type())?;
        schema::fill_defaults(&sch.block, &mut st);
        T::plan_defaults(&mut st);
        st.set_attr("tags_all", Value::Null);
        tracing::info!(target: "cxflow::engine::composite", resource = T::TYPE_NAME, id, children = ?record.live_keys(), "imported");
        Ok(Self::finish(env, st, &cfg, &record, BTreeMap::new(), &p))
    }

    fn upgrade(&self, version: i64, raw: &serde_json::Value) -> Result<Value, Diags> {
        let mut j = T::upgrade(version, raw.clone());
        // Older composites stored `timeouts` as a list of at most one block.
        if let Some(obj) = j.as_object_mut() {
            if let Some(serde_json::Value::Array(a)) = obj.get("timeouts").cloned() {
                obj.insert("timeouts".into(), a.into_iter().next().unwrap_or(serde_json::Value::Null));
            }
        }
        let schema = self.schema();
        let ty = schema.value_type();
        if let (Some(obj), Type::Object(attrs)) = (j.as_object_mut(), &ty) {
            obj.retain(|k, _| attrs.contains_key(k));
        }
        let mut v = Value::from_json(&j, &ty).map_err(|e| -> Diags { Diagnostic::error("Could not read stored state", typed::redact_quoted(&e.to_string())).into() })?;
        // A version that left an attribute unset stored null where the schema
        // now declares its default: the default is what that version used.
        schema::fill_defaults(&schema.block, &mut v);
        empty_blocks(&schema.block, &mut v);
        Ok(v)
    }
}

/// The identity is the account, the region and the parts of `id`.
#[async_trait]
impl<E: Env, T: Composite<E>> ResourceIdentity<E> for CompositeResource<T> {
    fn identity_schema(&self) -> IdentitySchema {
        super::identity::schema(T::identity_version(), T::identity())
    }

    async fn identity_of(&self, env: &E, state: &Value) -> Result<Value, Diags> {
        let names = T::identity();
        let id = state.get("id").as_str().unwrap_or_default();
        let parts: Vec<&str> = id.splitn(names.len(), '/').collect();
        if parts.len() != names.len() {
            return Err(internal(format!("the ID {id:?} of this {} does not give its identity ({})", T::TYPE_NAME, names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))));
        }
        let pairs: Vec<(&str, String)> = names.iter().zip(parts).map(|((n, _), v)| (*n, v.to_string())).collect();
        super::identity::value(&env.scope().await?, &pairs)
    }

    async fn import_id(&self, env: &E, identity: &Value) -> Result<String, Diags> {
        let names: Vec<&str> = T::identity().iter().map(|(n, _)| *n).collect();
        Ok(super::identity::import_parts(identity, &env.scope().await?, &names)?.join("/"))
    }

    fn upgrade_identity(&self, version: i64, raw: &serde_json::Value) -> Result<Value, Diags> {
        self.identity_schema().read_json(&T::upgrade_identity(version, raw.clone()))
    }
}

/// One object a composite's list resource found under `id` (its import ID):
/// the identity, and the state `import` of that ID gives when asked for. An
/// object the import refuses (another state owns it, it is incomplete) is
/// listed without a state, with the reason as a warning beside it.
pub async fn list_item<E: Env, T: Composite<E>>(env: &E, id: &str, display_name: String, include: bool, ctx: &Ctx) -> Result<crate::framework::ListedItem, Diags> {
    let r = CompositeResource::<T>::new();
    let identity = r.identity_of(env, &Value::Object(BTreeMap::from([("id".to_string(), Value::string(id))]))).await?;
    let mut item = crate::framework::ListedItem { display_name, identity, object: None, diags: Diags::new() };
    if include {
        match r.import(env, id, ctx.clone()).await {
            Ok(st) => item.object = Some(st),
            Err(d) => {
                for e in d.0 {
                    item.diags.push(Diagnostic::warning(format!("{id} cannot be imported: {}", e.summary), e.detail));
                }
            }
        }
    }
    Ok(item)
}

/// A block a state's version did not have (at any depth) is stored by
/// Terraform as an empty collection, never null.
fn empty_blocks(block: &Block, v: &mut Value) {
    for b in &block.blocks {
        match v.get_mut(&b.name) {
            Some(Value::List(items) | Value::Set(items)) => items.iter_mut().for_each(|o| empty_blocks(&b.block, o)),
            Some(o @ Value::Object(_)) => empty_blocks(&b.block, o),
            _ => match b.nesting {
                Nesting::List => v.set_attr(&b.name, Value::List(Vec::new())),
                Nesting::Set => v.set_attr(&b.name, Value::Set(Vec::new())),
                _ => {}
            },
        }
    }
}

/// Import: from the seed configuration, find and observe children through
/// the graph, rebuild the configuration from what was observed, and repeat
/// until nothing new turns up. Objects under our names that carry our
/// ownership tag are taken whatever their lease; others are left alone.
async fn import_children<E: Env, T: Composite<E>>(env: &E, id: &str, ctx: &Ctx) -> Result<(T::State, Record, Private), Diags> {
    let mut cfg = T::import_seed(id)?;
    let mut record = Record::new();
    let mut p = Private::default();
    let default_tags = env.default_tags();
    let mut failures: Vec<String> = Vec::new();
    for _round in 0..8 {
        failures.clear();
        let owner = Owner::new(T::TYPE_NAME, &T::owner_name(&cfg));
        let g = GraphCx { env, owner: owner.clone(), tags: default_tags.clone() };
        let graph = T::graph(&cfg, &g).await?;
        let opts = RunOpts::new(owner.clone(), ctx.cancel.clone(), Duration::from_secs(300));
        let hinted = T::import_identities(&cfg, &Kids { record: &record, outputs: &p.outputs, observed: &p.observed });
        let mut learnt = false;
        for key in graph.keys_in_order() {
            let Some(node) = graph.node(key) else { continue };
            let hint = hinted.get(key).filter(|i| record.get(key).as_ref() != Some(*i));
            // A child the configuration so far does not want is still taken when an
            // observation names it and its tags say it is ours (the configuration then
            // learns it from the child, e.g. a namespace this composite created).
            if (!node.wanted() && hint.is_none()) || (record.contains(key) && hint.is_none()) {
                continue;
            }
            // Found through its dependencies: wait for a round in which they are known.
            if hint.is_none() && node.find_deps().iter().any(|d| !record.contains(d)) {
                continue;
            }
            let deps = node.deps().iter().filter_map(|d| record.get(d).map(|i| (d.to_string(), i))).collect();
            let cx = super::Cx { deps, cancel: &ctx.cancel, deadline: opts.deadline, lease: &opts.lease };
            let found = match hint {
                Some(i) => Some(i.clone()),
                None => match node.find(env, &cx).await {
                    Ok(super::Found::Tagged(i, tags)) if tags.get(super::OWNER_TAG).map(String::as_str) == Some(owner.tag_value()) => Some(i),
                    Ok(super::Found::Tagged(i, tags)) if !tags.contains_key(super::OWNER_TAG) && T::adopts_untagged(key) => Some(i),
                    Ok(super::Found::Derived(i)) => Some(i),
                    Ok(_) => None,
                    // The configuration may not say enough yet (a later round may); a failure
                    // that persists into the last round is reported.
                    Err(e) => {
                        failures.push(format!("{}: {e}", node.describe()));
                        None
                    }
                },
            };
            let Some(found) = found else { continue };
            match node.observe(env, &found, &cx).await {
                // A child another observation named is taken only when its tags say it is ours.
                Ok(Some(spec)) if hint.is_some() && spec.get("tags").and_then(|t| t.get(super::OWNER_TAG)).is_some_and(|o| o != owner.tag_value()) => {}
                Ok(Some(spec)) if hint.is_some() && spec.get("tags").is_some_and(|t| t.get(super::OWNER_TAG).is_none()) && !T::adopts_untagged(key) => {}
                Ok(Some(spec)) => {
                    record.set(key, &found);
                    p.observed.insert(key.to_string(), spec);
                    learnt = true;
                }
                Ok(None) => {}
                Err(e) => failures.push(format!("{}: {e}", node.describe())),
            }
        }
        let next = T::from_observed(env, &cfg, &Kids { record: &record, outputs: &p.outputs, observed: &p.observed }).await?;
        let same = serde_json::to_value(&next).ok() == serde_json::to_value(&cfg).ok();
        cfg = next;
        if same && !learnt {
            break;
        }
    }
    if !failures.is_empty() {
        return Err(Diagnostic::error("Import failed", failures.join("\n")).into());
    }
    Ok((cfg, record, p))
}
