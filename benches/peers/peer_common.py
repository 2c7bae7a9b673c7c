"""What the Python peers (pytorch_bench.py, jax_bench.py) share: the workloads' constants, the
ports of benches/src/shared.rs (the SplitMix64 stream, the digits split), the command line, the
timing helpers and the record format of `cargo xtask bench --json`. Needs no third-party module.
"""

import gzip
import json
import math
import statistics
import time

MASK = (1 << 64) - 1
SEED = 0x5EED_2026
W1_SIZES = [128, 256, 512, 1024, 2048]
W2_LAYERS = [784, 512, 512, 10]
W2_BATCHES = [32, 128, 1024]
W2_LR = 0.01
W3_OPS = 10_000
W4_TRAIN, W4_BATCH, W4_EPOCHS = 1437, 32, 30
# W6: batch, image side, channels, hidden width, classes; SGD's learning rate.
W6_BATCH, W6_SIDE, W6_CHANNELS, W6_HIDDEN, W6_CLASSES = 64, 28, (1, 32, 64), 128, 10
W6_LR = 0.01
W6_FLAT = W6_CHANNELS[2] * (W6_SIDE // 4) ** 2


class Rng:
    """SplitMix64, as benches/src/shared.rs has it."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return self.next_u64() % n

    def normal(self):
        """Box-Muller on two draws, as shared.rs's `Rng::normal`."""
        u1 = ((self.next_u64() >> 11) + 1.0) / float(1 << 53)
        u2 = (self.next_u64() >> 11) / float(1 << 53)
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(math.tau * u2)

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def digits_split(path):
    with gzip.open(path, "rt") as f:
        rows = []
        for line in f:
            if line.strip():
                fields = line.strip().split(",")
                rows.append(([float(v) / 16.0 for v in fields[:64]], int(float(fields[64]))))
    Rng(SEED).shuffle(rows)
    return rows[:W4_TRAIN], rows[W4_TRAIN:]


def w2_step_flops(batch):
    """The step's matmul FLOPs, as the runner's `w2_step_flops` counts them."""
    macs = sum(a * b for a, b in zip(W2_LAYERS, W2_LAYERS[1:]))
    return 2.0 * batch * (3 * macs - W2_LAYERS[0] * W2_LAYERS[1])


def w6_data():
    """W6's batch from the shared stream, as `cnn::w6_data` draws it: the images (NCHW, as a
    flat list), then the labels."""
    rng = Rng(SEED)
    x = [rng.normal() for _ in range(W6_BATCH * W6_CHANNELS[0] * W6_SIDE * W6_SIDE)]
    labels = [rng.below(W6_CLASSES) for _ in range(W6_BATCH)]
    return x, labels


def w6_conv_flops():
    """The convolutions' FLOPs in one W6 step, as `CnnSpec::conv_step_flops` counts them: each
    one's forward pass and weight gradient, and the second one's input gradient."""
    c0, c1, c2 = W6_CHANNELS
    half = W6_SIDE // 2
    pass1 = 2.0 * W6_BATCH * c1 * W6_SIDE * W6_SIDE * c0 * 9
    pass2 = 2.0 * W6_BATCH * c2 * half * half * c1 * 9
    return 2.0 * pass1 + 3.0 * pass2


def w6_record(engine, threads, step_ms, extra):
    figures = {
        "ms_per_step": step_ms,
        "samples_per_s": W6_BATCH / (step_ms / 1e3),
        "step_conv_gflops": w6_conv_flops() / (step_ms / 1e3) / 1e9,
    }
    figures.update(extra)
    return record("W6", engine, threads, {"batch": W6_BATCH}, figures)


def record(workload, engine, threads, params, figures):
    return json.dumps(
        {"workload": workload, "engine": engine, "threads": threads, "params": params, "figures": figures},
        separators=(",", ":"),
    )


class Options:
    """The command line every peer program takes:
    `--threads N [--quick] [--only W1,W2,...] [--data DIGITS.csv.gz]`."""

    def __init__(self, argv, default_only):
        def value(name, default=None):
            return argv[argv.index(name) + 1] if name in argv else default

        self.quick = "--quick" in argv
        self.threads = int(value("--threads", "1"))
        self.only = value("--only", default_only).upper().split(",")
        self.data = value("--data")
        self.warmup, self.steps = (2, 10) if self.quick else (10, 50)
        self.w6_warmup, self.w6_steps = (2, 5) if self.quick else (5, 30)
        self.chains = 5 if self.quick else 50
        self.runs = 1 if self.quick else 3
        self.w1_seconds = 0.15 if self.quick else 1.0


def ms_per_call(fn, warmup, steps):
    """Median milliseconds of `fn` over `steps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def ms_per_call_pair(a, b, warmup, steps):
    """Median milliseconds of `a` and of `b`, called in turns (a, b, a, b, ...) so that both
    meet the same background load, as the runner's W2 and W6 do."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(steps):
        t = time.perf_counter()
        a()
        ta.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        b()
        tb.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ta), statistics.median(tb)


def seconds_per_call(fn, seconds):
    """Median seconds of `fn`, after one untimed call, over at least 3 calls and `seconds`."""
    fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < 3 or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def selftest(digits=None):
    """Checks the ports against the values benches/src/shared.rs's tests pin."""
    r = Rng(SEED)
    assert (r.next_u64(), r.next_u64(), r.below(1437)) == (3220337691051907759, 18362673279826037020, 722)
    v = list(range(10))
    Rng(3).shuffle(v)
    assert v == [2, 8, 7, 4, 5, 6, 0, 1, 9, 3], v
    r = Rng(SEED)
    assert abs(r.normal() - 1.8676032) < 1e-6 and abs(r.normal() - 0.7201122) < 1e-6
    assert abs(w6_conv_flops() / 1e9 - 1.445) < 0.001
    assert W6_FLAT == 3136
    print("selftest passed")
    if digits:
        train, test = digits_split(digits)
        assert [l for _, l in train[:10]] == [0, 4, 9, 3, 9, 5, 6, 7, 0, 5]
        assert [l for _, l in test[:10]] == [9, 2, 8, 6, 0, 6, 7, 6, 0, 1]
        print("digits split matches")
