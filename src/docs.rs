//! Registry documentation generated from the provider's own schemas.
//!
//! `terraform-provider-cxflow docs <repo_root>` (`make docs`) writes the
//! layout the Terraform Registry reads:
//!
//! ```text
//! docs/index.md                          the provider block
//! docs/resources/<name>.md               one per managed resource
//! docs/ephemeral-resources/<name>.md     one per ephemeral resource
//! docs/data-sources/<name>.md            one per data source (only when there are any)
//! docs/actions/<name>.md                 one per action
//! docs/list-resources/<name>.md          one per list resource (`terraform query`)
//! docs/functions/<name>.md               one per provider function
//! ```
//!
//! `<name>` is the type name without the `cxflow_` prefix. Examples come from
//! `examples/provider/provider.tf`, `examples/resources/<type>/resource.tf`
//! (plus `import.sh` / `import.tf`), `examples/ephemeral-resources/<type>/ephemeral-resource.tf`,
//! `examples/data-sources/<type>/data-source.tf`, `examples/list-resources/<type>/list-resource.tfquery.hcl` and `examples/functions/<name>/function.tf`, when present.
//!
//! Output is a pure function of the schemas and the example files, with
//! attributes sorted by name, so the committed pages can be checked against
//! the schema (tests/docs.rs). Only `index.md` and the page directories
//! are touched: hand-written pages beside them (design.md, releasing.md, ...)
//! are left alone, and stale `.md` pages in the page directories are removed.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::framework::schema::{AttrType, Attribute, Block, NestedBlock, Nesting, Schema};
use crate::framework::{IdentitySchema, Provider, Signature, Type};

/// Where function pages go, under `docs/` and under `examples/`.
const FUNCTIONS_DIR: &str = "functions";

/// The kinds of documented types, each with its own page directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Resource,
    EphemeralResource,
    DataSource,
    Action,
    ListResource,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Resource, Kind::EphemeralResource, Kind::DataSource, Kind::Action, Kind::ListResource];

    /// Directory under `docs/` and under `examples/`.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Resource => "resources",
            Kind::EphemeralResource => "ephemeral-resources",
            Kind::DataSource => "data-sources",
            Kind::Action => "actions",
            Kind::ListResource => "list-resources",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Resource => "Resource",
            Kind::EphemeralResource => "Ephemeral Resource",
            Kind::DataSource => "Data Source",
            Kind::Action => "Action",
            Kind::ListResource => "List Resource",
        }
    }

    fn example_file(self) -> &'static str {
        match self {
            Kind::Resource => "resource.tf",
            Kind::EphemeralResource => "ephemeral-resource.tf",
            Kind::DataSource => "data-source.tf",
            Kind::Action => "action.tf",
            // Terraform reads `list` blocks only from query files.
            Kind::ListResource => "list-resource.tfquery.hcl",
        }
    }
}

/// One documented type.
#[derive(Clone, Debug)]
pub struct Item {
    pub kind: Kind,
    pub type_name: String,
    pub schema: Schema,
    /// A managed resource's identity, when it has one.
    pub identity: Option<IdentitySchema>,
}

/// Everything the pages are made from, apart from the example files.
#[derive(Clone, Debug)]
pub struct DocSet {
    /// The provider's local name (`cxflow`).
    pub provider: String,
    pub schema: Schema,
    pub items: Vec<Item>,
    /// Provider functions, one page each under `functions/`.
    pub functions: Vec<Signature>,
}

impl DocSet {
    /// Collect the provider's schemas.
    pub fn from_provider<P: Provider>(p: &P) -> DocSet {
        let mut items: Vec<Item> = p
            .resources()
            .iter()
            .map(|r| Item { kind: Kind::Resource, type_name: r.type_name().to_string(), schema: r.schema(), identity: r.identity().map(|i| i.identity_schema()) })
            .collect();
        items.extend(p.ephemeral_resources().iter().map(|r| Item { kind: Kind::EphemeralResource, type_name: r.type_name().to_string(), schema: r.schema(), identity: None }));
        items.extend(p.data_sources().iter().map(|d| Item { kind: Kind::DataSource, type_name: d.type_name().to_string(), schema: d.schema(), identity: None }));
        items.extend(p.actions().iter().map(|a| Item { kind: Kind::Action, type_name: a.type_name().to_string(), schema: a.schema(), identity: None }));
        items.extend(p.list_resources().iter().map(|l| Item { kind: Kind::ListResource, type_name: l.type_name().to_string(), schema: l.schema(), identity: None }));
        let functions = p.functions().iter().map(|f| f.signature()).collect();
        DocSet { provider: p.type_name().to_string(), schema: p.schema(), items, functions }
    }

    /// The page path (relative to `docs/`) of an item.
    pub fn page_path(&self, item: &Item) -> String {
        let prefix = format!("{}_", self.provider);
        let short = item.type_name.strip_prefix(&prefix).filter(|s| !s.is_empty()).unwrap_or(&item.type_name);
        format!("{}/{}.md", item.kind.dir(), short)
    }
}

