"""PyTorch eager on wengert's reference workloads W2, W3 and W4 (see docs/BENCHMARKS.md).

Run by `cargo xtask bench --peers` when `python3 -c "import torch"` works; prints one JSON record
per line on stdout (and progress as plain lines), in the format of `cargo xtask bench --json`.

    python3 pytorch_bench.py --threads N [--quick] [--only W2,W3,W4] --data DIGITS.csv.gz
    python3 pytorch_bench.py --selftest     # checks the ports below; needs no torch

The random stream (SplitMix64), the digits split and the per-epoch order are ports of
benches/src/shared.rs, so PyTorch trains on exactly the batches wengert does.
"""

import gzip
import json
import math
import statistics
import sys
import time

MASK = (1 << 64) - 1
SEED = 0x5EED_2026
W2_LAYERS = [784, 512, 512, 10]
W2_BATCHES = [32, 128, 1024]
W2_LR = 0.01
W3_OPS = 10_000
W4_TRAIN, W4_BATCH, W4_EPOCHS = 1437, 32, 30


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


def record(workload, engine, threads, params, figures):
    return json.dumps(
        {"workload": workload, "engine": engine, "threads": threads, "params": params, "figures": figures},
        separators=(",", ":"),
    )


def selftest():
    r = Rng(SEED)
    assert (r.next_u64(), r.next_u64(), r.below(1437)) == (3220337691051907759, 18362673279826037020, 722)
    v = list(range(10))
    Rng(3).shuffle(v)
    assert v == [2, 8, 7, 4, 5, 6, 0, 1, 9, 3], v
    print("selftest passed")


def main(argv):
    if "--selftest" in argv:
        selftest()
        if len(argv) > argv.index("--selftest") + 1:
            train, test = digits_split(argv[argv.index("--selftest") + 1])
            assert [l for _, l in train[:10]] == [0, 4, 9, 3, 9, 5, 6, 7, 0, 5]
            assert [l for _, l in test[:10]] == [9, 2, 8, 6, 0, 6, 7, 6, 0, 1]
            print("digits split matches")
        return

    import torch
    import torch.nn.functional as F

    def value(name, default=None):
        return argv[argv.index(name) + 1] if name in argv else default

    quick = "--quick" in argv
    threads = int(value("--threads", "1"))
    only = value("--only", "W2,W3,W4").upper().split(",")
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    warmup, steps = (2, 10) if quick else (10, 50)
    chains = 5 if quick else 50
    runs = 1 if quick else 3

    def mlp(layers):
        mods = []
        for i, (a, b) in enumerate(zip(layers, layers[1:])):
            mods.append(torch.nn.Linear(a, b))
            if i + 2 < len(layers):
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods)

    def ms_per_call(fn):
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(steps):
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1e3)
        return statistics.median(samples)

    if "W2" in only:
        for batch in W2_BATCHES:
            model = mlp(W2_LAYERS)
            opt = torch.optim.SGD(model.parameters(), lr=W2_LR)
            x = torch.randn(batch, W2_LAYERS[0])
            y = torch.randint(0, 10, (batch,))

            def step():
                opt.zero_grad(set_to_none=False)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()

            def infer():
                with torch.no_grad():
                    model(x)

            train_ms, forward_ms = ms_per_call(step), ms_per_call(infer)
            macs = sum(a * b for a, b in zip(W2_LAYERS, W2_LAYERS[1:]))
            flops = 2.0 * batch * (3 * macs - W2_LAYERS[0] * W2_LAYERS[1])
            print(f"W2 pytorch batch={batch}: {train_ms:.2f} ms/step, forward {forward_ms:.2f} ms")
            print(record("W2", "pytorch", threads, {"batch": batch}, {
                "ms_per_step": train_ms,
                "samples_per_s": batch / (train_ms / 1e3),
                "forward_ms": forward_ms,
                "matmul_gflops": flops / (train_ms / 1e3) / 1e9,
            }))

    if "W3" in only:
        rec, back = [], []
        for i in range(chains + 1):
            t0 = time.perf_counter()
            y = torch.tensor([0.5])
            w = torch.tensor([0.9], requires_grad=True)
            b = torch.tensor([0.1], requires_grad=True)
            for k in range(W3_OPS):
                y = y * w if k % 3 == 0 else (y + b if k % 3 == 1 else torch.tanh(y))
            t1 = time.perf_counter()
            y.backward()
            _ = (w.grad.item(), b.grad.item())
            t2 = time.perf_counter()
            if i > 0:
                rec.append(t1 - t0)
                back.append(t2 - t1)
        r = statistics.median(rec) / W3_OPS * 1e9
        bk = statistics.median(back) / W3_OPS * 1e9
        print(f"W3 pytorch: record {r:.1f} ns/op, backward {bk:.1f} ns/op")
        print(record("W3", "pytorch", threads, {"ops": W3_OPS},
                     {"record_ns_per_op": r, "backward_ns_per_op": bk}))

    data = value("--data")
    if "W4" in only and data:
        train, test = digits_split(data)
        tx = torch.tensor([p for p, _ in train])
        ty = torch.tensor([l for _, l in train])
        sx = torch.tensor([p for p, _ in test])
        sy = torch.tensor([l for _, l in test])
        times, acc = [], 0.0
        for _ in range(runs):
            model = mlp([64, 128, 10])
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
            rng = Rng(SEED ^ 0xD1617)
            order = list(range(len(train)))
            t = time.perf_counter()
            for _ in range(W4_EPOCHS):
                rng.shuffle(order)
                for s in range(0, len(order), W4_BATCH):
                    idx = torch.tensor(order[s:s + W4_BATCH])
                    opt.zero_grad()
                    F.cross_entropy(model(tx[idx]), ty[idx]).backward()
                    opt.step()
            times.append(time.perf_counter() - t)
            with torch.no_grad():
                acc = (model(sx).argmax(1) == sy).float().mean().item()
        seconds = statistics.median(times)
        print(f"W4 pytorch: {seconds:.3f} s, test accuracy {acc * 100:.2f}%")
        print(record("W4", "pytorch", threads, {"batch": W4_BATCH, "epochs": W4_EPOCHS},
                     {"seconds": seconds, "test_accuracy": acc}))


if __name__ == "__main__":
    main(sys.argv[1:])
