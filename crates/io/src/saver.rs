//! [`TapeSaver`]: names a live tape's inputs, parameters and outputs, and saves it.

use std::path::Path;

use wengert_tape::{NodeId, NodeKind, Tape};

use crate::element::Element;
use crate::model::{ModelNode, TapeModel};
use crate::op_v2::op_to_file;
use crate::{Error, Replay, Result};

/// Saves a recorded tape, with names for the nodes a user feeds, trains and reads.
///
/// Inputs and parameters left unnamed are named after their id (`%3`); replaying needs every
/// input that the wanted outputs depend on, by name. A tape holding a custom op cannot be
/// saved ([`Error::CustomOp`]).
///
/// ```
/// use ndarray::array;
/// use wengert_io::{LoadOptions, ReplayOptions, TapeModel, TapeSaver};
/// use wengert_tape::Tape;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut tape = Tape::<f32>::new();
/// let x = tape.input(array![[1.0f32, 2.0]])?;
/// let w = tape.parameter(array![[0.5f32], [-1.0]])?;
/// let y = tape.matmul(x, w)?;
/// let bytes = TapeSaver::new(&tape)
///     .input("x", x)
///     .parameter("w", w)
///     .output("y", y)
///     .metadata("trained_on", "two points")
///     .to_bytes()?;
///
/// // Later, perhaps in another process: replay on a batch of three.
/// let model = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default())?;
/// assert_eq!(model.metadata_value("trained_on"), Some("two points"));
/// let mut tape = Tape::new();
/// let x = array![[1.0f32, 0.0], [0.0, 1.0], [1.0, 1.0]];
/// let replay = model.replay(&mut tape, [("x", x)], &ReplayOptions::default())?;
/// let y = replay.node("y")?;
/// assert_eq!(tape.data(y)?, &[0.5, -1.0, -0.5]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TapeSaver<'t, E: Element> {
    tape: &'t Tape<E>,
    inputs: Vec<(String, NodeId)>,
    parameters: Vec<(String, NodeId)>,
    outputs: Vec<(String, NodeId)>,
    metadata: std::collections::BTreeMap<String, String>,
}

impl<'t, E: Element> TapeSaver<'t, E> {
    /// A saver for `tape`, with no names yet.
    pub fn new(tape: &'t Tape<E>) -> Self {
        TapeSaver {
            tape,
            inputs: Vec::new(),
            parameters: Vec::new(),
            outputs: Vec::new(),
            metadata: std::collections::BTreeMap::new(),
        }
    }

    /// Names an input node (one made by `Tape::input` or `Tape::labels`).
    pub fn input(mut self, name: impl Into<String>, id: NodeId) -> Self {
        self.inputs.push((name.into(), id));
        self
    }

    /// Names a parameter node.
    pub fn parameter(mut self, name: impl Into<String>, id: NodeId) -> Self {
        self.parameters.push((name.into(), id));
        self
    }

    /// Names a node to read after a replay (a prediction, the loss).
    pub fn output(mut self, name: impl Into<String>, id: NodeId) -> Self {
        self.outputs.push((name.into(), id));
        self
    }

    /// Records a metadata entry (what the model was trained on, its class names), read back
    /// with [`TapeModel::metadata_value`]; a later value for the same key replaces an earlier
    /// one. The rules on keys and sizes are checked when the model is made
    /// ([`Error::Metadata`]).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Takes every name from a [`Replay`] of a loaded model, so that a tape replayed (and
    /// trained further) saves under the names it was loaded with.
    pub fn names_from(mut self, replay: &Replay) -> Self {
        self.inputs
            .extend(replay.inputs().map(|(n, id)| (n.to_string(), id)));
        self.parameters
            .extend(replay.parameters().map(|(n, id)| (n.to_string(), id)));
        self.outputs
            .extend(replay.outputs().map(|(n, id)| (n.to_string(), id)));
        self
    }

    /// The model as it would be saved.
    pub fn model(&self) -> Result<TapeModel<E>> {
        let tape = self.tape;
        let mut nodes = Vec::with_capacity(tape.len());
        for id in tape.ids() {
            let node = id.index() as u32;
            let shape = tape.shape(id)?;
            nodes.push(match tape.kind(id)? {
                NodeKind::Input => ModelNode::Input { shape },
                NodeKind::Parameter => ModelNode::Parameter {
                    value: tape.value_owned(id)?,
                },
                NodeKind::Op(op) => {
                    op_to_file(node, &op)?;
                    let inputs = tape.inputs(id)?.iter().map(|i| i.index() as u32).collect();
                    ModelNode::Op { op, inputs, shape }
                }
                NodeKind::Custom(custom) => {
                    return Err(Error::CustomOp {
                        node,
                        name: tape.custom_op(custom)?.name().to_string(),
                    });
                }
            });
        }
        let ids = |list: &[(String, NodeId)], role: &str| -> Result<Vec<(String, u32)>> {
            list.iter()
                .map(|(name, id)| {
                    if id.index() >= nodes.len() {
                        return Err(Error::NodeOutOfRange {
                            what: format!("{role} \"{name}\""),
                            id: id.index() as u32,
                            len: nodes.len(),
                        });
                    }
                    Ok((name.clone(), id.index() as u32))
                })
                .collect()
        };
        let mut inputs = ids(&self.inputs, "input")?;
        let mut parameters = ids(&self.parameters, "parameter")?;
        let outputs = ids(&self.outputs, "output")?;
        // Unnamed leaves are named after their id, and each list is kept in node order so
        // that the same tape always saves to the same bytes.
        for (i, node) in nodes.iter().enumerate() {
            let list = match node {
                ModelNode::Input { .. } => &mut inputs,
                ModelNode::Parameter { .. } => &mut parameters,
                ModelNode::Op { .. } => continue,
            };
            if !list.iter().any(|(_, n)| *n as usize == i) {
                list.push((format!("%{i}"), i as u32));
            }
        }
        inputs.sort_by_key(|(_, n)| *n);
        parameters.sort_by_key(|(_, n)| *n);
        let model = TapeModel {
            nodes,
            inputs,
            parameters,
            outputs,
            metadata: self.metadata.clone(),
        };
        crate::metadata::check(&model.metadata)?;
        model.check_names()?;
        Ok(model)
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.model()?.to_bytes())
    }

    /// Saves the tape atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.model()?.save(path)
    }
}
