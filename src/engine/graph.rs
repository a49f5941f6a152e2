//! The child graph: nodes by key, validated dependencies, a topological order
//! and the critical path.

use std::collections::BTreeMap;
use std::fmt;

use super::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    DuplicateKey(String),
    BadKey(String),
    UnknownDependency { node: String, dep: String },
    Cycle(Vec<String>),
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::DuplicateKey(k) => write!(f, "two children use the key {k:?}"),
            GraphError::BadKey(k) => write!(f, "child key {k:?} must be lowercase letters, digits and underscores"),
            GraphError::UnknownDependency { node, dep } => write!(f, "child {node:?} depends on unknown child {dep:?}"),
            GraphError::Cycle(keys) => write!(f, "children depend on each other in a cycle: {}", keys.join(" -> ")),
        }
    }
}

impl std::error::Error for GraphError {}

/// A validated set of child nodes.
pub struct Graph<E: ?Sized + Sync> {
    pub(crate) nodes: Vec<Box<dyn Node<E>>>,
    index: BTreeMap<String, usize>,
    /// deps[i]: indices node i depends on.
    pub(crate) deps: Vec<Vec<usize>>,
    /// A topological order (dependencies first).
    pub(crate) order: Vec<usize>,
}

impl<E: ?Sized + Sync> Graph<E> {
    pub fn new(nodes: Vec<Box<dyn Node<E>>>) -> Result<Graph<E>, GraphError> {
        let mut index = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            let k = n.key();
            if k.is_empty() || !k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                return Err(GraphError::BadKey(k.to_string()));
            }
            if index.insert(k.to_string(), i).is_some() {
                return Err(GraphError::DuplicateKey(k.to_string()));
            }
        }
        let mut deps = Vec::with_capacity(nodes.len());
        for n in &nodes {
            let mut d = Vec::new();
            for dep in n.deps() {
                let j = *index.get(dep).ok_or_else(|| GraphError::UnknownDependency { node: n.key().to_string(), dep: dep.to_string() })?;
                if !d.contains(&j) {
                    d.push(j);
                }
            }
            deps.push(d);
        }
        let order = topo(&nodes, &deps)?;
        Ok(Graph { nodes, index, deps, order })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn node(&self, key: &str) -> Option<&dyn Node<E>> {
        self.index.get(key).map(|&i| self.nodes[i].as_ref())
    }
    pub(crate) fn idx(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }
    /// Keys in a topological order (dependencies first).
    pub fn keys_in_order(&self) -> Vec<&str> {
        self.order.iter().map(|&i| self.nodes[i].key()).collect()
    }
    /// Keys of the nodes the configuration wants.
    pub fn wanted_keys(&self) -> Vec<&str> {
        self.order.iter().filter(|&&i| self.nodes[i].wanted()).map(|&i| self.nodes[i].key()).collect()
    }
    /// Whether node `a` depends on node `b`, directly or through others.
    pub(crate) fn depends_on(&self, a: usize, b: usize) -> bool {
        let mut stack = self.deps[a].clone();
        let mut seen = vec![false; self.nodes.len()];
        while let Some(x) = stack.pop() {
            if x == b {
                return true;
            }
            if !seen[x] {
                seen[x] = true;
                stack.extend(self.deps[x].iter().copied());
            }
        }
        false
    }

    /// The longest chain of wanted children that must be created one after
    /// another (dependencies first). Its length is the least number of
    /// sequential rounds of AWS calls a create needs.
    pub fn critical_path(&self) -> Vec<String> {
        let n = self.nodes.len();
        let mut best: Vec<usize> = vec![0; n];
        let mut prev: Vec<Option<usize>> = vec![None; n];
        for &i in &self.order {
            if !self.nodes[i].wanted() {
                continue;
            }
            best[i] = 1;
            for &d in &self.deps[i] {
                if self.nodes[d].wanted() && best[d] + 1 > best[i] {
                    best[i] = best[d] + 1;
                    prev[i] = Some(d);
                }
            }
        }
        let Some(mut end) = (0..n).filter(|&i| best[i] > 0).max_by_key(|&i| (best[i], std::cmp::Reverse(i))) else {
            return Vec::new();
        };
        let mut chain = vec![self.nodes[end].key().to_string()];
        while let Some(p) = prev[end] {
            chain.push(self.nodes[p].key().to_string());
            end = p;
        }
        chain.reverse();
        chain
    }

    /// The heaviest chain of dependent nodes when node `i` weighs
    /// `weights[i]` (the AWS calls it made, say): the sum along the chain.
    /// Unlike [`Graph::critical_path`] it counts every node, wanted or not.
    pub fn longest_weighted_chain(&self, weights: &[u32]) -> u32 {
        let mut best = vec![0u32; self.nodes.len()];
        for &i in &self.order {
            let before = self.deps[i].iter().map(|&d| best[d]).max().unwrap_or(0);
            best[i] = before + weights.get(i).copied().unwrap_or(0);
        }
        best.into_iter().max().unwrap_or(0)
    }

    /// Length in nodes of [`Graph::critical_path`].
    pub fn critical_path_len(&self) -> usize {
        self.critical_path().len()
    }
}

fn topo<E: ?Sized + Sync>(nodes: &[Box<dyn Node<E>>], deps: &[Vec<usize>]) -> Result<Vec<usize>, GraphError> {
    // Depth-first, visiting nodes in declaration order for a stable result.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<E: ?Sized + Sync>(
        i: usize,
        nodes: &[Box<dyn Node<E>>],
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), GraphError> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = path.iter().position(|&x| x == i).unwrap_or(0);
                let mut cyc: Vec<String> = path[start..].iter().map(|&x| nodes[x].key().to_string()).collect();
                cyc.push(nodes[i].key().to_string());
                return Err(GraphError::Cycle(cyc));
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        path.push(i);
        for &d in &deps[i] {
            visit(d, nodes, deps, marks, path, out)?;
        }
        path.pop();
        marks[i] = Mark::Done;
        out.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; nodes.len()];
    let mut out = Vec::with_capacity(nodes.len());
    let mut path = Vec::new();
    for i in 0..nodes.len() {
        visit(i, nodes, deps, &mut marks, &mut path, &mut out)?;
    }
    Ok(out)
}
