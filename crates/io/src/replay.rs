//! Replaying a [`TapeModel`] on a fresh [`Tape`]: each node is recorded again through the
//! tape's public API, so the result can be differentiated and trained like any recording.

use std::collections::BTreeMap;

use wengert_ops::{Op, Shape};
use wengert_tape::{IntoValue, NodeId, Tape};

use crate::element::Element;
use crate::model::{ModelNode, TapeModel};
use crate::{Error, Result};

/// The role a name plays in a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Input,
    Parameter,
    Output,
}

/// The nodes a replay recorded, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    /// In the model's order (inputs, parameters, outputs), so that saving again keeps it.
    entries: Vec<(String, Role, NodeId)>,
    index: BTreeMap<String, usize>,
}

impl Replay {
    /// The id of the node recorded under `name`, if it was recorded.
    pub fn get(&self, name: &str) -> Option<NodeId> {
        self.index.get(name).map(|&i| self.entries[i].2)
    }

    /// The id of the node recorded under `name`, or [`Error::UnknownName`].
    pub fn node(&self, name: &str) -> Result<NodeId> {
        self.get(name).ok_or_else(|| Error::UnknownName {
            name: name.to_string(),
        })
    }

    fn with_role(&self, role: Role) -> impl Iterator<Item = (&str, NodeId)> {
        self.entries
            .iter()
            .filter(move |(_, r, _)| *r == role)
            .map(|(n, _, id)| (n.as_str(), *id))
    }

    /// The inputs fed, by name, in the model's order.
    pub fn inputs(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.with_role(Role::Input)
    }

    /// The parameters recorded, by name (what an optimiser updates).
    pub fn parameters(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.with_role(Role::Parameter)
    }

    /// The outputs recorded, by name.
    pub fn outputs(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.with_role(Role::Output)
    }
}

impl<E: Element> TapeModel<E> {
    /// Records the saved computation on `tape`, feeding `inputs` by name, and returns the new
    /// ids by name. Every node that a named output depends on is recorded (every node, if no
    /// output was named), so only the inputs those need must be fed.
    ///
    /// Shapes are inferred afresh, so a batch size other than the recorded one works wherever
    /// the ops allow it; a reshape that kept the leading (batch) axis keeps the new one.
    pub fn replay<'a, V: IntoValue<E>>(
        &self,
        tape: &mut Tape<E>,
        inputs: impl IntoIterator<Item = (&'a str, V)>,
    ) -> Result<Replay> {
        let wanted: Vec<u32> = if self.outputs.is_empty() {
            (0..self.nodes.len() as u32).collect()
        } else {
            self.outputs.iter().map(|&(_, n)| n).collect()
        };
        self.replay_nodes(tape, inputs, &wanted)
    }

    /// As [`replay`](TapeModel::replay), recording only what the named outputs need (the
    /// logits for a prediction, without the labels a loss would need).
    pub fn replay_outputs<'a, V: IntoValue<E>>(
        &self,
        tape: &mut Tape<E>,
        inputs: impl IntoIterator<Item = (&'a str, V)>,
        outputs: &[&str],
    ) -> Result<Replay> {
        let wanted = outputs
            .iter()
            .map(|name| {
                self.outputs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|&(_, id)| id)
                    .ok_or_else(|| Error::UnknownName {
                        name: name.to_string(),
                    })
            })
            .collect::<Result<Vec<u32>>>()?;
        self.replay_nodes(tape, inputs, &wanted)
    }

    fn replay_nodes<'a, V: IntoValue<E>>(
        &self,
        tape: &mut Tape<E>,
        inputs: impl IntoIterator<Item = (&'a str, V)>,
        wanted: &[u32],
    ) -> Result<Replay> {
        let len = self.nodes.len();
        let mut fed: Vec<Option<V>> = (0..len).map(|_| None).collect();
        for (name, value) in inputs {
            let Some(&(_, node)) = self.inputs.iter().find(|(n, _)| n == name) else {
                return Err(Error::UnknownName {
                    name: name.to_string(),
                });
            };
            if fed[node as usize].replace(value).is_some() {
                return Err(Error::DuplicateName {
                    name: name.to_string(),
                });
            }
        }
        let needed = self.ancestors(wanted);
        let mut ids: Vec<Option<NodeId>> = vec![None; len];
        for (i, node) in self.nodes.iter().enumerate() {
            if !needed[i] {
                continue;
            }
            let id = match node {
                ModelNode::Input { .. } => {
                    let value = fed[i].take().ok_or_else(|| Error::MissingInput {
                        name: self.name_of(&self.inputs, i),
                    })?;
                    tape.input(value)?
                }
                ModelNode::Parameter { value } => tape.parameter(value)?,
                ModelNode::Op { op, inputs, .. } => {
                    // Ancestors of a needed node are needed, and were recorded before it.
                    let new_inputs: Vec<NodeId> = inputs
                        .iter()
                        .map(|&j| ids[j as usize].expect("inputs are recorded first"))
                        .collect();
                    let op = self.adapt(op, inputs, &new_inputs, tape)?;
                    tape.record(op, &new_inputs)?
                }
            };
            ids[i] = Some(id);
        }
        let mut replay = Replay::default();
        let lists = [
            (&self.inputs, Role::Input),
            (&self.parameters, Role::Parameter),
            (&self.outputs, Role::Output),
        ];
        for (list, role) in lists {
            for (name, node) in list {
                if let Some(id) = ids[*node as usize] {
                    replay.index.insert(name.clone(), replay.entries.len());
                    replay.entries.push((name.clone(), role, id));
                }
            }
        }
        Ok(replay)
    }

    /// Marks `wanted` and everything they depend on.
    fn ancestors(&self, wanted: &[u32]) -> Vec<bool> {
        let mut needed = vec![false; self.nodes.len()];
        for &w in wanted {
            needed[w as usize] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if let (true, ModelNode::Op { inputs, .. }) = (needed[i], &self.nodes[i]) {
                for &j in inputs {
                    needed[j as usize] = true;
                }
            }
        }
        needed
    }

    fn name_of(&self, list: &[(String, u32)], node: usize) -> String {
        list.iter()
            .find(|(_, n)| *n as usize == node)
            .map_or_else(|| format!("%{node}"), |(name, _)| name.clone())
    }

    /// A reshape is stored with its recorded target shape; when the input's batch (leading)
    /// axis has changed and the reshape kept that axis, the target follows the new batch.
    fn adapt(&self, op: &Op, old: &[u32], new: &[NodeId], tape: &Tape<E>) -> Result<Op> {
        let Op::Reshape(to) = op else {
            return Ok(*op);
        };
        let recorded = self.nodes[old[0] as usize].shape();
        let now = tape.shape(new[0])?;
        let keeps_batch = recorded.rank() >= 1
            && to.rank() >= 1
            && now.rank() == recorded.rank()
            && recorded.dims()[0] == to.dims()[0]
            && now.dims()[1..] == recorded.dims()[1..];
        if now == recorded || !keeps_batch {
            return Ok(*op);
        }
        let mut dims = to.dims().to_vec();
        dims[0] = now.dims()[0];
        Ok(Op::Reshape(Shape::new(&dims)?))
    }
}
