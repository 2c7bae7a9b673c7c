//! What every engine's benchmark program shares: the workloads' constants, a seeded random
//! generator, the digits set's parsing and split, and the JSON line a measurement is printed as.
//!
//! This file has no dependencies on purpose: the peers and baselines packages, which live outside
//! the workspace, include it with `#[path = "../../src/shared.rs"] mod shared;`, so that every
//! engine runs on the same data with the same constants.

#![allow(
    dead_code,
    reason = "each program including this file uses a different part of it"
)]

/// W1: the square sizes of `C = A·B`.
pub const W1_SIZES: [usize; 5] = [128, 256, 512, 1024, 2048];
/// W2 and W5: the layer widths of the MLP.
pub const W2_LAYERS: [usize; 4] = [784, 512, 512, 10];
/// W2: the batch sizes.
pub const W2_BATCHES: [usize; 3] = [32, 128, 1024];
/// W2: plain SGD's learning rate.
pub const W2_LR: f32 = 0.01;
/// W2: steps run and thrown away before timing.
pub const W2_WARMUP: usize = 10;
/// W2: timed steps in a full run (at least 50, as WORKLOADS.md asks).
pub const W2_STEPS: usize = 50;
/// W3: recorded ops in the chain.
pub const W3_OPS: usize = 10_000;
/// W4: the layer widths of the digits MLP.
pub const W4_LAYERS: [usize; 3] = [64, 128, 10];
/// W4: images in the training split; the rest (360) are the test split.
pub const W4_TRAIN: usize = 1437;
/// W4: batch size, epochs and Adam's constants.
pub const W4_BATCH: usize = 32;
/// W4: passes over the training split.
pub const W4_EPOCHS: usize = 30;
/// W4: Adam's learning rate.
pub const W4_LR: f32 = 1e-3;
/// W4: Adam's first-moment decay.
pub const W4_BETA1: f32 = 0.9;
/// W4: Adam's second-moment decay.
pub const W4_BETA2: f32 = 0.999;
/// W4: Adam's denominator guard.
pub const W4_EPS: f32 = 1e-8;
/// W5: the W2 batch size and the number of steps the measured process runs.
pub const W5_BATCH: usize = 128;
/// W5: steps of the measured process; allocations are counted over the second half.
pub const W5_STEPS: usize = 200;
/// W6: the small CNN's shape (batch, image side, channels, hidden width, classes).
pub const W6: CnnSpec = CnnSpec {
    batch: 64,
    side: 28,
    channels: [1, 32, 64],
    hidden: 128,
    classes: 10,
};
/// W6: plain SGD's learning rate.
pub const W6_LR: f32 = 0.01;
/// W6: steps run and thrown away before timing.
pub const W6_WARMUP: usize = 5;
/// W6: timed steps in a full run (at least 30, as WORKLOADS.md asks).
pub const W6_STEPS: usize = 30;
/// The seed of every random stream.
pub const SEED: u64 = 0x5EED_2026;

// The one SplitMix64 of the tests and benchmarks, by path so that this file keeps no
// dependencies (the path is relative to this file, wherever it is included from).
#[path = "../../crates/testkit/src/splitmix.rs"]
mod splitmix;

/// SplitMix64 with the draws the workloads make, identical in every program that includes
/// this file (and in `benches/peers/pytorch_bench.py`'s port).
#[derive(Debug, Clone)]
pub struct Rng(splitmix::SplitMix64);