/// Rendered pages: path relative to `docs/` -> content.
pub type Pages = BTreeMap<String, String>;

/// Render every page. `examples` is the repository's `examples/` directory
/// (it may be missing: pages then have no examples).
pub fn render(set: &DocSet, examples: &Path) -> io::Result<Pages> {
    let mut pages = Pages::new();
    let provider_example = read_optional(&examples.join("provider/provider.tf"))?;
    pages.insert("index.md".to_string(), render_index(set, provider_example.as_deref()));

    let mut items: Vec<&Item> = set.items.iter().collect();
    items.sort_by(|a, b| (a.kind, &a.type_name).cmp(&(b.kind, &b.type_name)));
    for item in items {
        let dir = examples.join(item.kind.dir()).join(&item.type_name);
        let ex = PageExamples {
            usage: read_optional(&dir.join(item.kind.example_file()))?,
            import_sh: if item.kind == Kind::Resource { read_optional(&dir.join("import.sh"))? } else { None },
            import_tf: if item.kind == Kind::Resource { read_optional(&dir.join("import.tf"))? } else { None },
        };
        let path = set.page_path(item);
        let page = render_item(&set.provider, item, &ex);
        if pages.insert(path.clone(), page).is_some() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("two types would share the page docs/{path}")));
        }
    }
    for f in &set.functions {
        let usage = read_optional(&examples.join(FUNCTIONS_DIR).join(f.name).join("function.tf"))?;
        pages.insert(format!("{FUNCTIONS_DIR}/{}.md", f.name), render_function(&set.provider, f, usage.as_deref()));
    }
    Ok(pages)
}

/// Example files for one page.
#[derive(Clone, Debug, Default)]
pub struct PageExamples {
    pub usage: Option<String>,
    pub import_sh: Option<String>,
    pub import_tf: Option<String>,
}

fn read_optional(p: &Path) -> io::Result<Option<String>> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s.replace("\r\n", "\n"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("reading {}: {e}", p.display()))),
    }
}

const GENERATED_NOTE: &str = "<!-- Generated by `terraform-provider-cxflow docs` from the provider schema and examples/. Do not edit by hand: run `make docs`. -->";

fn front_matter(out: &mut String, title: &str, description: &str) {
    out.push_str("---\n");
    let _ = writeln!(out, "page_title: \"{}\"", title.replace('\\', "\\\\").replace('"', "\\\""));
    out.push_str("subcategory: \"\"\n");
    let description = description.trim();
    if description.is_empty() {
        out.push_str("description: \"\"\n");
    } else {
        out.push_str("description: |-\n");
        for line in description.lines() {
            if line.trim().is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "  {}", line.trim_end());
            }
        }
    }
    out.push_str("---\n\n");
    out.push_str(GENERATED_NOTE);
    out.push_str("\n\n");
}

fn code_block(out: &mut String, lang: &str, body: &str) {
    let _ = writeln!(out, "```{lang}\n{}\n```\n", body.trim_end());
}

fn paragraph(out: &mut String, text: &str) {
    let text = text.trim();
    if !text.is_empty() {
        out.push_str(text);
        out.push_str("\n\n");
    }
}

/// `docs/index.md`: the provider block.
pub fn render_index(set: &DocSet, example: Option<&str>) -> String {
    let mut out = String::new();
    let title = format!("{} Provider", set.provider);
    front_matter(&mut out, &title, &set.schema.block.description);
    let _ = writeln!(out, "# {title}\n");
    paragraph(&mut out, &set.schema.block.description);
    if let Some(ex) = example {
        out.push_str("## Example Usage\n\n");
        code_block(&mut out, "terraform", ex);
    }
    render_schema(&mut out, &set.schema.block, false);
    finish(out)
}

/// One resource, ephemeral resource or data source page.
pub fn render_item(provider: &str, item: &Item, ex: &PageExamples) -> String {
    let mut out = String::new();
    let block = &item.schema.block;
    front_matter(&mut out, &format!("{} {} - {}", item.type_name, item.kind.label(), provider), &block.description);
    let _ = writeln!(out, "# {} ({})\n", item.type_name, item.kind.label());
    if block.deprecated {
        out.push_str("~> **Deprecated** This type is deprecated and will be removed in a future version.\n\n");
    }
    paragraph(&mut out, &block.description);
    if let Some(usage) = &ex.usage {
        out.push_str("## Example Usage\n\n");
        code_block(&mut out, "terraform", usage);
    }
    if item.kind == Kind::ListResource {
        paragraph(&mut out, "A `list` block in a `.tfquery.hcl` file, run by `terraform query` (Terraform 1.14 or later). The arguments below go in its `config` block.");
    }
    render_schema(&mut out, block, item.kind == Kind::Resource);
    if ex.import_sh.is_some() || ex.import_tf.is_some() {
        out.push_str("## Import\n\n");
        if let Some(tf) = &ex.import_tf {
            out.push_str("In Terraform 1.5 and later, import with an `import` block:\n\n");
            code_block(&mut out, "terraform", tf);
        }
        if let Some(sh) = &ex.import_sh {
            out.push_str(if ex.import_tf.is_some() { "Or with the `terraform import` command:\n\n" } else { "Import is supported using the `terraform import` command:\n\n" });
            code_block(&mut out, "shell", sh);
        }
    }
    if let Some(id) = &item.identity {
        render_identity(&mut out, &item.type_name, id);
    }
    finish(out)
}

