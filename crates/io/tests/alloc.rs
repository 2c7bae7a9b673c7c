//! Hostile files allocate nothing large: the bytes allocated while a loader refuses a file
//! whose length fields claim 2⁴⁰ bytes, or while a replay refuses a tape whose shapes claim
//! terabytes, are counted by an instrumented global allocator; and a replay that runs
//! allocates no more than its plan says.
//!
//! A test binary of its own, its tests taking turns, so that nothing else allocates meanwhile.

use std::sync::Mutex;
use std::time::Instant;

use ndarray::{ArrayD, IxDyn};
use wengert_io::container::{self, FileKind};
use wengert_io::format::v1::{DataV1, ElementV1, NamedNodeV1, NodeV1, OpV1, TapeFileV1, TensorV1};
use wengert_io::{
    Error, LoadOptions, NODE_OVERHEAD_BYTES, ReplayOptions, TapeModel, weights_from_bytes,
};
use wengert_tape::Tape;
use wengert_testkit::alloc::{INSTRUMENTED_SYSTEM, Region};

wengert_testkit::count_allocations!();

/// The tests take turns: the allocator counts every thread.
static TURN: Mutex<()> = Mutex::new(());

/// The bytes allocated (fresh or grown) while `f` runs, with its result.
fn allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(&INSTRUMENTED_SYSTEM);
    let out = f();
    let stats = region.change();
    (
        out,
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize,
    )
}

/// Far below the 16 KiB decode limit of these small files: at most 4 KiB is reserved for a
/// sequence whatever its length field claims, and the rest follows the bytes present.
const BOUND: usize = 16 << 10;

fn measure(what: &str, bytes: &[u8], load: impl Fn(&[u8]) -> bool) {
    let region = Region::new(&INSTRUMENTED_SYSTEM);
    let started = Instant::now();
    let refused = load(bytes);
    let elapsed = started.elapsed();
    let stats = region.change();
    eprintln!(
        "{what}: {} bytes, refused in {elapsed:?}, {} bytes allocated in {} allocations",
        bytes.len(),
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize,
        stats.allocations + stats.reallocations
    );
    assert!(refused, "{what} was accepted");
    assert!(
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize <= BOUND,
        "{what}: {} bytes allocated",
        stats.bytes_allocated
    );
}

#[test]
fn length_fields_claiming_two_to_the_forty_bytes_allocate_nothing_large() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let options = LoadOptions::default();
    let tape = |b: &[u8]| TapeModel::<f32>::from_bytes(b, &options).is_err();
    let weights = |b: &[u8]| weights_from_bytes::<f32>(b, &options).is_err();
    let huge = (1u64 << 40).to_le_bytes();

    let mut header = container::wrap(FileKind::Tape, 1, &[0; 8]);
    header[16..24].copy_from_slice(&huge);
    measure("header payload length 2^40", &header, tape);

    let nodes = container::wrap(
        FileKind::Tape,
        1,
        &[&0u32.to_le_bytes()[..], &huge].concat(),
    );
    measure("tape node count 2^40", &nodes, tape);

    let one = 1u64.to_le_bytes();
    let name = container::wrap(
        FileKind::Weights,
        1,
        &[&0u32.to_le_bytes()[..], &one, &huge, b"w"].concat(),
    );
    measure("weights name length 2^40", &name, weights);

    let shape = container::wrap(
        FileKind::Weights,
        1,
        &[
            &0u32.to_le_bytes()[..],
            &one,
            &one,
            b"w",
            &one,
            &huge,
            &0u32.to_le_bytes(),
            &huge,
        ]
        .concat(),
    );
    measure("weights data length 2^40", &shape, weights);

    let dims = container::wrap(
        FileKind::Weights,
        1,
        &[
            &0u32.to_le_bytes()[..],
            &one,
            &one,
            b"w",
            &2u64.to_le_bytes(),
            &huge,
            &huge,
            &0u32.to_le_bytes(),
            &0u64.to_le_bytes(),
        ]
        .concat(),
    );
    measure("weights shape 2^40 x 2^40", &dims, weights);
}

/// A tape file from its nodes; every input and parameter is named after its id.
fn tape(nodes: Vec<NodeV1>, output: u32) -> TapeModel<f32> {
    let named = |role: fn(&NodeV1) -> bool| -> Vec<NamedNodeV1> {
        nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| role(n))
            .map(|(i, _)| NamedNodeV1 {
                name: format!("n{i}"),
                node: i as u32,
            })
            .collect()
    };
    let file = TapeFileV1 {
        element: ElementV1::F32,
        inputs: named(|n| matches!(n, NodeV1::Input { .. })),
        parameters: named(|n| matches!(n, NodeV1::Parameter { .. })),
        outputs: vec![NamedNodeV1 {
            name: "y".into(),
            node: output,
        }],
        nodes,
    };
    TapeModel::from_bytes(&file.to_bytes(), &LoadOptions::default()).unwrap()
}

fn empty(dims: &[u64]) -> NodeV1 {
    NodeV1::Parameter {
        value: TensorV1 {
            shape: dims.to_vec(),
            data: DataV1::F32(vec![]),
        },
    }
}

fn op(op: OpV1, inputs: &[u32], shape: &[u64]) -> NodeV1 {
    NodeV1::Op {
        op,
        inputs: inputs.to_vec(),
        shape: shape.to_vec(),
    }
}

/// `x[batch, 64]` through `depth` ReLUs.
fn chain(depth: u32) -> TapeModel<f32> {
    let mut nodes = vec![NodeV1::Input { shape: vec![1, 64] }];
    for i in 0..depth {
        nodes.push(op(OpV1::Relu, &[i], &[1, 64]));
    }
    tape(nodes, depth)
}