impl Rng {
    /// A generator whose stream depends on `seed` alone.
    pub fn new(seed: u64) -> Self {
        Rng(splitmix::SplitMix64::new(seed))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`, with 24 random bits.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-bound, bound)`.
    pub fn symmetric(&mut self, bound: f32) -> f32 {
        (2.0 * self.uniform() - 1.0) * bound
    }

    /// Standard normal, by Box–Muller (one of the pair is thrown away: simplicity over speed).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// `len` standard normal values.
pub fn normal_vec(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.normal()).collect()
}

/// `len` labels uniform in `0..classes`.
pub fn label_vec(rng: &mut Rng, len: usize, classes: usize) -> Vec<usize> {
    (0..len).map(|_| rng.below(classes)).collect()
}

/// The weights and biases of an MLP, initialised as PyTorch's `nn.Linear` does (uniform in
/// ±1/√fan_in), weights stored `[fan_in, fan_out]` row-major so that a layer is `x·W + b`.
pub fn mlp_init(rng: &mut Rng, layers: &[usize]) -> Vec<(Vec<f32>, Vec<f32>)> {
    layers
        .windows(2)
        .map(|w| {
            let bound = 1.0 / (w[0] as f32).sqrt();
            let weight = (0..w[0] * w[1]).map(|_| rng.symmetric(bound)).collect();
            let bias = (0..w[1]).map(|_| rng.symmetric(bound)).collect();
            (weight, bias)
        })
        .collect()
}

/// The shape of W6's network: `conv(c0→c1, 3×3, pad 1)`, ReLU, 2×2 max-pool, `conv(c1→c2, 3×3,
/// pad 1)`, ReLU, 2×2 max-pool, flatten, `linear(→hidden)`, ReLU, `linear(hidden→classes)`, on a
/// batch of `c0 × side × side` images (`side` a multiple of 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CnnSpec {
    /// Images per step.
    pub batch: usize,
    /// Height and width of an image.
    pub side: usize,
    /// Channels of the input and of the two convolutions' outputs.
    pub channels: [usize; 3],
    /// Width of the hidden linear layer.
    pub hidden: usize,
    /// Classes (outputs of the last layer).
    pub classes: usize,
}

impl CnnSpec {
    /// Elements of one input image.
    pub fn image_len(&self) -> usize {
        self.channels[0] * self.side * self.side
    }

    /// Features after the second pooling, flattened (64·7·7 = 3136 for W6).
    pub fn flat(&self) -> usize {
        self.channels[2] * (self.side / 4) * (self.side / 4)
    }

    /// The parameters' shapes in order: conv weights `[O, C, 3, 3]` and biases, then linear
    /// weights `[fan_in, fan_out]` and biases.
    pub fn param_shapes(&self) -> [(Vec<usize>, usize); 4] {
        let [c0, c1, c2] = self.channels;
        [
            (vec![c1, c0, 3, 3], c1),
            (vec![c2, c1, 3, 3], c2),
            (vec![self.flat(), self.hidden], self.hidden),
            (vec![self.hidden, self.classes], self.classes),
        ]
    }

    /// Multiply-adds of the convolutions' products in one training step, times two: each
    /// convolution's forward pass and weight gradient, and the input gradient of the second
    /// (the first one's input is data, which needs none); a pass is 2 · output elements ·
    /// kernel volume (input channels · 3 · 3).
    pub fn conv_step_flops(&self) -> f64 {
        let [c0, c1, c2] = self.channels;
        let (s, half) = (self.side, self.side / 2);
        let pass1 = 2.0 * (self.batch * c1 * s * s) as f64 * (c0 * 9) as f64;
        let pass2 = 2.0 * (self.batch * c2 * half * half) as f64 * (c1 * 9) as f64;
        2.0 * pass1 + 3.0 * pass2
    }
}

/// The CNN's weights and biases, initialised as PyTorch's `nn.Conv2d` and `nn.Linear` do
/// (uniform in ±1/√fan_in, fan_in = input channels · 3 · 3 for a convolution), from a seeded
/// stream, in the order and layouts of [`CnnSpec::param_shapes`].
pub fn cnn_init(rng: &mut Rng, spec: &CnnSpec) -> Vec<(Vec<f32>, Vec<f32>)> {
    spec.param_shapes()
        .into_iter()
        .map(|(dims, outputs)| {
            let len: usize = dims.iter().product();
            let fan_in = len / outputs;
            let bound = 1.0 / (fan_in as f32).sqrt();
            let weight = (0..len).map(|_| rng.symmetric(bound)).collect();
            let bias = (0..outputs).map(|_| rng.symmetric(bound)).collect();
            (weight, bias)
        })
        .collect()
}