/// One provider function's page: signature, arguments, return type.
pub fn render_function(provider: &str, f: &Signature, usage: Option<&str>) -> String {
    let mut out = String::new();
    front_matter(&mut out, &format!("{} function - {provider}", f.name), f.summary);
    let _ = writeln!(out, "# function: {}\n", f.name);
    paragraph(&mut out, f.description);
    if let Some(u) = usage {
        out.push_str("## Example Usage\n\n");
        code_block(&mut out, "terraform", u);
    }
    out.push_str("## Signature\n\n");
    let params: Vec<String> = f.params.iter().map(|p| format!("{} {}", p.name, hcl_type(&p.ty))).collect();
    code_block(&mut out, "text", &format!("{}({}) {}", f.name, params.join(", "), hcl_type(&f.returns)));
    let _ = writeln!(out, "Call it as `provider::{provider}::{}(...)` (Terraform 1.8 and later).\n", f.name);
    out.push_str("## Arguments\n\n");
    for (i, p) in f.params.iter().enumerate() {
        let _ = writeln!(out, "{}. `{}` ({}) {}", i + 1, p.name, type_label(&p.ty), p.description);
    }
    let _ = writeln!(out, "\n## Return Type\n\nThe return type of `{}` is `{}`.", f.name, hcl_type(&f.returns));
    finish(out)
}

/// A type as HCL writes it: `string`, `list(number)`, `object({...})`.
fn hcl_type(t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::Number => "number".into(),
        Type::String => "string".into(),
        Type::Dynamic => "any".into(),
        Type::List(e) => format!("list({})", hcl_type(e)),
        Type::Set(e) => format!("set({})", hcl_type(e)),
        Type::Map(e) => format!("map({})", hcl_type(e)),
        Type::Tuple(es) => format!("tuple([{}])", es.iter().map(hcl_type).collect::<Vec<_>>().join(", ")),
        Type::Object(m) => format!("object({{{}}})", m.iter().map(|(k, v)| format!("{k} = {}", hcl_type(v))).collect::<Vec<_>>().join(", ")),
    }
}

/// The resource identity, and an `import` block written from it.
fn render_identity(out: &mut String, type_name: &str, id: &IdentitySchema) {
    out.push_str("## Identity\n\n");
    out.push_str("In Terraform 1.12 and later, state records this resource's identity (see `terraform show -json`), and an `import` block can name the resource by it:\n\n");
    // Laid out as `terraform fmt` would.
    let mut hcl = format!("import {{\n  to       = {type_name}.example\n  identity = {{\n");
    let required: Vec<&str> = id.attributes.iter().filter(|a| a.required_for_import).map(|a| a.name.as_str()).collect();
    let width = required.iter().map(|n| n.len()).max().unwrap_or(0);
    for n in required {
        let _ = writeln!(hcl, "    {n:width$} = \"...\"");
    }
    hcl.push_str("  }\n}\n");
    code_block(out, "terraform", &hcl);
    for a in &id.attributes {
        let flag = if a.required_for_import { "Required for import" } else { "Optional for import" };
        let _ = writeln!(out, "- `{}` ({}, {flag}) {}", a.name, type_label(&a.ty), a.description);
    }
    out.push('\n');
}

/// Exactly one trailing newline.
fn finish(mut out: String) -> String {
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Category {
    Required,
    Optional,
    ReadOnly,
}

impl Category {
    fn title(self) -> &'static str {
        match self {
            Category::Required => "Required",
            Category::Optional => "Optional",
            Category::ReadOnly => "Read-Only",
        }
    }
    fn of_attribute(a: &Attribute) -> Category {
        if a.required {
            Category::Required
        } else if a.optional || a.write_only {
            Category::Optional
        } else if a.computed {
            Category::ReadOnly
        } else {
            // Neither flag set is a schema error Terraform rejects; show it as optional.
            Category::Optional
        }
    }
    fn of_block(b: &NestedBlock) -> Category {
        if b.min_items > 0 { Category::Required } else { Category::Optional }
    }
}

/// What a "Nested Schema" section documents.
enum Nested<'a> {
    Block(&'a Block),
    Attributes(&'a [Attribute]),
    Object(&'a BTreeMap<String, Type>),
}

struct Pending<'a> {
    anchor: String,
    path: String,
    what: Nested<'a>,
}

/// One list entry before formatting: name, category and the formatted line.
struct Entry {
    name: String,
    category: Category,
    line: String,
}

struct SchemaWriter<'a> {
    queue: VecDeque<Pending<'a>>,
    /// On resource pages, `force_new` attributes say that a change replaces the resource.
    replaces: bool,
}

