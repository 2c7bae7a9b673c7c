"""JAX (jit, on the CPU) on wengert's reference workloads W1, W2, W3, W4 and W6 (see
docs/BENCHMARKS.md).

Run by `cargo xtask bench --peers` when `python3 -c "import jax"` works; prints one JSON record
per line on stdout (and progress as plain lines), in the format of `cargo xtask bench --json`.

    python3 jax_bench.py --threads N [--quick] [--only W1,W2,W3,W4,W6] --data DIGITS.csv.gz

Every measured function is compiled ahead of time (`jax.jit(f).lower(...).compile()`), timed
apart: `compile_ms` in each record; the step times are those of the compiled programs, every
call waited for with `block_until_ready`. Parameters are donated to the step, so XLA updates
them in place as the other engines do. Threads: XLA's CPU client sizes its thread pools from
the CPUs the process may run on, so the process restricts itself to N of them (`sched_setaffinity`)
before importing jax.
"""

import os
import statistics
import sys
import time

from peer_common import (
    SEED, W1_SIZES, W2_BATCHES, W2_LAYERS, W2_LR, W3_OPS, W4_BATCH, W4_EPOCHS, W6_BATCH, W6_CHANNELS,
    W6_CLASSES, W6_FLAT, W6_HIDDEN, W6_LR, W6_SIDE, Options, Rng, digits_split, ms_per_call,
    record, seconds_per_call, w2_step_flops, w6_data, w6_record,
)


def restrict_threads(threads):
    """Keeps the process on `threads` of the CPUs it may use (before jax starts its pools)."""
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])


def compiled(fn, *args, donate=()):
    """`fn` jitted and compiled for `args`; returns the executable and the milliseconds taken."""
    import jax

    t = time.perf_counter()
    exe = jax.jit(fn, donate_argnums=donate).lower(*args).compile()
    return exe, (time.perf_counter() - t) * 1e3


def init_linear(key, fan_in, fan_out):
    """PyTorch's `nn.Linear` init (uniform in +-1/sqrt(fan_in)), weight laid out [fan_in, fan_out]."""
    import jax

    bound = 1.0 / fan_in**0.5
    kw, kb = jax.random.split(key)
    return (jax.random.uniform(kw, (fan_in, fan_out), minval=-bound, maxval=bound),
            jax.random.uniform(kb, (fan_out,), minval=-bound, maxval=bound))


def mlp_params(key, layers):
    import jax

    keys = jax.random.split(key, len(layers) - 1)
    return [init_linear(k, a, b) for k, a, b in zip(keys, layers, layers[1:])]


def mlp_forward(params, x):
    import jax

    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i + 1 < len(params):
            x = jax.nn.relu(x)
    return x


def cross_entropy(logits, y):
    """Softmax cross-entropy averaged over the batch, `y` integer labels."""
    import jax
    import jax.numpy as jnp

    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def sgd_step(loss_fn, lr):
    """A jittable SGD step of `loss_fn(params, x, y)`: returns the new parameters and the loss."""
    import jax

    def step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), loss

    return step