/// A data set of row-major feature rows and their labels.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// `len × features` values.
    pub features: Vec<f32>,
    /// One class per row.
    pub labels: Vec<usize>,
}

impl Split {
    /// The number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Parses the digits CSV (64 integer pixels 0..16, then the label, no header), scales pixels by
/// 1/16, shuffles the rows with [`SEED`] and splits them: the first [`W4_TRAIN`] train, the rest
/// test.
pub fn digits_split(csv: &str) -> Result<(Split, Split), String> {
    let mut rows: Vec<(Vec<f32>, usize)> = Vec::new();
    for (n, line) in csv
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != 65 {
            return Err(format!(
                "digits line {}: {} fields, expected 65",
                n + 1,
                fields.len()
            ));
        }
        let parse = |s: &str| {
            s.trim()
                .parse::<f32>()
                .map_err(|e| format!("digits line {}: '{s}': {e}", n + 1))
        };
        let pixels = fields[..64]
            .iter()
            .map(|s| parse(s).map(|v| v / 16.0))
            .collect::<Result<Vec<_>, _>>()?;
        let label = parse(fields[64])?;
        if !(0.0..10.0).contains(&label) || label.fract() != 0.0 {
            return Err(format!("digits line {}: label {label} is not 0..9", n + 1));
        }
        rows.push((pixels, label as usize));
    }
    if rows.len() <= W4_TRAIN {
        return Err(format!(
            "digits: {} rows, expected more than {W4_TRAIN}",
            rows.len()
        ));
    }
    Rng::new(SEED).shuffle(&mut rows);
    let mut train = Split::default();
    let mut test = Split::default();
    for (i, (pixels, label)) in rows.into_iter().enumerate() {
        let split = if i < W4_TRAIN { &mut train } else { &mut test };
        split.features.extend_from_slice(&pixels);
        split.labels.push(label);
    }
    Ok((train, test))
}

/// The share of rows whose largest logit is at their label; `logits` is `len × classes`.
pub fn accuracy(logits: &[f32], labels: &[usize]) -> f64 {
    let classes = logits.len() / labels.len().max(1);
    let hits = logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |best, (k, &v)| if v > row[best] { k } else { best });
            best == **label
        })
        .count();
    hits as f64 / labels.len().max(1) as f64
}

/// The median of `samples` (which it sorts); NaN if there are none.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        (samples[mid - 1] + samples[mid]) / 2.0
    }
}

/// One measurement as a single line of JSON, the record format of `cargo xtask bench --json`:
/// `{"workload":"W1","engine":"gemm","threads":2,"params":{"n":512},"figures":{"gflops":70.1}}`.
/// Names are plain identifiers, so they need no escaping; a non-finite figure becomes `null`.
pub fn record_json(
    workload: &str,
    engine: &str,
    threads: usize,
    params: &[(&str, u64)],
    figures: &[(&str, f64)],
) -> String {
    let params: Vec<String> = params.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    let figures: Vec<String> = figures
        .iter()
        .map(|(k, v)| {
            if v.is_finite() {
                format!("\"{k}\":{v}")
            } else {
                format!("\"{k}\":null")
            }
        })
        .collect();
    format!(
        "{{\"workload\":\"{workload}\",\"engine\":\"{engine}\",\"threads\":{threads},\"params\":{{{}}},\"figures\":{{{}}}}}",
        params.join(","),
        figures.join(",")
    )
}

/// How many repetitions a measurement gets: fewer with `--quick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// The documented figures: at least 50 timed steps, several repetitions of every product.
    Full,
    /// A smoke run: the same workloads, fewer repetitions.
    Quick,
}

impl Effort {
    /// `--quick` among the arguments selects [`Effort::Quick`].
    pub fn from_args(args: &[String]) -> Self {
        if args.iter().any(|a| a == "--quick") {
            Effort::Quick
        } else {
            Effort::Full
        }
    }

    /// Timed W2 steps after the warm-up.
    pub fn w2_steps(self) -> usize {
        match self {
            Effort::Full => W2_STEPS,
            Effort::Quick => 10,
        }
    }