fn render_schema(out: &mut String, block: &Block, replaces: bool) {
    let mut w = SchemaWriter { queue: VecDeque::new(), replaces };
    out.push_str("## Schema\n\n");
    let entries = w.block_entries(block, "");
    if entries.is_empty() {
        out.push_str("This type has no attributes.\n\n");
    }
    write_categories(out, &entries, true);
    while let Some(p) = w.queue.pop_front() {
        let _ = writeln!(out, "<a id=\"{}\"></a>\n### Nested Schema for `{}`\n", p.anchor, p.path);
        let entries = match p.what {
            Nested::Block(b) => w.block_entries(b, &p.path),
            Nested::Attributes(attrs) => {
                let mut sorted: Vec<&Attribute> = attrs.iter().collect();
                sorted.sort_by(|a, b| (Category::of_attribute(a), &a.name).cmp(&(Category::of_attribute(b), &b.name)));
                sorted.into_iter().map(|a| w.attribute_entry(a, &p.path)).collect()
            }
            Nested::Object(fields) => {
                // Object fields have no required/optional distinction: list them plainly.
                for (name, ty) in fields {
                    let line = w.typed_line(name, ty, &[], "", &p.path);
                    let _ = writeln!(out, "{line}");
                }
                out.push('\n');
                continue;
            }
        };
        write_categories(out, &entries, false);
    }
}

/// Write entries grouped by category (Required, Optional, Read-Only), each group
/// sorted by name: as `###` headings at the top level, as labels in nested sections.
fn write_categories(out: &mut String, entries: &[Entry], top: bool) {
    for cat in [Category::Required, Category::Optional, Category::ReadOnly] {
        let mut group: Vec<&Entry> = entries.iter().filter(|e| e.category == cat).collect();
        if group.is_empty() {
            continue;
        }
        group.sort_by(|a, b| a.name.cmp(&b.name));
        if top {
            let _ = writeln!(out, "### {}\n", cat.title());
        } else {
            let _ = writeln!(out, "{}:\n", cat.title());
        }
        for e in group {
            let _ = writeln!(out, "{}", e.line);
        }
        out.push('\n');
    }
}

fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

fn anchor(kind: &str, path: &str) -> String {
    format!("nested{kind}--{}", path.replace('.', "--"))
}

/// A list item: "- `name` (Flags) Description", continuation lines indented.
fn list_item(name: &str, flags: &[String], description: &str) -> String {
    let mut line = format!("- `{name}` ({})", flags.join(", "));
    let description = description.trim();
    if !description.is_empty() {
        line.push(' ');
        let mut lines = description.lines();
        line.push_str(lines.next().unwrap_or_default().trim_end());
        for l in lines {
            line.push('\n');
            if !l.trim().is_empty() {
                line.push_str("  ");
                line.push_str(l.trim_end());
            }
        }
    }
    line
}

fn with_sentence(description: &str, extra: &str) -> String {
    let d = description.trim();
    if d.is_empty() {
        extra.to_string()
    } else if d.ends_with(['.', '!', '?', ')', '`']) || d.ends_with("```") {
        format!("{d} {extra}")
    } else {
        format!("{d}. {extra}")
    }
}

/// A value as it would be written in HCL, for "Default: ..." notes.
fn hcl_literal(v: &crate::framework::Value) -> String {
    use crate::framework::Value;
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::List(x) | Value::Set(x) | Value::Tuple(x) => format!("[{}]", x.iter().map(hcl_literal).collect::<Vec<_>>().join(", ")),
        Value::Map(m) | Value::Object(m) => format!("{{{}}}", m.iter().map(|(k, x)| format!("{k} = {}", hcl_literal(x))).collect::<Vec<_>>().join(", ")),
        _ => "null".to_string(),
    }
}

/// "String", "List of Number", "Map of Object", ...
pub fn type_label(t: &Type) -> String {
    match t {
        Type::Bool => "Boolean".into(),
        Type::Number => "Number".into(),
        Type::String => "String".into(),
        Type::Dynamic => "Dynamic".into(),
        Type::List(e) => format!("List of {}", type_label(e)),
        Type::Set(e) => format!("Set of {}", type_label(e)),
        Type::Map(e) => format!("Map of {}", type_label(e)),
        Type::Object(_) => "Object".into(),
        Type::Tuple(_) => "Tuple".into(),
    }
}

/// The object type inside a (possibly collection-wrapped) type, if any.
fn object_fields(t: &Type) -> Option<&BTreeMap<String, Type>> {
    match t {
        Type::Object(fields) => Some(fields),
        Type::List(e) | Type::Set(e) | Type::Map(e) => object_fields(e),
        _ => None,
    }
}