def main(argv):
    o = Options(argv, "W1,W2,W3,W4,W6")
    restrict_threads(o.threads)
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_platforms", "cpu")
    threads, only = o.threads, o.only
    key = jax.random.PRNGKey(SEED & 0xFFFFFFFF)

    if "W1" in only:
        for n in W1_SIZES:
            ka, kb = jax.random.split(jax.random.fold_in(key, n))
            a, b = jax.random.normal(ka, (n, n)), jax.random.normal(kb, (n, n))
            exe, compile_ms = compiled(jnp.matmul, a, b)
            seconds = seconds_per_call(lambda: exe(a, b).block_until_ready(), o.w1_seconds)
            gflops = 2.0 * n**3 / seconds / 1e9
            print(f"W1 jax n={n} threads={threads}: {gflops:.1f} GFLOP/s (compiled in {compile_ms:.0f} ms)")
            print(record("W1", "jax", threads, {"n": n}, {"gflops": gflops, "compile_ms": compile_ms}))

    if "W2" in only:
        for batch in W2_BATCHES:
            kx, ky, kp = jax.random.split(jax.random.fold_in(key, batch), 3)
            x = jax.random.normal(kx, (batch, W2_LAYERS[0]))
            y = jax.random.randint(ky, (batch,), 0, 10)
            state = {"params": mlp_params(kp, W2_LAYERS)}
            loss_fn = lambda p, x, y: cross_entropy(mlp_forward(p, x), y)
            step, compile_ms = compiled(sgd_step(loss_fn, W2_LR), state["params"], x, y, donate=(0,))
            infer, infer_compile_ms = compiled(mlp_forward, state["params"], x)

            def train():
                state["params"], loss = step(state["params"], x, y)
                loss.block_until_ready()

            train_ms = ms_per_call(train, o.warmup, o.steps)
            forward_ms = ms_per_call(lambda: infer(state["params"], x).block_until_ready(), o.warmup, o.steps)
            print(f"W2 jax batch={batch}: {train_ms:.2f} ms/step, forward {forward_ms:.2f} ms "
                  f"(compiled in {compile_ms:.0f} + {infer_compile_ms:.0f} ms)")
            print(record("W2", "jax", threads, {"batch": batch}, {
                "ms_per_step": train_ms,
                "samples_per_s": batch / (train_ms / 1e3),
                "forward_ms": forward_ms,
                "matmul_gflops": w2_step_flops(batch) / (train_ms / 1e3) / 1e9,
                "compile_ms": compile_ms,
                "forward_compile_ms": infer_compile_ms,
            }))

    if "W3" in only:
        w3(jax, jnp, o)

    if "W4" in only and o.data:
        w4(jax, jnp, o, key)

    if "W6" in only:
        w6(jax, jnp, o, key)


def w3(jax, jnp, o):
    """W3 compiled: the chain as a loop of `W3_OPS / 3` rounds of (mul, add, tanh) inside one
    program, and its gradient to w and b. jit has no tape to record, so `record_ns_per_op` is the
    compiled forward chain per op, and `backward_ns_per_op` what the gradient program takes
    beyond it, per op."""
    rounds = W3_OPS // 3

    def chain(w, b):
        return jax.lax.fori_loop(0, rounds, lambda _, y: jnp.tanh(y * w + b), jnp.float32(0.5))

    w, b = jnp.float32(0.9), jnp.float32(0.1)
    forward, compile_ms = compiled(chain, w, b)
    grad, grad_compile_ms = compiled(jax.grad(chain, argnums=(0, 1)), w, b)
    fwd, both = [], []
    for i in range(o.chains + 1):
        t = time.perf_counter()
        forward(w, b).block_until_ready()
        t1 = time.perf_counter()
        jax.block_until_ready(grad(w, b))
        t2 = time.perf_counter()
        if i > 0:
            fwd.append(t1 - t)
            both.append(t2 - t1)
    ops = 3 * rounds
    r = statistics.median(fwd) / ops * 1e9
    bk = max(statistics.median(both) / ops * 1e9 - r, 0.0)
    print(f"W3 jax: forward {r:.1f} ns/op, gradient beyond it {bk:.1f} ns/op "
          f"(compiled in {compile_ms:.0f} + {grad_compile_ms:.0f} ms)")
    print(record("W3", "jax", o.threads, {"ops": W3_OPS}, {
        "record_ns_per_op": r, "backward_ns_per_op": bk,
        "compile_ms": compile_ms + grad_compile_ms,
    }))


