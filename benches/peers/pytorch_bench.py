"""PyTorch eager on wengert's reference workloads W1, W2, W3, W4 and W6 (see docs/BENCHMARKS.md).

Run by `cargo xtask bench --peers` when `python3 -c "import torch"` works; prints one JSON record
per line on stdout (and progress as plain lines), in the format of `cargo xtask bench --json`.

    python3 pytorch_bench.py --threads N [--quick] [--only W1,W2,W3,W4,W6] --data DIGITS.csv.gz
    python3 pytorch_bench.py --selftest [DIGITS.csv.gz]   # checks the ports; needs no torch

The random stream (SplitMix64), the digits split and the per-epoch order are ports of
benches/src/shared.rs (in peer_common.py), so PyTorch trains on exactly the batches wengert does.
"""

import statistics
import sys
import time

from peer_common import (
    SEED, W1_SIZES, W2_BATCHES, W2_LAYERS, W2_LR, W3_OPS, W4_BATCH, W4_EPOCHS, W6_BATCH, W6_CHANNELS,
    W6_CLASSES, W6_FLAT, W6_HIDDEN, W6_LR, W6_SIDE, Options, Rng, digits_split, ms_per_call,
    ms_per_call_pair, record, seconds_per_call, selftest, w2_step_flops, w6_conv_flops, w6_data,
    w6_record,
)


def main(argv):
    if "--selftest" in argv:
        at = argv.index("--selftest")
        selftest(argv[at + 1] if len(argv) > at + 1 else None)
        return

    import torch
    import torch.nn.functional as F

    o = Options(argv, "W1,W2,W3,W4,W6")
    threads, only = o.threads, o.only
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    warmup, steps, chains, runs = o.warmup, o.steps, o.chains, o.runs

    def mlp(layers):
        mods = []
        for i, (a, b) in enumerate(zip(layers, layers[1:])):
            mods.append(torch.nn.Linear(a, b))
            if i + 2 < len(layers):
                mods.append(torch.nn.ReLU())
        return torch.nn.Sequential(*mods)

    if "W1" in only:
        for n in W1_SIZES:
            a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
            seconds = seconds_per_call(lambda: torch.mm(a, b, out=c), o.w1_seconds)
            gflops = 2.0 * n**3 / seconds / 1e9
            print(f"W1 pytorch n={n} threads={threads}: {gflops:.1f} GFLOP/s")
            print(record("W1", "pytorch", threads, {"n": n}, {"gflops": gflops}))

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

            train_ms = ms_per_call(step, warmup, steps)
            forward_ms = ms_per_call(infer, warmup, steps)
            flops = w2_step_flops(batch)
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

    data = o.data
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

    if "W6" in only:
        w6(torch, F, o)


def w6(torch, F, o):
    """W6: the CNN's SGD step, its steps taking turns with its convolutions' passes alone
    (forward, and aten's convolution_backward for the weight and, on the second, the input)."""
    c0, c1, c2 = W6_CHANNELS
    x, labels = w6_data()
    x = torch.tensor(x).reshape(W6_BATCH, c0, W6_SIDE, W6_SIDE)
    y = torch.tensor(labels)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(c0, c1, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(c1, c2, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(W6_FLAT, W6_HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(W6_HIDDEN, W6_CLASSES),
    )
    opt = torch.optim.SGD(model.parameters(), lr=W6_LR)

    def step():
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    half = W6_SIDE // 2
    layers = [
        (torch.randn(W6_BATCH, c0, W6_SIDE, W6_SIDE), torch.randn(c1, c0, 3, 3), torch.randn(c1),
         torch.randn(W6_BATCH, c1, W6_SIDE, W6_SIDE), False),
        (torch.randn(W6_BATCH, c1, half, half), torch.randn(c2, c1, 3, 3), torch.randn(c2),
         torch.randn(W6_BATCH, c2, half, half), True),
    ]

    def conv_passes():
        with torch.no_grad():
            for xi, w, b, g, input_grad in layers:
                F.conv2d(xi, w, b, padding=1)
                torch.ops.aten.convolution_backward(
                    g, xi, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [input_grad, True, False])

    step_ms, conv_ms = ms_per_call_pair(step, conv_passes, o.w6_warmup, o.w6_steps)
    conv_gflops = w6_conv_flops() / (conv_ms / 1e3) / 1e9
    print(f"W6 pytorch threads={o.threads}: {step_ms:.2f} ms/step, convolutions alone {conv_ms:.2f} ms "
          f"({conv_gflops:.1f} GFLOP/s)")
    print(w6_record("pytorch", o.threads, step_ms, {"conv_ms": conv_ms, "conv_gflops": conv_gflops}))


if __name__ == "__main__":
    main(sys.argv[1:])