impl<'a> SchemaWriter<'a> {
    fn block_entries(&mut self, block: &'a Block, path: &str) -> Vec<Entry> {
        // Sorted here so nested sections are queued in the order their entries appear.
        let mut order: Vec<(Category, &str, bool, usize)> = Vec::new();
        for (i, a) in block.attributes.iter().enumerate() {
            order.push((Category::of_attribute(a), &a.name, false, i));
        }
        for (i, b) in block.blocks.iter().enumerate() {
            order.push((Category::of_block(b), &b.name, true, i));
        }
        order.sort();
        order.into_iter().map(|(_, _, is_block, i)| if is_block { self.block_entry(&block.blocks[i], path) } else { self.attribute_entry(&block.attributes[i], path) }).collect()
    }

    fn attribute_entry(&mut self, a: &'a Attribute, parent: &str) -> Entry {
        let path = join_path(parent, &a.name);
        let mut extra_flags = Vec::new();
        if a.sensitive {
            extra_flags.push("Sensitive".to_string());
        }
        if a.write_only {
            extra_flags.push("Write-only".to_string());
        }
        if a.deprecated.is_some() {
            extra_flags.push("Deprecated".to_string());
        }
        let mut description = a.description.clone();
        for c in &a.checks {
            description = with_sentence(&description, &c.describe());
        }
        if let Some(d) = &a.default {
            description = with_sentence(&description, &format!("Default: `{}`.", hcl_literal(d)));
        }
        // Unless the description already says so ("Changing it replaces the service.").
        if self.replaces && a.force_new && !description.to_lowercase().contains("replace") {
            description = with_sentence(&description, "Changing this replaces the resource.");
        }
        if let Some(msg) = &a.deprecated {
            let msg = msg.trim();
            description = if msg.is_empty() { with_sentence(&description, "**Deprecated.**") } else { with_sentence(&description, &format!("**Deprecated:** {msg}")) };
        }
        let line = match &a.ty {
            AttrType::Plain(t) => self.typed_line(&a.name, t, &extra_flags, &description, parent),
            AttrType::Nested(nesting, attrs) => {
                let kind = match nesting {
                    Nesting::Single | Nesting::Group => "Attributes",
                    Nesting::List => "Attributes List",
                    Nesting::Set => "Attributes Set",
                    Nesting::Map => "Attributes Map",
                };
                let mut flags = vec![kind.to_string()];
                flags.extend(extra_flags);
                let anchor = anchor("att", &path);
                let description = with_sentence(&description, &format!("(see [below for nested schema](#{anchor}))"));
                self.queue.push_back(Pending { anchor, path, what: Nested::Attributes(attrs) });
                list_item(&a.name, &flags, &description)
            }
        };
        Entry { name: a.name.clone(), category: Category::of_attribute(a), line }
    }

    /// A plain-typed attribute or object field; object types get their own section.
    fn typed_line(&mut self, name: &str, t: &'a Type, extra_flags: &[String], description: &str, parent: &str) -> String {
        let mut flags = vec![type_label(t)];
        flags.extend(extra_flags.iter().cloned());
        match object_fields(t) {
            Some(fields) => {
                let path = join_path(parent, name);
                let anchor = anchor("obj", &path);
                let description = with_sentence(description, &format!("(see [below for nested schema](#{anchor}))"));
                self.queue.push_back(Pending { anchor, path, what: Nested::Object(fields) });
                list_item(name, &flags, &description)
            }
            None => list_item(name, &flags, description),
        }
    }

    fn block_entry(&mut self, b: &'a NestedBlock, parent: &str) -> Entry {
        let path = join_path(parent, &b.name);
        let mut flags = vec![
            match b.nesting {
                Nesting::Single | Nesting::Group => "Block",
                Nesting::List => "Block List",
                Nesting::Set => "Block Set",
                Nesting::Map => "Block Map",
            }
            .to_string(),
        ];
        if b.min_items > 0 {
            flags[0].push_str(&format!(", Min: {}", b.min_items));
        }
        if b.max_items > 0 {
            flags[0].push_str(&format!(", Max: {}", b.max_items));
        }
        if b.block.deprecated {
            flags.push("Deprecated".to_string());
        }
        let anchor = anchor("block", &path);
        let description = with_sentence(&b.block.description, &format!("(see [below for nested schema](#{anchor}))"));
        self.queue.push_back(Pending { anchor, path, what: Nested::Block(&b.block) });
        Entry { name: b.name.clone(), category: Category::of_block(b), line: list_item(&b.name, &flags, &description) }
    }
}

/// What [`write`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "docs: {} pages ({} written, {} unchanged), {} stale removed",
            self.written.len() + self.unchanged.len(),
            self.written.len(),
            self.unchanged.len(),
            self.removed.len()
        )?;
        for p in &self.written {
            writeln!(f, "  wrote   docs/{p}")?;
        }
        for p in &self.removed {
            writeln!(f, "  removed docs/{p}")?;
        }
        Ok(())
    }
}