def w4(jax, jnp, o, key):
    """W4: the digits MLP trained with Adam in W4's batch order. Each epoch gathers its rows in
    the epoch's order (numpy, on the clock) and runs one compiled program: a `lax.scan` of the
    steps over the full batches, then the step on the last, shorter one (compiled before the
    clock starts)."""
    import numpy as np

    train, test = digits_split(o.data)
    tx = np.array([p for p, _ in train], dtype=np.float32)
    ty = np.array([l for _, l in train], dtype=np.int32)
    sx = jnp.array([p for p, _ in test], dtype=jnp.float32)
    sy = jnp.array([l for _, l in test], dtype=jnp.int32)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    full, features = len(train) // W4_BATCH, tx.shape[1]

    def step(state, batch):
        params, m, v, t = state
        x, y = batch
        grads = jax.grad(lambda p: cross_entropy(mlp_forward(p, x), y))(params)
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        # PyTorch's Adam: lr · m̂ / (√v̂ + eps), with the bias corrections folded in.
        scale = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - scale * m / (jnp.sqrt(v) + eps * jnp.sqrt(1 - b2**t)), params, m, v)
        return (params, m, v, t), None

    def epoch(state, x, y):
        xs = x[:full * W4_BATCH].reshape(full, W4_BATCH, features)
        ys = y[:full * W4_BATCH].reshape(full, W4_BATCH)
        state, _ = jax.lax.scan(step, state, (xs, ys))
        if full * W4_BATCH < x.shape[0]:
            state, _ = step(state, (x[full * W4_BATCH:], y[full * W4_BATCH:]))
        return state

    def fresh():
        params = mlp_params(key, [64, 128, 10])
        zeros = lambda: jax.tree_util.tree_map(jnp.zeros_like, params)
        return params, zeros(), zeros(), jnp.float32(0)

    run_epoch, compile_ms = compiled(epoch, fresh(), tx, ty, donate=(0,))
    times, acc = [], 0.0
    for _ in range(o.runs):
        state = fresh()
        jax.block_until_ready(state)
        rng = Rng(SEED ^ 0xD1617)
        order = list(range(len(train)))
        t = time.perf_counter()
        for _ in range(W4_EPOCHS):
            rng.shuffle(order)
            state = run_epoch(state, tx[order], ty[order])
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
        acc = float(jnp.mean(jnp.argmax(mlp_forward(state[0], sx), axis=1) == sy))
    seconds = statistics.median(times)
    print(f"W4 jax: {seconds:.3f} s, test accuracy {acc * 100:.2f}% (compiled in {compile_ms:.0f} ms)")
    print(record("W4", "jax", o.threads, {"batch": W4_BATCH, "epochs": W4_EPOCHS},
                 {"seconds": seconds, "test_accuracy": acc, "compile_ms": compile_ms}))


def w6(jax, jnp, o, key):
    """W6: the CNN's SGD step (NCHW images, OIHW kernels, as the other engines)."""
    c0, c1, c2 = W6_CHANNELS
    x, labels = w6_data()
    x = jnp.array(x, dtype=jnp.float32).reshape(W6_BATCH, c0, W6_SIDE, W6_SIDE)
    y = jnp.array(labels, dtype=jnp.int32)

    def init_conv(k, c_in, c_out):
        bound = 1.0 / (c_in * 9) ** 0.5
        kw, kb = jax.random.split(k)
        return (jax.random.uniform(kw, (c_out, c_in, 3, 3), minval=-bound, maxval=bound),
                jax.random.uniform(kb, (c_out,), minval=-bound, maxval=bound))

    k1, k2, k3, k4 = jax.random.split(jax.random.fold_in(key, 6), 4)
    params = [init_conv(k1, c0, c1), init_conv(k2, c1, c2),
              init_linear(k3, W6_FLAT, W6_HIDDEN), init_linear(k4, W6_HIDDEN, W6_CLASSES)]

    def conv_relu_pool(h, w, b):
        h = jax.lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        h = jax.nn.relu(h + b[None, :, None, None])
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss_fn(params, x, y):
        h = x
        for w, b in params[:2]:
            h = conv_relu_pool(h, w, b)
        h = h.reshape(h.shape[0], -1)
        return cross_entropy(mlp_forward(params[2:], h), y)

    step, compile_ms = compiled(sgd_step(loss_fn, W6_LR), params, x, y, donate=(0,))
    state = {"params": params}

    def train():
        state["params"], loss = step(state["params"], x, y)
        loss.block_until_ready()

    step_ms = ms_per_call(train, o.w6_warmup, o.w6_steps)
    print(f"W6 jax threads={o.threads}: {step_ms:.2f} ms/step (compiled in {compile_ms:.0f} ms)")
    print(w6_record("jax", o.threads, step_ms, {"compile_ms": compile_ms}))


if __name__ == "__main__":
    main(sys.argv[1:])