    /// W2 warm-up steps.
    pub fn w2_warmup(self) -> usize {
        match self {
            Effort::Full => W2_WARMUP,
            Effort::Quick => 2,
        }
    }

    /// Seconds of timed repetitions per W1 configuration (at least three repetitions run).
    pub fn w1_seconds(self) -> f64 {
        match self {
            Effort::Full => 1.0,
            Effort::Quick => 0.15,
        }
    }

    /// W3 chains timed (after one warm-up chain).
    pub fn w3_chains(self) -> usize {
        match self {
            Effort::Full => 50,
            Effort::Quick => 5,
        }
    }

    /// Timed W6 steps after the warm-up.
    pub fn w6_steps(self) -> usize {
        match self {
            Effort::Full => W6_STEPS,
            Effort::Quick => 5,
        }
    }

    /// W6 warm-up steps.
    pub fn w6_warmup(self) -> usize {
        match self {
            Effort::Full => W6_WARMUP,
            Effort::Quick => 2,
        }
    }

    /// W4 trainings timed (the median is reported).
    pub fn w4_runs(self) -> usize {
        match self {
            Effort::Full => 3,
            Effort::Quick => 1,
        }
    }
}

/// Times the `calls` in turns, for at least three rounds and at least `seconds` in all, after
/// one untimed round (warm caches, page in buffers, start thread pools); returns each call's
/// median time in seconds, in the order given.
///
/// A round calls each once, in an order shuffled afresh (from a fixed seed) every round: every
/// call sees the same background load, and follows each of the others about equally often, so
/// that what one call leaves behind (a sleeping thread pool, a cold cache) does not always fall
/// on the same next one. The ratios of the medians hold on a busy machine, where times taken
/// minutes apart do not.
pub fn interleaved_medians(seconds: f64, calls: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    interleaved(seconds, calls, false)
}

/// [`interleaved_medians`], each turn calling once untimed and then once timed: every timed
/// call follows one of its own, so it finds its thread pool awake and its operands in cache, as
/// the Python peers' calls, made back to back, do. For W1, whose small products take about as
/// long as waking a pool's sleeping workers (45-115 µs here), which every turn after another
/// engine's otherwise pays.
pub fn interleaved_warm_medians(seconds: f64, calls: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    interleaved(seconds, calls, true)
}