/// Write `pages` under `<root>/docs`, leaving files whose content is already
/// right untouched, and remove `.md` pages in the generated directories that
/// are no longer produced (and such a directory once it is empty).
pub fn write(root: &Path, pages: &Pages) -> io::Result<Summary> {
    let docs = root.join("docs");
    let mut summary = Summary::default();
    for (rel, content) in pages {
        let path = docs.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            summary.unchanged.push(rel.clone());
        } else {
            std::fs::write(&path, content).map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
            summary.written.push(rel.clone());
        }
    }
    for kind_dir in Kind::ALL.iter().map(|k| k.dir()).chain([FUNCTIONS_DIR]) {
        let dir = docs.join(kind_dir);
        let listing = match std::fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut stale = Vec::new();
        for entry in listing {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = format!("{kind_dir}/{name}");
            if name.ends_with(".md") && entry.file_type()?.is_file() && !pages.contains_key(&rel) {
                stale.push(rel);
            }
        }
        stale.sort();
        for rel in stale {
            std::fs::remove_file(docs.join(&rel))?;
            summary.removed.push(rel);
        }
        if std::fs::read_dir(&dir)?.next().is_none() {
            std::fs::remove_dir(&dir)?;
        }
    }
    Ok(summary)
}

/// `terraform-provider-cxflow docs <root>`: render from the cxflow provider and
/// `<root>/examples`, write to `<root>/docs`.
pub fn generate(root: &Path) -> io::Result<Summary> {
    if !root.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not a directory", root.display())));
    }
    let set = DocSet::from_provider(&crate::provider::CxflowProvider);
    let pages = render(&set, &root.join("examples"))?;
    write(root, &pages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::schema::{Attribute, Block, NestedBlock, Nesting, Schema};

    fn sample_schema() -> Schema {
        Schema::new(
            0,
            Block::new(vec![
                Attribute::new("name", Type::String).required().force_new().describe("Name of the thing."),
                Attribute::new("arn", Type::String).computed().stable().describe("ARN."),
                Attribute::new("zone", Type::String).required().force_new().describe("Zone; changing it replaces the thing."),
                Attribute::new("size", Type::Number).defaulted().describe("Size in GiB"),
                Attribute::new("password_wo", Type::String).optional().sensitive().write_only().describe("Password."),
                Attribute::new("old_flag", Type::Bool).optional().deprecated("Use `size` instead.").describe("Old flag."),
                Attribute::new("tags", Type::map(Type::String)).optional(),
                Attribute::new("ports", Type::list(Type::object([("from", Type::Number), ("to", Type::Number)]))).computed(),
                Attribute::nested(
                    "health",
                    Nesting::Single,
                    vec![Attribute::new("path", Type::String).required().describe("HTTP path."), Attribute::new("status", Type::String).computed()],
                )
                .optional()
                .describe("Health check.\nSecond line."),
            ])
            .with_blocks(vec![
                NestedBlock::new(
                    "container",
                    Nesting::List,
                    Block::new(vec![Attribute::new("image", Type::String).required(), Attribute::new("cpu", Type::Number).optional()])
                        .with_blocks(vec![NestedBlock::new("env", Nesting::Set, Block::new(vec![Attribute::new("value", Type::String).required()]))])
                        .describe("A container."),
                )
                .min(1)
                .max(10),
                NestedBlock::new("timeouts", Nesting::Single, Block::new(vec![Attribute::new("create", Type::String).optional()])),
            ])
            .describe("Manages a thing.\n\nSecond paragraph."),
        )
    }

    fn sample_set(attr_order_reversed: bool) -> DocSet {
        let mut schema = sample_schema();
        if attr_order_reversed {
            schema.block.attributes.reverse();
            schema.block.blocks.reverse();
        }
        DocSet {
            provider: "cxflow".into(),
            schema: Schema::new(0, Block::new(vec![Attribute::new("region", Type::String).optional().describe("AWS region.")]).describe("The provider.")),
            items: vec![
                Item { kind: Kind::Resource, type_name: "cxflow_thing".into(), schema: schema.clone(), identity: None },
                Item {
                    kind: Kind::EphemeralResource,
                    type_name: "cxflow_token".into(),
                    schema: Schema::new(0, Block::new(vec![Attribute::new("value", Type::String).computed().sensitive()])),
                    identity: None,
                },
            ],
            functions: Vec::new(),
        }
    }

    fn pos(hay: &str, needle: &str) -> usize {
        hay.find(needle).unwrap_or_else(|| panic!("missing {needle:?} in:\n{hay}"))
    }

    #[test]
    fn resource_page_has_front_matter_sections_and_flags() {
        let set = sample_set(false);
        let page = render_item("cxflow", &set.items[0], &PageExamples::default());
        assert!(
            page.starts_with("---\npage_title: \"cxflow_thing Resource - cxflow\"\nsubcategory: \"\"\ndescription: |-\n  Manages a thing.\n\n  Second paragraph.\n---\n"),
            "{page}"
        );
        assert!(page.contains("# cxflow_thing (Resource)\n\nManages a thing.\n\nSecond paragraph.\n\n## Schema\n"), "{page}");
        assert!(!page.contains("## Example Usage"));
        assert!(!page.contains("## Import"));
        // Sections in order, entries sorted by name within them.
        let (req, opt, ro) = (pos(&page, "### Required"), pos(&page, "### Optional"), pos(&page, "### Read-Only"));
        assert!(req < opt && opt < ro);
        assert!(
            pos(&page, "- `container` (Block List, Min: 1, Max: 10) A container. (see [below for nested schema](#nestedblock--container))")
                < pos(&page, "- `name` (String) Name of the thing. Changing this replaces the resource.")
        );
        assert!(req < pos(&page, "- `name`") && pos(&page, "- `name`") < opt);
        for line in [
            "- `password_wo` (String, Sensitive, Write-only) Password.\n",
            "- `old_flag` (Boolean, Deprecated) Old flag. **Deprecated:** Use `size` instead.",
            "- `size` (Number) Size in GiB",
            "- `zone` (String) Zone; changing it replaces the thing.\n",
            "- `tags` (Map of String)",
            "- `timeouts` (Block) (see [below for nested schema](#nestedblock--timeouts))",
            "- `health` (Attributes) Health check.\n  Second line. (see [below for nested schema](#nestedatt--health))",
            "- `ports` (List of Object) (see [below for nested schema](#nestedobj--ports))",
        ] {
            pos(&page, line);
        }
        let opt_names: Vec<usize> = ["`health`", "`old_flag`", "`password_wo`", "`size`", "`tags`", "`timeouts`"].iter().map(|n| pos(&page, &format!("- {n}"))).collect();
        assert!(opt_names.windows(2).all(|w| w[0] < w[1]) && opt < opt_names[0] && opt_names[5] < ro, "optional entries unsorted:\n{page}");
        assert!(ro < pos(&page, "- `arn` (String) ARN.") && ro < pos(&page, "- `ports`"));
    }

    #[test]
    fn nested_schemas_get_their_own_sections() {
        let set = sample_set(false);
        let page = render_item("cxflow", &set.items[0], &PageExamples::default());
        let container = pos(
            &page,
            "<a id=\"nestedblock--container\"></a>\n### Nested Schema for `container`\n\nRequired:\n\n- `image` (String)\n\nOptional:\n\n- `cpu` (Number)\n- `env` (Block Set) (see [below for nested schema](#nestedblock--container--env))\n",
        );
        let env = pos(&page, "### Nested Schema for `container.env`\n\nRequired:\n\n- `value` (String)\n");
        assert!(container < env);
        pos(&page, "<a id=\"nestedatt--health\"></a>\n### Nested Schema for `health`\n\nRequired:\n\n- `path` (String) HTTP path.\n\nRead-Only:\n\n- `status` (String)\n");
        pos(&page, "<a id=\"nestedobj--ports\"></a>\n### Nested Schema for `ports`\n\n- `from` (Number)\n- `to` (Number)\n");
        // Every link has its anchor and every anchor its link.
        for cap in page.match_indices("](#").map(|(i, _)| &page[i + 3..]) {
            let id = &cap[..cap.find(')').unwrap()];
            pos(&page, &format!("<a id=\"{id}\"></a>"));
        }
        assert_eq!(page.matches("<a id=").count(), page.matches("](#").count());
    }

    #[test]
    fn output_does_not_depend_on_declaration_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = render(&sample_set(false), dir.path()).unwrap();
        let b = render(&sample_set(true), dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.keys().cloned().collect::<Vec<_>>(), vec!["ephemeral-resources/token.md", "index.md", "resources/thing.md"]);
        let token = &a["ephemeral-resources/token.md"];
        assert!(token.contains("page_title: \"cxflow_token Ephemeral Resource - cxflow\"\nsubcategory: \"\"\ndescription: \"\"\n"), "{token}");
        assert!(token.contains("# cxflow_token (Ephemeral Resource)\n\n## Schema\n\n### Read-Only\n\n- `value` (String, Sensitive)\n"), "{token}");
    }

    #[test]
    fn examples_and_import_are_included_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let ex = dir.path();
        std::fs::create_dir_all(ex.join("provider")).unwrap();
        std::fs::write(ex.join("provider/provider.tf"), "provider \"cxflow\" {\n  region = \"eu-west-1\"\n}\n\n\n").unwrap();
        std::fs::create_dir_all(ex.join("resources/cxflow_thing")).unwrap();
        std::fs::write(ex.join("resources/cxflow_thing/resource.tf"), "resource \"cxflow_thing\" \"x\" {\r\n  name = \"a\"\r\n}\r\n").unwrap();
        std::fs::write(ex.join("resources/cxflow_thing/import.sh"), "terraform import cxflow_thing.x a\n").unwrap();
        std::fs::create_dir_all(ex.join("ephemeral-resources/cxflow_token")).unwrap();
        std::fs::write(ex.join("ephemeral-resources/cxflow_token/ephemeral-resource.tf"), "ephemeral \"cxflow_token\" \"t\" {}\n").unwrap();
        let pages = render(&sample_set(false), ex).unwrap();

        let index = &pages["index.md"];
        assert!(index.starts_with("---\npage_title: \"cxflow Provider\"\nsubcategory: \"\"\ndescription: |-\n  The provider.\n---\n"), "{index}");
        pos(
            index,
            "# cxflow Provider\n\nThe provider.\n\n## Example Usage\n\n```terraform\nprovider \"cxflow\" {\n  region = \"eu-west-1\"\n}\n```\n\n## Schema\n\n### Optional\n\n- `region` (String) AWS region.\n",
        );

        let thing = &pages["resources/thing.md"];
        let usage = pos(thing, "## Example Usage\n\n```terraform\nresource \"cxflow_thing\" \"x\" {\n  name = \"a\"\n}\n```\n");
        let schema = pos(thing, "## Schema");
        let import = pos(thing, "## Import\n\nImport is supported using the `terraform import` command:\n\n```shell\nterraform import cxflow_thing.x a\n```\n");
        assert!(usage < schema && schema < import);
        assert!(thing.ends_with("```\n") && !thing.ends_with("\n\n"));
        assert!(!thing.contains('\r'));

        pos(&pages["ephemeral-resources/token.md"], "## Example Usage\n\n```terraform\nephemeral \"cxflow_token\" \"t\" {}\n```\n");
    }

    #[test]
    fn write_replaces_stale_pages_and_keeps_hand_written_docs() {
        let root = tempfile::tempdir().unwrap();
        let docs = root.path().join("docs");
        std::fs::create_dir_all(docs.join("resources")).unwrap();
        std::fs::create_dir_all(docs.join("data-sources")).unwrap();
        std::fs::write(docs.join("design.md"), "hand written").unwrap();
        std::fs::write(docs.join("releasing.md"), "hand written too").unwrap();
        std::fs::write(docs.join("resources/gone.md"), "old").unwrap();
        std::fs::write(docs.join("resources/notes.txt"), "not a page").unwrap();
        std::fs::write(docs.join("data-sources/old.md"), "old").unwrap();

        let pages = render(&sample_set(false), &root.path().join("examples")).unwrap();
        let s = write(root.path(), &pages).unwrap();
        assert_eq!(s.written, vec!["ephemeral-resources/token.md", "index.md", "resources/thing.md"]);
        assert_eq!(s.removed, vec!["resources/gone.md", "data-sources/old.md"]);
        assert_eq!(std::fs::read_to_string(docs.join("design.md")).unwrap(), "hand written");
        assert_eq!(std::fs::read_to_string(docs.join("releasing.md")).unwrap(), "hand written too");
        assert!(docs.join("resources/notes.txt").exists());
        assert!(!docs.join("data-sources").exists(), "an emptied page directory is removed");
        assert_eq!(std::fs::read_to_string(docs.join("resources/thing.md")).unwrap(), pages["resources/thing.md"]);

        let again = write(root.path(), &pages).unwrap();
        assert!(again.written.is_empty() && again.removed.is_empty());
        assert_eq!(again.unchanged.len(), 3);
    }

    #[test]
    fn the_real_provider_renders() {
        let set = DocSet::from_provider(&crate::provider::CxflowProvider);
        let dir = tempfile::tempdir().unwrap();
        let pages = render(&set, dir.path()).unwrap();
        let index = &pages["index.md"];
        pos(index, "- `region` (String) AWS region.");
        pos(index, "- `assume_role` (Block List, Max: 1) (see [below for nested schema](#nestedblock--assume_role))");
        pos(index, "### Nested Schema for `assume_role`\n\nRequired:\n\n- `role_arn` (String) ARN of the role to assume.\n");
        assert_eq!(pages.len(), 1 + set.items.len() + set.functions.len());
        for item in &set.items {
            let page = &pages[&set.page_path(item)];
            pos(page, &format!("# {} ({})", item.type_name, item.kind.label()));
            assert!(set.page_path(item).starts_with(item.kind.dir()));
            // Every managed resource documents its identity, with an import block written from it.
            assert_eq!(page.contains("## Identity"), item.kind == Kind::Resource, "{}", item.type_name);
        }
        pos(&pages["resources/secret_sync.md"], "import {\n  to       = cxflow_secret_sync.example\n  identity = {\n    path_prefix = \"...\"\n  }\n}\n");
        pos(&pages["resources/secret_sync.md"], "- `region` (String, Optional for import)");
        // Every function has its page, with the signature written from its parameters.
        assert_eq!(set.functions.len(), 5);
        let f = &pages["functions/ecr_image_uri.md"];
        pos(f, "# function: ecr_image_uri");
        pos(f, "ecr_image_uri(account_id string, region string, repository string, tag_or_digest string) string");
        pos(f, "1. `account_id` (String) The registry's AWS account ID");
        pos(&pages["functions/secret_arns.md"], "secret_arns(prefix_arn string, keys list(string)) map(string)");
    }

    #[test]
    fn page_names_drop_the_provider_prefix() {
        let set = sample_set(false);
        assert_eq!(set.page_path(&set.items[0]), "resources/thing.md");
        let odd = Item { kind: Kind::DataSource, type_name: "cxflow".into(), schema: Schema::default(), identity: None };
        assert_eq!(set.page_path(&odd), "data-sources/cxflow.md");
    }
}