/// The inputs a replay is fed, by name.
type Fed = Vec<(&'static str, ArrayD<f32>)>;

#[test]
fn hostile_replays_are_refused_before_they_allocate() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let n = 1u64 << 20;
    let cases: Vec<(&str, TapeModel<f32>, Fed)> = vec![
        (
            "[2^20, 0] . [0, 2^20]",
            tape(
                vec![
                    empty(&[n, 0]),
                    empty(&[0, n]),
                    op(OpV1::MatMul, &[0, 1], &[n, n]),
                ],
                2,
            ),
            vec![],
        ),
        (
            "a column of 2^16 times its transpose",
            tape(
                vec![
                    NodeV1::Parameter {
                        value: TensorV1 {
                            shape: vec![1 << 16, 1],
                            data: DataV1::F32(vec![1.0; 1 << 16]),
                        },
                    },
                    op(OpV1::Transpose { axis0: 0, axis1: 1 }, &[0], &[1, 1 << 16]),
                    op(OpV1::MatMul, &[0, 1], &[1 << 16, 1 << 16]),
                ],
                2,
            ),
            vec![],
        ),
        (
            "a batch of 2^40 through x[b, 0] . w[0, 4]",
            tape(
                vec![
                    NodeV1::Input { shape: vec![1, 0] },
                    empty(&[0, 4]),
                    op(OpV1::MatMul, &[0, 1], &[1, 4]),
                ],
                2,
            ),
            vec![("n0", ArrayD::zeros(IxDyn(&[1 << 40, 0])))],
        ),
        (
            "an element count of 2^70",
            tape(
                vec![
                    NodeV1::Input { shape: vec![1, 0] },
                    empty(&[0, 1 << 30]),
                    op(OpV1::MatMul, &[0, 1], &[1, 1 << 30]),
                ],
                2,
            ),
            vec![("n0", ArrayD::zeros(IxDyn(&[1 << 40, 0])))],
        ),
    ];
    for (what, model, inputs) in cases {
        let mut tape = Tape::<f32>::new();
        let (result, bytes) =
            allocated(|| model.replay(&mut tape, inputs, &ReplayOptions::default()));
        let err = result.expect_err(what);
        eprintln!("{what}: refused ({err}), {bytes} bytes allocated");
        assert!(
            matches!(
                err,
                Error::ReplayTooLarge { .. } | Error::ShapeInference { .. }
            ),
            "{what}: {err}"
        );
        assert!(bytes <= BOUND, "{what}: {bytes} bytes allocated");
    }

    // A 100,000-op chain on the digits' 1,797 rows would hold 46 GB; refusing it costs
    // the plan's bookkeeping, which follows the node count, not the claimed sizes.
    let deep = chain(100_000);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1797, 64]));
    let mut tape = Tape::<f32>::new();
    let (result, bytes) =
        allocated(|| deep.replay(&mut tape, [("n0", x)], &ReplayOptions::default()));
    let err = result.expect_err("the deep chain");
    eprintln!("100,000-op chain on 1,797 rows: refused ({err}), {bytes} bytes allocated");
    assert!(matches!(err, Error::ReplayTooLarge { .. }), "{err}");
    assert!(
        bytes as u64 <= 100_001 * NODE_OVERHEAD_BYTES,
        "{bytes} bytes allocated"
    );
}

#[test]
fn a_replay_allocates_no_more_than_its_plan() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    for (depth, batch) in [(1, 1), (10, 3), (5_000, 2), (20_000, 1), (300, 64)] {
        let model = chain(depth);
        let plan = model.plan_replay(&[("n0", &[batch, 64])], None).unwrap();
        let x = ArrayD::<f32>::zeros(IxDyn(&[batch, 64]));
        let options = ReplayOptions::with_max_bytes(plan.bytes() as u64);
        let mut tape = Tape::<f32>::new();
        let (result, bytes) = allocated(|| model.replay(&mut tape, [("n0", x)], &options));
        result.unwrap();
        // The input was the caller's before the replay; everything else is new.
        let planned = plan.bytes() - (batch * 64 * 4) as u128;
        eprintln!(
            "chain of {depth} at batch {batch}: {bytes} bytes allocated, {planned} planned ({:.0} per node beside values)",
            (bytes as f64 - (depth * batch as u32 * 64 * 4) as f64) / f64::from(depth + 1)
        );
        assert!(bytes as u128 <= planned, "{bytes} > {planned}");
    } // One node of 50,000 inputs (a concat of the input with itself): its list of inputs is
    // planned too.
    let mut live = Tape::<f32>::new();
    let x = live.input(ArrayD::<f32>::zeros(IxDyn(&[1, 4]))).unwrap();
    let y = live.concat(vec![x; 50_000], 0).unwrap();
    let model = wengert_io::TapeSaver::new(&live)
        .input("n0", x)
        .output("y", y)
        .model()
        .unwrap();
    let plan = model.plan_replay(&[("n0", &[1, 4])], None).unwrap();
    let options = ReplayOptions::with_max_bytes(plan.bytes() as u64);
    let x = ArrayD::<f32>::zeros(IxDyn(&[1, 4]));
    let mut tape = Tape::<f32>::new();
    let (result, bytes) = allocated(|| model.replay(&mut tape, [("n0", x)], &options));
    result.unwrap();
    let planned = plan.bytes() - 16;
    eprintln!("concat of 50,000 inputs: {bytes} bytes allocated, {planned} planned");
    assert!(bytes as u128 <= planned, "{bytes} > {planned}");
}
