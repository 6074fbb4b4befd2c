//! The layer graph: a DAG whose nodes are a spec's layers and whose edges are their inputs.
//!
//! A layer reads the previous layer's output unless it names `inputs:`; the name `input` is
//! the network input. Layers are visited in a topological order that keeps file order
//! wherever the edges allow it (Kahn's algorithm, smallest index first), so a spec written in
//! order is analysed in order. A cycle is an error naming one layer on it and the path.

use crate::error::{did_you_mean, SpecError};
use crate::spec::Spec;
use std::collections::{BinaryHeap, HashMap};

/// Where a layer's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The network input.
    Input,
    /// The output of layer `i` (index into [`Spec::layers`]).
    Layer(usize),
}

/// The resolved DAG of a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// For each layer (spec order), its inputs.
    pub inputs: Vec<Vec<Source>>,
    /// Layer indices in execution order.
    pub order: Vec<usize>,
    /// For each layer, the layers that read its output (spec order).
    pub consumers: Vec<Vec<usize>>,
}

impl Graph {
    /// Resolve input names and order the layers.
    ///
    /// Errors: an input naming no layer (with "did you mean"), a cycle.
    pub fn build(spec: &Spec) -> Result<Graph, SpecError> {
        let n = spec.layers.len();
        // Names are looked up only for `inputs:`; a plain chain (most long specs) needs no index.
        let index: HashMap<&str, usize> = if spec.layers.iter().any(|l| !l.inputs.is_empty()) {
            spec.layers.iter().enumerate().map(|(i, l)| (l.id.name.as_str(), i)).collect()
        } else {
            HashMap::new()
        };
        let mut inputs = Vec::with_capacity(n);
        for (i, l) in spec.layers.iter().enumerate() {
            if l.inputs.is_empty() {
                inputs.push(vec![if i == 0 { Source::Input } else { Source::Layer(i - 1) }]);
                continue;
            }
            let mut srcs = Vec::with_capacity(l.inputs.len());
            for r in &l.inputs {
                if r.name == "input" {
                    srcs.push(Source::Input);
                } else if let Some(&j) = index.get(r.name.as_str()) {
                    srcs.push(Source::Layer(j));
                } else {
                    let names = spec.layers.iter().map(|l| l.id.name.as_str()).chain(["input"]);
                    return Err(SpecError::new(
                        &spec.file,
                        r.loc,
                        format!("unknown input \"{}\"{}: no layer has that name", r.name, did_you_mean(&r.name, names)),
                    )
                    .in_layer(&l.id));
                }
            }
            inputs.push(srcs);
        }
        let mut consumers = vec![Vec::new(); n];
        let mut indegree = vec![0usize; n];
        for (i, srcs) in inputs.iter().enumerate() {
            for s in srcs {
                if let Source::Layer(j) = *s {
                    consumers[j].push(i);
                    indegree[i] += 1;
                }
            }
        }
        let mut ready: BinaryHeap<std::cmp::Reverse<usize>> =
            (0..n).filter(|&i| indegree[i] == 0).map(std::cmp::Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &c in &consumers[i] {
                indegree[c] -= 1;
                if indegree[c] == 0 {
                    ready.push(std::cmp::Reverse(c));
                }
            }
        }
        if order.len() < n {
            let start = (0..n).find(|&i| indegree[i] > 0).expect("a layer left over is on or after a cycle");
            let path = cycle_from(&inputs, &indegree, start);
            let l = &spec.layers[path[0]];
            let names: Vec<&str> =
                path.iter().chain(std::iter::once(&path[0])).map(|&i| spec.layers[i].id.name.as_str()).collect();
            return Err(SpecError::new(
                &spec.file,
                l.loc("inputs"),
                format!("cycle in the layer graph: {}", names.join(" → ")),
            )
            .in_layer(&l.id));
        }
        Ok(Graph { inputs, order, consumers })
    }
}

/// Walk input edges among unfinished layers from `start` until a layer repeats; return the
/// cycle in data-flow order.
fn cycle_from(inputs: &[Vec<Source>], indegree: &[usize], start: usize) -> Vec<usize> {
    let mut seen = HashMap::new();
    let mut path = Vec::new();
    let mut cur = start;
    loop {
        if let Some(&pos) = seen.get(&cur) {
            let mut cyc: Vec<usize> = path[pos..].to_vec();
            cyc.reverse();
            return cyc;
        }
        seen.insert(cur, path.len());
        path.push(cur);
        cur = inputs[cur]
            .iter()
            .find_map(|s| match *s {
                Source::Layer(j) if indegree[j] > 0 => Some(j),
                _ => None,
            })
            .expect("an unfinished layer has an unfinished input");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_bytes;

    const HEAD: &str = "name: t\ninput: [4]\nlayers:\n";

    #[test]
    fn default_inputs_chain_and_named_inputs_resolve() {
        let s = parse_bytes("t.yaml", format!("{HEAD}  - {{name: a, kind: relu}}\n  - {{name: b, kind: relu}}\n  - {{name: c, kind: relu, inputs: [a]}}\n").as_bytes()).unwrap();
        let g = Graph::build(&s).unwrap();
        assert_eq!(g.inputs, vec![vec![Source::Input], vec![Source::Layer(0)], vec![Source::Layer(0)]]);
        assert_eq!(g.order, vec![0, 1, 2]);
        assert_eq!(g.consumers[0], vec![1, 2]);
    }

    #[test]
    fn forward_references_are_ordered_and_cycles_reported() {
        let s = parse_bytes(
            "t.yaml",
            format!("{HEAD}  - {{name: a, kind: relu, inputs: [b]}}\n  - {{name: b, kind: relu, inputs: [input]}}\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(Graph::build(&s).unwrap().order, vec![1, 0]);
        let s = parse_bytes(
            "t.yaml",
            format!("{HEAD}  - {{name: a, kind: relu, inputs: [b]}}\n  - {{name: b, kind: relu, inputs: [a]}}\n")
                .as_bytes(),
        )
        .unwrap();
        let e = Graph::build(&s).unwrap_err().to_string();
        assert_eq!(e, "t.yaml:5:35: layer #1 \"b\" (relu): cycle in the layer graph: b → a → b");
    }

    #[test]
    fn unknown_input_suggests_a_name() {
        let s = parse_bytes(
            "t.yaml",
            format!("{HEAD}  - {{name: conv1, kind: relu}}\n  - {{name: b, kind: relu, inputs: [conv]}}\n").as_bytes(),
        )
        .unwrap();
        let e = Graph::build(&s).unwrap_err().to_string();
        assert_eq!(e, "t.yaml:5:36: layer #1 \"b\" (relu): unknown input \"conv\" (did you mean `conv1`?): no layer has that name");
    }
}
