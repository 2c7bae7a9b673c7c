//! Replaying a [`TapeModel`] on a fresh [`Tape`]: each node is recorded again through the
//! tape's public API, so the result can be differentiated and trained like any recording.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};
use wengert_ops::{Op, Shape};
use wengert_tape::{IntoValue, NodeId, Tape};

use crate::element::Element;
use crate::model::{ModelNode, TapeModel};
use crate::plan::ReplayOptions;
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
    ///
    /// Before anything is recorded, the replay is planned at the shapes fed (see
    /// [`plan_replay`](TapeModel::plan_replay)): a shape an op refuses is
    /// [`Error::ShapeInference`], and a replay that would hold more than
    /// `options.max_bytes` is [`Error::ReplayTooLarge`], with nothing allocated for it.
    pub fn replay<'a, V: IntoValue<E>>(
        &self,
        tape: &mut Tape<E>,
        inputs: impl IntoIterator<Item = (&'a str, V)>,
        options: &ReplayOptions,
    ) -> Result<Replay> {
        let wanted = self.wanted(None)?;
        self.replay_nodes(tape, inputs, &wanted, options)
    }

    /// As [`replay`](TapeModel::replay), recording only what the named outputs need (the
    /// logits for a prediction, without the labels a loss would need).
    pub fn replay_outputs<'a, V: IntoValue<E>>(
        &self,
        tape: &mut Tape<E>,
        inputs: impl IntoIterator<Item = (&'a str, V)>,
        outputs: &[&str],
        options: &ReplayOptions,
    ) -> Result<Replay> {
        let wanted = self.wanted(Some(outputs))?;
        self.replay_nodes(tape, inputs, &wanted, options)
    }

    fn replay_nodes<'a, V: IntoValue<E>>(
        &self,
        tape: &mut Tape<E>,
        inputs: impl IntoIterator<Item = (&'a str, V)>,
        wanted: &[u32],
        options: &ReplayOptions,
    ) -> Result<Replay> {
        let len = self.nodes.len();
        // The values fed are the caller's, already in memory: taking them as arrays (a move
        // for an owned array) tells their shapes before anything else is recorded.
        let mut fed: Vec<(u32, Option<ArrayD<E>>)> = Vec::new();
        let mut fed_shapes: Vec<Option<Shape>> = vec![None; len];
        for (name, value) in inputs {
            let node = self.input_node(name)?;
            let mut buf = Vec::new();
            let shape = value.write_into(&mut buf)?;
            if buf.len() != shape.numel() {
                let len = buf.len();
                return Err(wengert_ops::Error::DataLength { shape, len }.into());
            }
            if fed_shapes[node as usize].replace(shape).is_some() {
                return Err(Error::DuplicateName {
                    name: name.to_string(),
                });
            }
            let array = ArrayD::from_shape_vec(IxDyn(shape.dims()), buf)
                .expect("the length was checked against the shape");
            fed.push((node, Some(array)));
        }
        let plan = self.plan_nodes(&fed_shapes, wanted)?;
        plan.check(options)?;
        let mut ids: Vec<Option<NodeId>> = vec![None; len];
        // One list of an op's new input ids, reused from node to node.
        let mut new_inputs: Vec<NodeId> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(planned) = plan.shapes[i] else {
                continue;
            };
            let id = match node {
                ModelNode::Input { .. } => {
                    // The plan found every needed input fed.
                    let value = fed
                        .iter_mut()
                        .find(|(node, _)| *node as usize == i)
                        .and_then(|(_, value)| value.take())
                        .ok_or_else(|| Error::MissingInput {
                            name: self.name_of(&self.inputs, i),
                        })?;
                    tape.input(value)?
                }
                ModelNode::Parameter { value } => tape.parameter(value)?,
                ModelNode::Op { op, inputs, .. } => {
                    // Ancestors of a needed node are needed, and were recorded before it.
                    let recorded = |j: &u32| ids[*j as usize].expect("inputs are recorded first");
                    new_inputs.clear();
                    new_inputs.extend(inputs.iter().map(recorded));
                    // A reshape takes the target the plan adapted to this batch.
                    let op = match op {
                        Op::Reshape(_) => Op::Reshape(planned),
                        other => *other,
                    };
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
}