fn interleaved(seconds: f64, calls: &mut [&mut dyn FnMut()], warm: bool) -> Vec<f64> {
    for call in calls.iter_mut() {
        call();
    }
    let mut samples = vec![Vec::new(); calls.len()];
    let mut order: Vec<usize> = (0..calls.len()).collect();
    let mut rng = Rng::new(SEED);
    let start = std::time::Instant::now();
    let mut round = 0;
    while round < 3 || (start.elapsed().as_secs_f64() < seconds && round < 10_000) {
        rng.shuffle(&mut order);
        for &i in &order {
            if warm {
                calls[i]();
            }
            let t = std::time::Instant::now();
            calls[i]();
            samples[i].push(t.elapsed().as_secs_f64());
        }
        round += 1;
    }
    samples.iter_mut().map(|s| median(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_random_stream_is_seeded_and_in_range() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(10) < 10);
        }
        let n = normal_vec(&mut r, 20_000);
        let mean = n.iter().map(|&v| v as f64).sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn the_stream_matches_the_python_port() {
        // benches/peers/pytorch_bench.py --selftest checks the same values: change both together.
        let mut r = Rng::new(SEED);
        assert_eq!(r.next_u64(), 3220337691051907759);
        assert_eq!(r.next_u64(), 18362673279826037020);
        assert_eq!(r.below(1437), 722);
        let mut v: Vec<usize> = (0..10).collect();
        Rng::new(3).shuffle(&mut v);
        assert_eq!(v, [2, 8, 7, 4, 5, 6, 0, 1, 9, 3]);
        // W6's images come from the normal draw (peer_common.py's port checks the same).
        let mut r = Rng::new(SEED);
        assert!((r.normal() - 1.867_603_2).abs() < 1e-6);
        assert!((r.normal() - 0.720_112_2).abs() < 1e-6);
    }

    #[test]
    fn a_shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..100).collect();
        Rng::new(3).shuffle(&mut v);
        assert_ne!(v, (0..100).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn digits_lines_are_checked_and_split() {
        let line = |label: usize| {
            let mut s = vec!["16"; 64].join(",");
            s.push_str(&format!(",{label}\n"));
            s
        };
        let csv: String = (0..1500).map(|i| line(i % 10)).collect();
        let (train, test) = digits_split(&csv).unwrap();
        assert_eq!((train.len(), test.len()), (W4_TRAIN, 63));
        assert_eq!(train.features.len(), W4_TRAIN * 64);
        assert!(train.features.iter().all(|&v| v == 1.0));
        assert!(digits_split("1,2,3\n").unwrap_err().contains("65"));
        assert!(digits_split(&line(10)).unwrap_err().contains("label"));
    }

    #[test]
    fn accuracy_counts_argmax_hits() {
        let logits = [0.1, 0.9, 0.8, 0.2, 0.5, 0.4];
        assert_eq!(accuracy(&logits, &[1, 0, 1]), 2.0 / 3.0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn warm_turns_time_the_second_of_two_calls() {
        // A call that is slow the first time after another engine's call and fast the time
        // after its own: the warm medians see the fast one.
        let last = std::cell::Cell::new(usize::MAX);
        let calls = std::cell::RefCell::new(Vec::new());
        let mut first = || {
            calls.borrow_mut().push(0);
            if last.get() != 0 {
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            last.set(0);
        };
        let mut second = || {
            calls.borrow_mut().push(1);
            last.set(1);
        };
        let warm = interleaved_warm_medians(0.02, &mut [&mut first, &mut second]);
        assert!(warm[0] < 0.002, "{warm:?}");
        let n = calls.borrow().len();
        // The untimed round, then pairs of calls of the same engine.
        assert!(n >= 2 + 12, "{n}");
        assert!(calls.borrow()[2..].chunks(2).all(|p| p[0] == p[1]));
    }

    #[test]
    fn interleaved_calls_take_turns_and_get_their_own_medians() {
        let order = std::cell::RefCell::new(String::new());
        let mut fast = || order.borrow_mut().push('f');
        let mut slow = || {
            order.borrow_mut().push('s');
            std::thread::sleep(std::time::Duration::from_millis(2));
        };
        let mut other = || order.borrow_mut().push('o');
        let medians = interleaved_medians(0.02, &mut [&mut fast, &mut slow, &mut other]);
        let order = order.borrow().chars().collect::<Vec<_>>();
        // An untimed round, then at least three (0.02 s / 2 ms: about ten), each calling every
        // one once, in orders that differ.
        assert!(order.len() >= 12 && order.len() % 3 == 0, "{order:?}");
        let rounds: Vec<String> = order.chunks(3).map(|r| r.iter().collect()).collect();
        for round in &rounds {
            let mut sorted: Vec<char> = round.chars().collect();
            sorted.sort();
            assert_eq!(sorted, ['f', 'o', 's'], "{rounds:?}");
        }
        assert!(rounds[1..].iter().any(|r| *r != rounds[1]), "{rounds:?}");
        // Each median is its own engine's: the sleeper's cannot be under its sleep (no claim on
        // the others' wall-clock times, which the machine decides).
        assert!(medians[1] >= 0.002, "{medians:?}");
    }

    #[test]
    fn a_record_is_one_line_of_json() {
        let line = record_json("W1", "gemm", 2, &[("n", 512)], &[("gflops", 70.5)]);
        assert_eq!(
            line,
            r#"{"workload":"W1","engine":"gemm","threads":2,"params":{"n":512},"figures":{"gflops":70.5}}"#
        );
        let line = record_json("W3", "x", 1, &[], &[("a", f64::NAN)]);
        assert!(line.ends_with(r#""figures":{"a":null}}"#));
    }
}
