//! Planning a replay before it runs: every needed node's shape at the shapes that will
//! actually be fed, and the bytes the replay will hold, so that a replay too large for its
//! budget is refused before anything is allocated for it.
//!
//! A tape keeps every recorded value until it is cleared, so the replay's peak is the sum of
//! what it records: each needed node's value plus a bounded record per node. Nothing here
//! allocates in proportion to the sizes a file claims; the arithmetic is checked (`u128`
//! sums of `usize` element counts, which cannot overflow for any tape a `u32` id addresses).

use wengert_ops::{Op, Shape, Shapes};

use crate::element::Element;
use crate::model::{ModelNode, TapeModel};
use crate::{Error, Result};

/// The replay budget of [`ReplayOptions::default`]: 4 GiB, four times the largest file
/// [`LoadOptions`](crate::LoadOptions) accepts by default, so that any model it loads can
/// replay at a modest batch.
pub const DEFAULT_MAX_REPLAY_BYTES: u64 = 4 << 30;

/// The bytes a replay holds per recorded node besides its value, an upper bound: the tape's
/// node record with its shape and op (under 200 bytes), the headers of the node's value and
/// gradient buffers and its gradient stamp, the plan's and the replay's own per-node
/// bookkeeping, and room for the tape's node lists doubling as they grow (a growing list
/// briefly holds its old and its new buffer). The allocation test `tests/alloc.rs` checks
/// that a replay allocates no more than its plan, in all (about 760 bytes a node today).
pub const NODE_OVERHEAD_BYTES: u64 = 1024;

/// The bytes each input of an op node of more than two inputs (`concat`, `stack`, `where`, a
/// weighted loss) adds to a replay, an upper bound: its id in the tape's list of inputs and in
/// the replay's reused one, each list briefly doubled as it grows.
pub const LISTED_INPUT_BYTES: u64 = 4 * std::mem::size_of::<wengert_tape::NodeId>() as u64;

/// The bytes a replay holds whatever its size, an upper bound: the first allocations of the
/// tape's lists and of the [`Replay`](crate::Replay)'s index of names.
pub const REPLAY_FIXED_BYTES: u64 = 16 << 10;

/// Limits on a replay, checked before anything is recorded.
///
/// ```
/// use wengert_io::ReplayOptions;
/// assert_eq!(ReplayOptions::default().max_bytes, wengert_io::DEFAULT_MAX_REPLAY_BYTES);
/// assert_eq!(ReplayOptions::with_max_bytes(1 << 20).max_bytes, 1 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOptions {
    /// The most bytes the replay may hold at once (see [`ReplayPlan::bytes`]); a replay that
    /// needs more is refused with [`Error::ReplayTooLarge`]. The default is
    /// [`DEFAULT_MAX_REPLAY_BYTES`] (4 GiB).
    pub max_bytes: u64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            max_bytes: DEFAULT_MAX_REPLAY_BYTES,
        }
    }
}

impl ReplayOptions {
    /// Options with another budget.
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        ReplayOptions { max_bytes }
    }
}

/// What a replay at given input shapes would record, worked out without recording it: made
/// by [`TapeModel::plan_replay`], checked by every [`replay`](TapeModel::replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPlan {
    /// Each model node's shape at this replay, `None` for a node it does not record.
    pub(crate) shapes: Vec<Option<Shape>>,
    outputs: Vec<(String, Shape)>,
    nodes: usize,
    elements: u128,
    bytes: u128,
}

impl ReplayPlan {
    /// The peak bytes the replay holds: every recorded node's value (a tape keeps them all
    /// until it is cleared; an empty value as though its empty axes had length 1, since it
    /// stores nothing but the kernels still walk its other axes: a `[2^40, 0]` value would
    /// cost 2^40 steps of a softmax) and a convolution's patch buffer,
    /// [`NODE_OVERHEAD_BYTES`] per node (and
    /// [`LISTED_INPUT_BYTES`] per input of a node of more than two), its names twice (the
    /// [`Replay`](crate::Replay) indexes them) and [`REPLAY_FIXED_BYTES`]. The inputs' values
    /// count too, though the caller made them. A later `backward` needs about as much again
    /// for gradients, which this does not count.
    pub fn bytes(&self) -> u128 {
        self.bytes
    }

    /// The elements of every recorded node's value (and convolution's patch buffer), summed;
    /// an empty value counts as though its empty axes had length 1 (see
    /// [`ReplayPlan::bytes`]).
    pub fn elements(&self) -> u128 {
        self.elements
    }

    /// How many nodes the replay records.
    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The shape a named output will have, if the replay records it.
    pub fn output_shape(&self, name: &str) -> Option<Shape> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, shape)| shape)
    }

    /// An error if the replay needs more than `options` allow.
    pub fn check(&self, options: &ReplayOptions) -> Result<()> {
        if self.bytes > u128::from(options.max_bytes) {
            return Err(Error::ReplayTooLarge {
                needed: self.bytes,
                budget: options.max_bytes,
                batch: None,
            });
        }
        Ok(())
    }
}

/// The elements a value of `shape` counts for: its element count, or for an empty value the
/// product of its non-empty axes (saturating: six axes of `usize` can pass `u128`).
fn walked(shape: &Shape) -> u128 {
    shape
        .dims()
        .iter()
        .fold(1u128, |n, &d| n.saturating_mul(d.max(1) as u128))
}

impl<E: Element> TapeModel<E> {
    /// Works out what a replay would record for inputs of these shapes (by name), without
    /// recording anything: each needed node's shape (shape inference runs on the given
    /// shapes, not the recorded ones), and the bytes it would hold. `outputs` names the
    /// outputs wanted, as [`replay_outputs`](TapeModel::replay_outputs) does; `None` plans
    /// what [`replay`](TapeModel::replay) records.
    ///
    /// A shape no op accepts, or an element count past `usize::MAX`, is
    /// [`Error::ShapeInference`] naming the node.
    ///
    /// ```
    /// # use ndarray::array;
    /// # use wengert_io::{LoadOptions, TapeModel, TapeSaver};
    /// # use wengert_tape::Tape;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tape = Tape::<f32>::new();
    /// let x = tape.input(array![[1.0f32, 2.0]])?;
    /// let w = tape.parameter(array![[0.5f32], [-1.0]])?;
    /// let y = tape.matmul(x, w)?;
    /// let bytes = TapeSaver::new(&tape).input("x", x).parameter("w", w).output("y", y).to_bytes()?;
    /// let model = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default())?;
    ///
    /// let plan = model.plan_replay(&[("x", &[1000, 2])], None)?;
    /// assert_eq!(plan.output_shape("y").unwrap().dims(), &[1000, 1]);
    /// assert_eq!(plan.elements(), 2000 + 2 + 1000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn plan_replay(
        &self,
        inputs: &[(&str, &[usize])],
        outputs: Option<&[&str]>,
    ) -> Result<ReplayPlan> {
        let mut fed: Vec<Option<Shape>> = vec![None; self.nodes.len()];
        for &(name, dims) in inputs {
            let node = self.input_node(name)?;
            if fed[node as usize].replace(Shape::new(dims)?).is_some() {
                return Err(Error::DuplicateName {
                    name: name.to_string(),
                });
            }
        }
        let wanted = self.wanted(outputs)?;
        self.plan_nodes(&fed, &wanted)
    }

    /// The largest batch, at most `at_most` (and at least 1), whose replay fits `options`:
    /// every input named in `rows` is fed a batch of that many examples of the given shape
    /// (the batch axis first), and the caller holds `extra_per_row` more bytes per example
    /// beside the replay (its copies of the outputs, say). Use it to pick the chunk size of a
    /// replay over a large data set: a deep model gets smaller chunks, not a refusal.
    ///
    /// If even one example does not fit, the error is [`Error::ReplayTooLarge`] with
    /// `batch: Some(1)`; a shape the model refuses at batch 1 is its error. A batch size at
    /// which shape inference fails counts as not fitting.
    ///
    /// ```
    /// # use ndarray::array;
    /// # use wengert_io::{LoadOptions, ReplayOptions, TapeModel, TapeSaver};
    /// # use wengert_tape::Tape;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let mut tape = Tape::<f32>::new();
    /// # let x = tape.input(array![[1.0f32, 2.0]])?;
    /// # let w = tape.parameter(array![[0.5f32], [-1.0]])?;
    /// # let y = tape.matmul(x, w)?;
    /// # let bytes = TapeSaver::new(&tape).input("x", x).parameter("w", w).output("y", y).to_bytes()?;
    /// # let model = TapeModel::<f32>::from_bytes(&bytes, &LoadOptions::default())?;
    /// let budget = ReplayOptions::with_max_bytes(1 << 20);
    /// let batch = model.largest_batch(&[("x", &[2])], None, &budget, 1_000_000, 0)?;
    /// assert!(model.plan_replay(&[("x", &[batch, 2])], None)?.bytes() <= 1 << 20);
    /// assert!(model.plan_replay(&[("x", &[batch + 1, 2])], None)?.bytes() > 1 << 20);
    /// # Ok(())
    /// # }
    /// ```
    pub fn largest_batch(
        &self,
        rows: &[(&str, &[usize])],
        outputs: Option<&[&str]>,
        options: &ReplayOptions,
        at_most: usize,
        extra_per_row: u64,
    ) -> Result<usize> {
        let cost = |batch: usize| -> Result<u128> {
            let dims: Vec<Vec<usize>> = rows
                .iter()
                .map(|(_, row)| std::iter::once(batch).chain(row.iter().copied()).collect())
                .collect();
            let shapes: Vec<(&str, &[usize])> = rows
                .iter()
                .zip(&dims)
                .map(|(&(name, _), d)| (name, d.as_slice()))
                .collect();
            let plan = self.plan_replay(&shapes, outputs)?;
            Ok(plan.bytes() + batch as u128 * u128::from(extra_per_row))
        };
        let budget = u128::from(options.max_bytes);
        let one = cost(1)?;
        if one > budget {
            return Err(Error::ReplayTooLarge {
                needed: one,
                budget: options.max_bytes,
                batch: Some(1),
            });
        }
        let fits = |batch: usize| cost(batch).is_ok_and(|bytes| bytes <= budget);
        if at_most <= 1 || fits(at_most) {
            return Ok(at_most.max(1));
        }
        // Element counts grow with the batch, so the sizes that fit are a prefix: bisect it.
        let (mut fitting, mut too_large) = (1, at_most);
        while too_large - fitting > 1 {
            let mid = fitting + (too_large - fitting) / 2;
            if fits(mid) {
                fitting = mid;
            } else {
                too_large = mid;
            }
        }
        Ok(fitting)
    }

    /// The node ids a replay is asked for: the named outputs, every output if `None`, and
    /// every node if the model names no output.
    pub(crate) fn wanted(&self, outputs: Option<&[&str]>) -> Result<Vec<u32>> {
        match outputs {
            None if self.outputs.is_empty() => Ok((0..self.nodes.len() as u32).collect()),
            None => Ok(self.outputs.iter().map(|&(_, n)| n).collect()),
            Some(names) => names
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
                .collect(),
        }
    }

    /// The node of the input named `name`.
    pub(crate) fn input_node(&self, name: &str) -> Result<u32> {
        self.inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, node)| node)
            .ok_or_else(|| Error::UnknownName {
                name: name.to_string(),
            })
    }

    /// Plans the nodes `wanted` needs, given the shape fed to each input node (by node id).
    pub(crate) fn plan_nodes(&self, fed: &[Option<Shape>], wanted: &[u32]) -> Result<ReplayPlan> {
        let needed = self.ancestors(wanted);
        let mut shapes: Vec<Option<Shape>> = vec![None; self.nodes.len()];
        let (mut nodes, mut elements, mut listed) = (0usize, 0u128, 0u128);
        for (i, node) in self.nodes.iter().enumerate() {
            if !needed[i] {
                continue;
            }
            let shape = match node {
                ModelNode::Input { .. } => fed[i].ok_or_else(|| Error::MissingInput {
                    name: self.name_of(&self.inputs, i),
                })?,
                ModelNode::Parameter { .. } => node.shape(),
                ModelNode::Op { op, inputs, .. } => {
                    if inputs.len() > 2 {
                        listed += inputs.len() as u128;
                    }
                    // Ancestors of a needed node are needed, and come before it.
                    let now = PlannedShapes {
                        shapes: &shapes,
                        inputs,
                    };
                    let op = self.adapt(op, inputs, now.shape(0));
                    let infer = |source| Error::ShapeInference {
                        node: i as u32,
                        source,
                    };
                    let shape = op.output_shape(&now).map_err(infer)?;
                    // A convolution's patch buffer, kept beside its value.
                    let scratch = op.scratch_len(&now).map_err(infer)?;
                    elements = elements.saturating_add(scratch as u128);
                    shape
                }
            };
            nodes += 1;
            elements = elements.saturating_add(walked(&shape));
            shapes[i] = Some(shape);
        }
        let outputs = self
            .outputs
            .iter()
            .filter_map(|(name, n)| shapes[*n as usize].map(|s| (name.clone(), s)))
            .collect();
        let name_bytes: u128 = [&self.inputs, &self.parameters, &self.outputs]
            .into_iter()
            .flatten()
            .filter(|(_, n)| shapes[*n as usize].is_some())
            .map(|(name, _)| 2 * name.len() as u128)
            .sum();
        let element_bytes = std::mem::size_of::<E>() as u128;
        let bytes = elements
            .saturating_mul(element_bytes)
            .saturating_add(nodes as u128 * u128::from(NODE_OVERHEAD_BYTES))
            .saturating_add(listed.saturating_mul(u128::from(LISTED_INPUT_BYTES)))
            .saturating_add(name_bytes)
            .saturating_add(u128::from(REPLAY_FIXED_BYTES));
        Ok(ReplayPlan {
            shapes,
            outputs,
            nodes,
            elements,
            bytes,
        })
    }

    /// Marks `wanted` and everything they depend on.
    pub(crate) fn ancestors(&self, wanted: &[u32]) -> Vec<bool> {
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

    /// The name a node has in `list`, or `%id`.
    pub(crate) fn name_of(&self, list: &[(String, u32)], node: usize) -> String {
        list.iter()
            .find(|(_, n)| *n as usize == node)
            .map_or_else(|| format!("%{node}"), |(name, _)| name.clone())
    }

    /// A reshape is stored with its recorded target shape; when its input's batch (leading)
    /// axis has changed and the reshape kept that axis, the target follows the new batch.
    /// `now` is the shape this replay feeds the node's (first) input.
    fn adapt(&self, op: &Op, inputs: &[u32], now: &Shape) -> Op {
        let Op::Reshape(to) = op else {
            return *op;
        };
        let recorded = self.nodes[inputs[0] as usize].shape();
        let now = *now;
        let keeps_batch = recorded.rank() >= 1
            && to.rank() >= 1
            && now.rank() == recorded.rank()
            && recorded.dims()[0] == to.dims()[0]
            && now.dims()[1..] == recorded.dims()[1..];
        if now == recorded || !keeps_batch {
            return *op;
        }
        let mut dims = to.dims().to_vec();
        dims[0] = now.dims()[0];
        // A target whose count overflows keeps the recorded one, which output_shape refuses.
        Shape::new(&dims).map_or(*op, Op::Reshape)
    }
}

/// The shapes a plan has worked out for an op node's inputs, read in place (the inputs come
/// before the node, so each is planned).
struct PlannedShapes<'p> {
    shapes: &'p [Option<Shape>],
    inputs: &'p [u32],
}

impl<'p> Shapes<'p> for PlannedShapes<'p> {
    fn count(&self) -> usize {
        self.inputs.len()
    }

    fn shape(&self, k: usize) -> &'p Shape {
        self.shapes[self.inputs[k] as usize]
            .as_ref()
            .expect("inputs are planned first")
    }
}
