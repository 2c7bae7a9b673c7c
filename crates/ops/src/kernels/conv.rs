//! Convolutions over two spatial axes (`conv2d`: NCHW input, OIHW weight) and one (`conv1d`:
//! NCL input, OIL weight), with stride, zero padding, dilation, groups and an optional bias,
//! as `torch.nn.functional.conv2d` / `conv1d` compute them (a cross-correlation).
//!
//! Each image and group is one product on [`gemm`]: the image's patches are unrolled into a
//! `[C/groups · kh · kw, OH · OW]` matrix (im2col) in a scratch buffer the caller owns and
//! reuses, and the weight's `[O/groups, C/groups · kh · kw]` rows multiply it. A 1×1 kernel at
//! stride 1 without padding reads the input in place. (im2col measured faster than an implicit
//! gemm made of one small product per output row and kernel tap; see `docs/OPS.md`,
//! "Determinism and the convolutions' speed".)
//!
//! Parallel and deterministic: the batch is cut into at most [`MAX_PARTS`] runs of whole
//! images, the cut depending on the batch size alone, and each run is one task with its own
//! slot of the scratch. The output and the input gradient of an image are computed by one task
//! whatever the cut. The weight gradient sums each run's images into the run's own partial sum,
//! then adds the partial sums in run order; since the runs depend on the shapes only, so does
//! every sum. Results are bit-identical for any thread count, and once the scratch has grown to
//! [`conv2d_scratch_len`] nothing is allocated. When the runs share several threads, each run's
//! products stay on its thread (cut into column blocks that the gemm does not split again), and
//! the bias gradient sums each channel in its own task. Timings at W6's shapes:
//! `docs/OPS.md`, "Determinism and the convolutions' speed".

use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::matmul::{gemm, gemm_serial};
use super::unary::store;
use crate::{Error, Float, Result, Shape, TensorRef};

const CONV2D: &str = "conv2d";
const CONV1D: &str = "conv1d";

/// The largest number of runs the batch is cut into: enough to keep a few cores busy, few
/// enough that the scratch (one im2col matrix and one weight-sized partial sum per run) stays
/// small.
pub const MAX_PARTS: usize = 8;

/// Below this many multiply-adds in all, the runs go one after another on the calling thread
/// (as [`gemm`] does for one product: waking a worker would cost more).
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// The arguments of a 2-D convolution; each pair is (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dArgs {
    /// The step between windows (at least 1).
    pub stride: [usize; 2],
    /// The zeros added before and after each spatial axis.
    pub padding: [usize; 2],
    /// The step between a kernel's taps (at least 1).
    pub dilation: [usize; 2],
    /// How many independent channel groups (at least 1, dividing both channel counts).
    pub groups: usize,
}

impl Default for Conv2dArgs {
    /// PyTorch's defaults: stride 1, no padding, dilation 1, one group.
    fn default() -> Self {
        Conv2dArgs {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

/// The arguments of a 1-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dArgs {
    /// The step between windows (at least 1).
    pub stride: usize,
    /// The zeros added at each end.
    pub padding: usize,
    /// The step between a kernel's taps (at least 1).
    pub dilation: usize,
    /// How many independent channel groups (at least 1, dividing both channel counts).
    pub groups: usize,
}

impl Default for Conv1dArgs {
    /// PyTorch's defaults: stride 1, no padding, dilation 1, one group.
    fn default() -> Self {
        Conv1dArgs {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

impl Conv1dArgs {
    /// The same convolution on a height of 1.
    fn as_2d(&self) -> Conv2dArgs {
        Conv2dArgs {
            stride: [1, self.stride],
            padding: [0, self.padding],
            dilation: [1, self.dilation],
            groups: self.groups,
        }
    }
}

/// Everything a kernel needs to know about one convolution, checked.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    args: Conv2dArgs,
}

impl Geometry {
    /// Checks a 2-D convolution of `x` `[N, C, H, W]` by `w` `[O, C/groups, kh, kw]` (the
    /// shapes as given, 1-D ones already lifted to a height of 1, for the messages).
    fn new(
        op: &'static str,
        xd: [usize; 4],
        wd: [usize; 4],
        args: Conv2dArgs,
        shapes: (&Shape, &Shape),
    ) -> Result<Geometry> {
        let (xs, ws) = shapes;
        let invalid = |argument: &'static str, value: usize, requirement: String| {
            Err(Error::InvalidArgument {
                op,
                argument,
                value: value as f64,
                requirement,
            })
        };
        for (argument, pair) in [("stride", args.stride), ("dilation", args.dilation)] {
            if let Some(&v) = pair.iter().find(|&&v| v == 0) {
                return invalid(argument, v, "it must be at least 1".to_string());
            }
        }
        let [n, c, h, w] = xd;
        let [o, cg, kh, kw] = wd;
        let g = args.groups;
        if g == 0 || c % g != 0 || o % g != 0 {
            return invalid(
                "groups",
                g,
                format!(
                    "it must be at least 1 and divide the input's {c} channels and the weight's {o} output channels"
                ),
            );
        }
        if cg * g != c {
            return Err(Error::ShapeMismatch {
                op,
                lhs: *xs,
                rhs: *ws,
            });
        }
        if kh == 0 || kw == 0 {
            return invalid(
                "kernel size",
                0,
                format!("the weight {ws} must have kernel axes of length at least 1"),
            );
        }
        let mut out = [0usize; 2];
        for (axis, (len, k)) in [(h, kh), (w, kw)].into_iter().enumerate() {
            let (s, p, d) = (args.stride[axis], args.padding[axis], args.dilation[axis]);
            let extent = (k - 1).checked_mul(d).and_then(|e| e.checked_add(1));
            let padded = p.checked_mul(2).and_then(|p2| p2.checked_add(len));
            match (extent, padded) {
                (Some(e), Some(l)) if l >= e => out[axis] = (l - e) / s + 1,
                _ => {
                    return invalid(
                        "padding",
                        p,
                        format!(
                            "the input {xs} padded by {p} is shorter than the weight {ws}'s dilated kernel (dilation {d}) along spatial axis {axis}"
                        ),
                    );
                }
            }
        }
        let geo = Geometry {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            oh: out[0],
            ow: out[1],
            args,
        };
        // Every buffer this convolution will index must be addressable.
        let scratch = geo.checked_scratch_len();
        let out_len = [n, o, out[0], out[1]]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        if scratch.is_none() || out_len.is_none() {
            let too_big = if scratch.is_none() { *ws } else { *xs };
            return Err(Error::TooManyElements { shape: too_big });
        }
        Ok(geo)
    }

    fn conv2d(x: &Shape, w: &Shape, args: Conv2dArgs) -> Result<Geometry> {
        for s in [x, w] {
            if s.rank() != 4 {
                return Err(Error::WrongRank {
                    op: CONV2D,
                    expected: "4 (input [N, C, H, W], weight [O, C/groups, kh, kw])",
                    shape: *s,
                });
            }
        }
        let (xd, wd) = (x.dims(), w.dims());
        Geometry::new(
            CONV2D,
            [xd[0], xd[1], xd[2], xd[3]],
            [wd[0], wd[1], wd[2], wd[3]],
            args,
            (x, w),
        )
    }

    fn conv1d(x: &Shape, w: &Shape, args: Conv1dArgs) -> Result<Geometry> {
        for s in [x, w] {
            if s.rank() != 3 {
                return Err(Error::WrongRank {
                    op: CONV1D,
                    expected: "3 (input [N, C, L], weight [O, C/groups, k])",
                    shape: *s,
                });
            }
        }
        let (xd, wd) = (x.dims(), w.dims());
        Geometry::new(
            CONV1D,
            [xd[0], xd[1], 1, xd[2]],
            [wd[0], wd[1], 1, wd[2]],
            args.as_2d(),
            (x, w),
        )
    }

    fn groups(&self) -> usize {
        self.args.groups
    }

    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups()
    }

    /// Output channels per group.
    fn og(&self) -> usize {
        self.o / self.groups()
    }

    /// The rows of a group's patch matrix: `C/groups · kh · kw`.
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }

    /// Output positions per channel.
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    fn in_image(&self) -> usize {
        self.c * self.h * self.w
    }

    fn out_image(&self) -> usize {
        self.o * self.p()
    }

    fn weight_len(&self) -> usize {
        self.o * self.k()
    }

    /// Whether the patch matrix is the input itself (a 1×1 kernel at stride 1, no padding).
    fn direct(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.args.stride == [1, 1] && self.args.padding == [0, 0]
    }

    /// The runs the batch is cut into, and the images per run (the last may be shorter).
    fn parts(&self) -> (usize, usize) {
        let parts = self.n.clamp(1, MAX_PARTS);
        (parts, self.n.div_ceil(parts).max(1))
    }

    /// One run's patch matrix (at least one element, so that it can be a chunk size).
    fn slot(&self) -> usize {
        if self.direct() {
            1
        } else {
            (self.k() * self.p()).max(1)
        }
    }

    fn checked_scratch_len(&self) -> Option<usize> {
        let cols = self
            .cg()
            .checked_mul(self.kh)?
            .checked_mul(self.kw)?
            .checked_mul(self.oh)?
            .checked_mul(self.ow)?
            .max(1);
        let partial = self.o.checked_mul(self.k())?.max(1);
        cols.checked_add(partial)?.checked_mul(self.parts().0)
    }

    fn scratch_len(&self) -> usize {
        self.parts().0 * (self.slot() + self.weight_len().max(1))
    }

    fn parallel(&self) -> bool {
        let macs = self
            .n
            .saturating_mul(self.weight_len())
            .saturating_mul(self.p());
        macs >= PARALLEL_MIN_MACS && self.parts().0 > 1
    }

    fn out_shape(&self, one_d: bool) -> Shape {
        let dims = [self.n, self.o, self.oh, self.ow];
        let shape = if one_d {
            Shape::new(&[self.n, self.o, self.ow])
        } else {
            Shape::new(&dims)
        };
        shape.expect("Geometry::new checked the output's size")
    }
}

/// The output shape of `conv2d`: `[N, O, OH, OW]` with `OH = (H + 2·pad - dil·(kh - 1) - 1) /
/// stride + 1` (and the same for the width), for `x` `[N, C, H, W]`, `w` `[O, C/groups, kh,
/// kw]` and `bias` `[O]`. A bad argument is an [`InvalidArgument`](Error::InvalidArgument)
/// naming it; shapes that do not fit are errors naming them.
///
/// ```
/// use wengert_ops::kernels::conv::{Conv2dArgs, conv2d_shape};
/// use wengert_ops::Shape;
/// let x = Shape::new(&[64, 1, 28, 28]).unwrap();
/// let w = Shape::new(&[32, 1, 3, 3]).unwrap();
/// let args = Conv2dArgs { padding: [1, 1], ..Default::default() };
/// let y = conv2d_shape(&x, &w, Some(&Shape::vector(32)), args).unwrap();
/// assert_eq!(y.dims(), &[64, 32, 28, 28]);
/// ```
pub fn conv2d_shape(x: &Shape, w: &Shape, bias: Option<&Shape>, args: Conv2dArgs) -> Result<Shape> {
    let geo = Geometry::conv2d(x, w, args)?;
    check_bias(CONV2D, w, bias, geo.o)?;
    Ok(geo.out_shape(false))
}

/// The output shape of `conv1d`: `[N, O, OL]` for `x` `[N, C, L]`, `w` `[O, C/groups, k]` and
/// `bias` `[O]`, as [`conv2d_shape`] on a height of 1.
pub fn conv1d_shape(x: &Shape, w: &Shape, bias: Option<&Shape>, args: Conv1dArgs) -> Result<Shape> {
    let geo = Geometry::conv1d(x, w, args)?;
    check_bias(CONV1D, w, bias, geo.o)?;
    Ok(geo.out_shape(true))
}

fn check_bias(op: &'static str, w: &Shape, bias: Option<&Shape>, o: usize) -> Result<()> {
    match bias {
        Some(b) if b.dims() != [o] => Err(Error::ShapeMismatch {
            op,
            lhs: *w,
            rhs: *b,
        }),
        _ => Ok(()),
    }
}

/// The scratch length (in elements) that the forward and both VJPs of this `conv2d` need;
/// a buffer grown to it once serves every later call at these shapes without allocating.
pub fn conv2d_scratch_len(x: &Shape, w: &Shape, args: Conv2dArgs) -> Result<usize> {
    Ok(Geometry::conv2d(x, w, args)?.scratch_len())
}

/// [`conv2d_scratch_len`] for `conv1d`.
pub fn conv1d_scratch_len(x: &Shape, w: &Shape, args: Conv1dArgs) -> Result<usize> {
    Ok(Geometry::conv1d(x, w, args)?.scratch_len())
}

/// `out = conv2d(x, w) + bias` (shapes as [`conv2d_shape`] checked), using `scratch` for the
/// patch matrices (grown to [`conv2d_scratch_len`] if shorter, never shrunk).
pub fn conv2d<E: Float>(
    x: TensorRef<'_, E>,
    w: TensorRef<'_, E>,
    bias: Option<&[E]>,
    args: Conv2dArgs,
    scratch: &mut Vec<E>,
    out: &mut [E],
) {
    if let Ok(geo) = Geometry::conv2d(x.shape(), w.shape(), args) {
        forward(&geo, x.data(), w.data(), bias, scratch, out);
    }
}

/// `out = conv1d(x, w) + bias`, as [`conv2d`] (shapes as [`conv1d_shape`] checked).
pub fn conv1d<E: Float>(
    x: TensorRef<'_, E>,
    w: TensorRef<'_, E>,
    bias: Option<&[E]>,
    args: Conv1dArgs,
    scratch: &mut Vec<E>,
    out: &mut [E],
) {
    if let Ok(geo) = Geometry::conv1d(x.shape(), w.shape(), args) {
        forward(&geo, x.data(), w.data(), bias, scratch, out);
    }
}

/// y = conv2d(x, w): dx = col2im(Wᵀ·dy) per image and group, the patches' gradients added
/// back where they were read. Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn conv2d_vjp_input<E: Float, const ACC: bool>(
    x: &Shape,
    w: TensorRef<'_, E>,
    args: Conv2dArgs,
    g: &[E],
    scratch: &mut Vec<E>,
    gi: &mut [E],
) {
    if let Ok(geo) = Geometry::conv2d(x, w.shape(), args) {
        vjp_input::<E, ACC>(&geo, w.data(), g, scratch, gi);
    }
}

/// [`conv2d_vjp_input`] for `conv1d`.
pub fn conv1d_vjp_input<E: Float, const ACC: bool>(
    x: &Shape,
    w: TensorRef<'_, E>,
    args: Conv1dArgs,
    g: &[E],
    scratch: &mut Vec<E>,
    gi: &mut [E],
) {
    if let Ok(geo) = Geometry::conv1d(x, w.shape(), args) {
        vjp_input::<E, ACC>(&geo, w.data(), g, scratch, gi);
    }
}

/// y = conv2d(x, w): dW = Σ over images of dy·im2col(x)ᵀ per group. Adds into `gw` when
/// `ACC`, overwrites it otherwise.
pub fn conv2d_vjp_weight<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    w: &Shape,
    args: Conv2dArgs,
    g: &[E],
    scratch: &mut Vec<E>,
    gw: &mut [E],
) {
    if let Ok(geo) = Geometry::conv2d(x.shape(), w, args) {
        vjp_weight::<E, ACC>(&geo, x.data(), g, scratch, gw);
    }
}

/// [`conv2d_vjp_weight`] for `conv1d`.
pub fn conv1d_vjp_weight<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    w: &Shape,
    args: Conv1dArgs,
    g: &[E],
    scratch: &mut Vec<E>,
    gw: &mut [E],
) {
    if let Ok(geo) = Geometry::conv1d(x.shape(), w, args) {
        vjp_weight::<E, ACC>(&geo, x.data(), g, scratch, gw);
    }
}

/// y = conv(x, w) + b (`conv2d` or `conv1d`, `out` the output's shape, channels on axis 1):
/// db\[o\] = Σ dy over the batch and the positions of channel `o`, in order, in `f64`. Adds
/// into `gb` when `ACC`, overwrites it otherwise.
pub fn conv_vjp_bias<E: Float, const ACC: bool>(out: &Shape, g: &[E], gb: &mut [E]) {
    let d = out.dims();
    if d.len() < 2 {
        return;
    }
    let (n, o) = (d[0], d[1]);
    let p: usize = d[2..].iter().product();
    let channel = |oc: usize, dst: &mut E| {
        let mut sum = 0.0f64;
        for i in 0..n {
            let start = (i * o + oc) * p;
            sum += sum_f64(&g[start..start + p]);
        }
        store::<E, ACC>(dst, E::from_f64(sum));
    };
    // Each channel's sum is one task's, in the same order whatever the split.
    let len = o.min(gb.len());
    let gb = &mut gb[..len];
    if n.saturating_mul(o).saturating_mul(p) >= BIAS_PARALLEL_MIN_READS {
        gb.par_iter_mut()
            .enumerate()
            .for_each(|(oc, dst)| channel(oc, dst));
    } else {
        gb.iter_mut()
            .enumerate()
            .for_each(|(oc, dst)| channel(oc, dst));
    }
}

/// From this many elements of the output's gradient on, the bias gradient's channels are
/// summed on rayon's threads (conv2 at W6's shapes reads 800K: 0.2-0.3 ms on one core, a tenth
/// of the 2-thread weight gradient pass it belongs to).
const BIAS_PARALLEL_MIN_READS: usize = 1 << 16;

/// The sum of `v` in `f64`, in eight interleaved partial sums added in a fixed order (the
/// order is the data's length alone, and the lanes vectorise).
fn sum_f64<E: Float>(v: &[E]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| Float::to_f64(x)).sum();
    for chunk in chunks {
        for (l, &x) in lanes.iter_mut().zip(chunk) {
            *l += Float::to_f64(x);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// Grows `scratch` to `len` (a no-op once it has been that long).
fn ensure<E: Float>(scratch: &mut Vec<E>, len: usize) {
    if scratch.len() < len {
        scratch.resize(len, E::zero());
    }
}

/// Whether each run's products go on its own thread: when the runs are parallel on more than
/// one thread (on one, nothing is shared anyway and one call per product is cheaper).
fn splits_products(geo: &Geometry) -> bool {
    geo.parallel() && rayon::current_num_threads() > 1
}

/// Runs `f(run, chunk, slot)` on each `chunk`-sized piece of `out` with its `slot`-sized piece
/// of `scratch`, on rayon's threads when `parallel`.
fn each_run<E: Float>(
    parallel: bool,
    out: &mut [E],
    chunk: usize,
    scratch: &mut [E],
    slot: usize,
    f: impl Fn(usize, &mut [E], &mut [E]) + Sync + Send,
) {
    if chunk == 0 {
        return;
    }
    if parallel {
        out.par_chunks_mut(chunk)
            .zip(scratch.par_chunks_mut(slot))
            .enumerate()
            .for_each(|(r, (o, s))| f(r, o, s));
    } else {
        for (r, (o, s)) in out
            .chunks_mut(chunk)
            .zip(scratch.chunks_mut(slot))
            .enumerate()
        {
            f(r, o, s);
        }
    }
}

/// `c = a·b + beta·c`: on the calling thread when the runs already share the pool's threads
/// (`split`), where splitting each product again would only add joins and let a core that
/// finishes its runs take over half of another's product, reading patches the other core's
/// cache holds; one call to [`gemm`] otherwise. The same bits either way.
fn product<E: Float>(
    split: bool,
    a: ArrayView2<'_, E>,
    b: ArrayView2<'_, E>,
    beta: E,
    c: ArrayViewMut2<'_, E>,
) {
    if split {
        gemm_serial(E::one(), a, b, beta, c);
    } else {
        gemm(E::one(), a, b, beta, c);
    }
}

fn matrix<E: Float>(data: &[E], rows: usize, cols: usize) -> ArrayView2<'_, E> {
    ArrayView2::from_shape((rows, cols), &data[..rows * cols]).expect("sizes from the geometry")
}

fn matrix_mut<E: Float>(data: &mut [E], rows: usize, cols: usize) -> ArrayViewMut2<'_, E> {
    ArrayViewMut2::from_shape((rows, cols), &mut data[..rows * cols])
        .expect("sizes from the geometry")
}

fn forward<E: Float>(
    geo: &Geometry,
    x: &[E],
    w: &[E],
    bias: Option<&[E]>,
    scratch: &mut Vec<E>,
    out: &mut [E],
) {
    ensure(scratch, geo.scratch_len());
    let split = splits_products(geo);
    let (parts, per) = geo.parts();
    let slot = geo.slot();
    let (in_img, out_img) = (geo.in_image(), geo.out_image());
    let (og, k, p, cg) = (geo.og(), geo.k(), geo.p(), geo.cg());
    let run_images = |r: usize, out_run: &mut [E], cols: &mut [E]| {
        for (i, out_img_data) in out_run.chunks_mut(out_img).enumerate() {
            let image = r * per + i;
            let x_img = &x[image * in_img..(image + 1) * in_img];
            for grp in 0..geo.groups() {
                let dst = &mut out_img_data[grp * og * p..(grp + 1) * og * p];
                let beta = match bias {
                    Some(b) => {
                        for (row, &bv) in dst.chunks_mut(p).zip(&b[grp * og..(grp + 1) * og]) {
                            row.fill(bv);
                        }
                        E::one()
                    }
                    None => E::zero(),
                };
                let xg = &x_img[grp * cg * geo.h * geo.w..(grp + 1) * cg * geo.h * geo.w];
                let patches = if geo.direct() {
                    xg
                } else {
                    im2col(geo, xg, cols);
                    &*cols
                };
                product(
                    split,
                    matrix(&w[grp * og * k..], og, k),
                    matrix(patches, k, p),
                    beta,
                    matrix_mut(dst, og, p),
                );
            }
        }
    };
    each_run(
        geo.parallel(),
        &mut out[..geo.n * out_img],
        per * out_img,
        &mut scratch[..parts * slot],
        slot,
        run_images,
    );
}

fn vjp_input<E: Float, const ACC: bool>(
    geo: &Geometry,
    w: &[E],
    g: &[E],
    scratch: &mut Vec<E>,
    gi: &mut [E],
) {
    ensure(scratch, geo.scratch_len());
    let split = splits_products(geo);
    let (parts, per) = geo.parts();
    let slot = geo.slot();
    let (in_img, out_img) = (geo.in_image(), geo.out_image());
    let (og, k, p, cg) = (geo.og(), geo.k(), geo.p(), geo.cg());
    let plane = geo.h * geo.w;
    let run_images = |r: usize, gi_run: &mut [E], cols: &mut [E]| {
        for (i, gi_img) in gi_run.chunks_mut(in_img).enumerate() {
            let image = r * per + i;
            let g_img = &g[image * out_img..(image + 1) * out_img];
            for grp in 0..geo.groups() {
                let wg = matrix(&w[grp * og * k..], og, k);
                let gg = matrix(&g_img[grp * og * p..], og, p);
                let dst = &mut gi_img[grp * cg * plane..(grp + 1) * cg * plane];
                if geo.direct() {
                    let beta = if ACC { E::one() } else { E::zero() };
                    product(split, wg.t(), gg, beta, matrix_mut(dst, k, p));
                } else {
                    product(split, wg.t(), gg, E::zero(), matrix_mut(cols, k, p));
                    if !ACC {
                        dst.fill(E::zero());
                    }
                    col2im_add(geo, cols, dst);
                }
            }
        }
    };
    each_run(
        geo.parallel(),
        &mut gi[..geo.n * in_img],
        per * in_img,
        &mut scratch[..parts * slot],
        slot,
        run_images,
    );
}

fn vjp_weight<E: Float, const ACC: bool>(
    geo: &Geometry,
    x: &[E],
    g: &[E],
    scratch: &mut Vec<E>,
    gw: &mut [E],
) {
    let len = geo.weight_len();
    if geo.n == 0 || len == 0 {
        // No image, or nothing to learn: a zero gradient.
        if !ACC {
            gw[..len].fill(E::zero());
        }
        return;
    }
    ensure(scratch, geo.scratch_len());
    let split = splits_products(geo);
    let (parts, per) = geo.parts();
    let slot = geo.slot();
    let (in_img, out_img) = (geo.in_image(), geo.out_image());
    let (og, k, p, cg) = (geo.og(), geo.k(), geo.p(), geo.cg());
    let plane = geo.h * geo.w;
    let (cols_area, partial_area) = scratch.split_at_mut(parts * slot);
    let partials = &mut partial_area[..parts * len];
    let run_images = |r: usize, partial: &mut [E], cols: &mut [E]| {
        let images = (r * per..((r + 1) * per).min(geo.n)).enumerate();
        for (i, image) in images {
            let x_img = &x[image * in_img..(image + 1) * in_img];
            let g_img = &g[image * out_img..(image + 1) * out_img];
            let beta = if i == 0 { E::zero() } else { E::one() };
            for grp in 0..geo.groups() {
                let xg = &x_img[grp * cg * plane..(grp + 1) * cg * plane];
                let patches = if geo.direct() {
                    xg
                } else {
                    im2col(geo, xg, cols);
                    &*cols
                };
                product(
                    split,
                    matrix(&g_img[grp * og * p..], og, p),
                    matrix(patches, k, p).t(),
                    beta,
                    matrix_mut(&mut partial[grp * og * k..], og, k),
                );
            }
        }
    };
    // Each run's partial sum is a whole weight: pair the runs with their slots of patches.
    let runs = geo.n.div_ceil(per);
    let parallel = geo.parallel();
    if parallel {
        partials[..runs * len]
            .par_chunks_mut(len)
            .zip(cols_area.par_chunks_mut(slot))
            .enumerate()
            .for_each(|(r, (o, s))| run_images(r, o, s));
    } else {
        for (r, (o, s)) in partials[..runs * len]
            .chunks_mut(len)
            .zip(cols_area.chunks_mut(slot))
            .enumerate()
        {
            run_images(r, o, s);
        }
    }
    for (j, dst) in gw[..len].iter_mut().enumerate() {
        let mut sum = partials[j];
        for r in 1..runs {
            sum += partials[r * len + j];
        }
        store::<E, ACC>(dst, sum);
    }
}

/// The output positions `o` in `0..out_len` whose input position `o·stride + offset - pad`
/// lies in `0..len`: a range `lo..hi`.
#[inline]
fn valid(offset: usize, pad: usize, stride: usize, len: usize, out_len: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    let hi = (len + pad)
        .saturating_sub(offset)
        .div_ceil(stride)
        .min(out_len);
    (lo.min(hi), hi)
}

/// Whether every row of the patch matrix is the input plane shifted by a constant: stride 1 on
/// both axes and an output as wide as the input (a "same" convolution such as 3×3 with padding
/// 1). Output position `q = y·OW + z` then reads input `q + shift`, so a row is one contiguous
/// copy (and a row of gradients one contiguous add) once the entries whose column falls in the
/// padding are dealt with: copying them segment by segment cost about a fifth of W6's passes.
fn shifted_rows(geo: &Geometry) -> bool {
    geo.args.stride == [1, 1] && geo.ow == geo.w
}

/// The shift `(i·dh - ph)·W + j·dw - pw` of tap `(i, j)` on a [`shifted_rows`] geometry, and
/// the output positions `lo..hi` whose input `q + shift` lies inside the plane. An entry in that
/// range reads the right element exactly when its column is valid (see [`valid`]): with rows as
/// wide as the plane's, a valid column and an index inside the plane mean a valid row.
fn shifted_range(geo: &Geometry, i: usize, j: usize) -> (isize, usize, usize) {
    let [ph, pw] = geo.args.padding;
    let [dh, dw] = geo.args.dilation;
    let w = geo.w as isize;
    let shift =
        (i as isize * dh as isize - ph as isize) * w + j as isize * dw as isize - pw as isize;
    let plane = (geo.h * geo.w) as isize;
    let p = geo.p() as isize;
    let lo = (-shift).clamp(0, p);
    let hi = (plane - shift).clamp(lo, p);
    (shift, lo as usize, hi as usize)
}

/// Zeroes, in each output row of `row`, the entries whose column falls in the padding for
/// kernel column `j`.
fn zero_padding_columns<E: Float>(geo: &Geometry, j: usize, row: &mut [E]) {
    let (lo, hi) = valid(
        j * geo.args.dilation[1],
        geo.args.padding[1],
        1,
        geo.w,
        geo.ow,
    );
    // Column by column down the rows: these are a few entries per row (as many as the
    // padding), and a fill per row segment would be a call to `memset` each.
    let ow = geo.ow;
    for z in (0..lo).chain(hi..ow) {
        for entry in row.iter_mut().skip(z).step_by(ow) {
            *entry = E::zero();
        }
    }
}

/// Unrolls one group's input `x` `[C/groups, H, W]` into `cols` `[C/groups·kh·kw, OH·OW]`:
/// row `(c·kh + i)·kw + j` holds, at output position `(y, z)`, the input at
/// `(y·sh + i·dh - ph, z·sw + j·dw - pw)`, or 0 in the padding.
fn im2col<E: Float>(geo: &Geometry, x: &[E], cols: &mut [E]) {
    if geo.h * geo.w == 0 {
        // An empty plane inside its padding: every patch entry is a zero of the padding.
        cols[..geo.k() * geo.p()].fill(E::zero());
        return;
    }
    if shifted_rows(geo) {
        im2col_shifted(geo, x, cols);
        return;
    }
    let [sh, sw] = geo.args.stride;
    let [ph, pw] = geo.args.padding;
    let [dh, dw] = geo.args.dilation;
    let (h, w, ow) = (geo.h, geo.w, geo.ow);
    let mut rows = cols[..geo.k() * geo.p()].chunks_exact_mut(geo.p());
    for plane in x.chunks_exact(h * w).take(geo.cg()) {
        for i in 0..geo.kh {
            for j in 0..geo.kw {
                let Some(row) = rows.next() else { return };
                let (lo, hi) = valid(j * dw, pw, sw, w, ow);
                for (y, seg) in row.chunks_exact_mut(ow).enumerate() {
                    let iy = (y * sh + i * dh).wrapping_sub(ph);
                    if iy >= h {
                        seg.fill(E::zero());
                        continue;
                    }
                    let src = &plane[iy * w..(iy + 1) * w];
                    seg[..lo].fill(E::zero());
                    seg[hi..].fill(E::zero());
                    if lo < hi {
                        let x0 = lo * sw + j * dw - pw;
                        if sw == 1 {
                            seg[lo..hi].copy_from_slice(&src[x0..x0 + hi - lo]);
                        } else {
                            for (d, &s) in seg[lo..hi].iter_mut().zip(src[x0..].iter().step_by(sw))
                            {
                                *d = s;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col`] on a [`shifted_rows`] geometry: each row one copy of the shifted plane.
fn im2col_shifted<E: Float>(geo: &Geometry, x: &[E], cols: &mut [E]) {
    let plane_len = geo.h * geo.w;
    let mut rows = cols[..geo.k() * geo.p()].chunks_exact_mut(geo.p());
    for plane in x.chunks_exact(plane_len).take(geo.cg()) {
        for i in 0..geo.kh {
            for j in 0..geo.kw {
                let Some(row) = rows.next() else { return };
                let (shift, lo, hi) = shifted_range(geo, i, j);
                row[..lo].fill(E::zero());
                row[hi..].fill(E::zero());
                if lo < hi {
                    let from = (lo as isize + shift) as usize;
                    row[lo..hi].copy_from_slice(&plane[from..from + hi - lo]);
                    zero_padding_columns(geo, j, row);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `cols` into the input position it was read
/// from (padding entries go nowhere), rows in order. `cols` is scratch: on a
/// [`shifted_rows`] geometry its padding entries are zeroed first, so that each row is one
/// contiguous add (adding a zero leaves every sum as it was, bar the sign of a zero).
fn col2im_add<E: Float>(geo: &Geometry, cols: &mut [E], dx: &mut [E]) {
    if geo.h * geo.w == 0 {
        // Nothing was read: every entry came from the padding.
        return;
    }
    if shifted_rows(geo) {
        col2im_add_shifted(geo, cols, dx);
        return;
    }
    let [sh, sw] = geo.args.stride;
    let [ph, pw] = geo.args.padding;
    let [dh, dw] = geo.args.dilation;
    let (h, w, ow) = (geo.h, geo.w, geo.ow);
    let mut rows = cols[..geo.k() * geo.p()].chunks_exact(geo.p());
    for plane in dx.chunks_exact_mut(h * w).take(geo.cg()) {
        for i in 0..geo.kh {
            for j in 0..geo.kw {
                let Some(row) = rows.next() else { return };
                let (lo, hi) = valid(j * dw, pw, sw, w, ow);
                if lo >= hi {
                    continue;
                }
                for (y, seg) in row.chunks_exact(ow).enumerate() {
                    let iy = (y * sh + i * dh).wrapping_sub(ph);
                    if iy >= h {
                        continue;
                    }
                    let dst = &mut plane[iy * w..(iy + 1) * w];
                    let x0 = lo * sw + j * dw - pw;
                    if sw == 1 {
                        let dst = &mut dst[x0..x0 + hi - lo];
                        for (d, &s) in dst.iter_mut().zip(&seg[lo..hi]) {
                            *d += s;
                        }
                    } else {
                        for (d, &s) in dst[x0..].iter_mut().step_by(sw).zip(&seg[lo..hi]) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// [`col2im_add`] on a [`shifted_rows`] geometry.
fn col2im_add_shifted<E: Float>(geo: &Geometry, cols: &mut [E], dx: &mut [E]) {
    let plane_len = geo.h * geo.w;
    let mut rows = cols[..geo.k() * geo.p()].chunks_exact_mut(geo.p());
    for plane in dx.chunks_exact_mut(plane_len).take(geo.cg()) {
        for i in 0..geo.kh {
            for j in 0..geo.kw {
                let Some(row) = rows.next() else { return };
                let (shift, lo, hi) = shifted_range(geo, i, j);
                if lo >= hi {
                    // The tap reads only padding (a tall dilation in a short plane).
                    continue;
                }
                zero_padding_columns(geo, j, row);
                let from = (lo as isize + shift) as usize;
                for (d, &s) in plane[from..from + hi - lo].iter_mut().zip(&row[lo..hi]) {
                    *d += s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    /// A convolution case: input and weight dims (2-D), arguments, whether it has a bias.
    #[derive(Debug, Clone, Copy)]
    struct Case {
        x: [usize; 4],
        w: [usize; 4],
        args: Conv2dArgs,
        bias: bool,
    }

    fn args(stride: usize, padding: usize, dilation: usize, groups: usize) -> Conv2dArgs {
        Conv2dArgs {
            stride: [stride, stride],
            padding: [padding, padding],
            dilation: [dilation, dilation],
            groups,
        }
    }

    /// The convolution by its definition: every output element a sum over its window.
    fn naive(c: &Case, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let [n, ci, h, wd] = c.x;
        let [o, cg, kh, kw] = c.w;
        let out = conv2d_shape(&shape(&c.x), &shape(&c.w), None, c.args).unwrap();
        let [_, _, oh, ow] = [out.dims()[0], out.dims()[1], out.dims()[2], out.dims()[3]];
        let og = o / c.args.groups;
        let mut y = vec![0.0; out.numel()];
        for i in 0..n {
            for oc in 0..o {
                let grp = oc / og;
                for yy in 0..oh {
                    for xx in 0..ow {
                        let mut s = b.map_or(0.0, |b| b[oc]);
                        for cc in 0..cg {
                            for ki in 0..kh {
                                for kj in 0..kw {
                                    let iy = (yy * c.args.stride[0] + ki * c.args.dilation[0])
                                        as isize
                                        - c.args.padding[0] as isize;
                                    let ix = (xx * c.args.stride[1] + kj * c.args.dilation[1])
                                        as isize
                                        - c.args.padding[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let chan = grp * cg + cc;
                                    let xv =
                                        x[((i * ci + chan) * h + iy as usize) * wd + ix as usize];
                                    s += xv * w[((oc * cg + cc) * kh + ki) * kw + kj];
                                }
                            }
                        }
                        y[((i * o + oc) * oh + yy) * ow + xx] = s;
                    }
                }
            }
        }
        y
    }

    /// Checks `c`'s forward against [`naive`] and its three VJPs against finite differences;
    /// returns the worst finite-difference error.
    fn check(c: &Case, seed: u64) -> f64 {
        let (xs, ws, bs) = (shape(&c.x), shape(&c.w), Shape::vector(c.w[0]));
        let out = conv2d_shape(&xs, &ws, c.bias.then_some(&bs), c.args).unwrap();
        let (x, w, b) = (
            values(xs.numel(), seed),
            values(ws.numel(), seed + 1),
            values(c.w[0], seed + 2),
        );
        let bias = |b: &[f64]| c.bias.then_some(b.to_vec());
        let run = |x: &[f64], w: &[f64], b: &[f64]| {
            let mut y = vec![f64::NAN; out.numel()];
            let mut scratch = vec![f64::NAN; conv2d_scratch_len(&xs, &ws, c.args).unwrap()];
            let bias = bias(b);
            conv2d(
                TensorRef::trusted(&xs, x),
                TensorRef::trusted(&ws, w),
                bias.as_deref(),
                c.args,
                &mut scratch,
                &mut y,
            );
            y
        };
        let got = run(&x, &w, &b);
        let want = naive(c, &x, &w, bias(&b).as_deref());
        for (k, (g, v)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - v).abs() <= 1e-12 * v.abs().max(1.0),
                "{c:?} at {k}: {g} vs {v}"
            );
        }
        let g = values(out.numel(), seed + 3);
        // Scratch left stale (NaN) by an earlier call must not leak into any result.
        let stale = || vec![f64::NAN; conv2d_scratch_len(&xs, &ws, c.args).unwrap()];
        let dx = fd_error(
            &|x| run(x, &w, &b),
            &|_, g, gi, acc| {
                let wt = TensorRef::trusted(&ws, &w);
                let mut s = stale();
                if acc {
                    conv2d_vjp_input::<f64, true>(&xs, wt, c.args, g, &mut s, gi);
                } else {
                    conv2d_vjp_input::<f64, false>(&xs, wt, c.args, g, &mut s, gi);
                }
            },
            &x,
            &g,
        );
        let dw = fd_error(
            &|w| run(&x, w, &b),
            &|_, g, gi, acc| {
                let xt = TensorRef::trusted(&xs, &x);
                let mut s = stale();
                if acc {
                    conv2d_vjp_weight::<f64, true>(xt, &ws, c.args, g, &mut s, gi);
                } else {
                    conv2d_vjp_weight::<f64, false>(xt, &ws, c.args, g, &mut s, gi);
                }
            },
            &w,
            &g,
        );
        let mut worst = dx.max(dw);
        if c.bias {
            let db = fd_error(
                &|b| run(&x, &w, b),
                &|_, g, gi, acc| {
                    if acc {
                        conv_vjp_bias::<f64, true>(&out, g, gi);
                    } else {
                        conv_vjp_bias::<f64, false>(&out, g, gi);
                    }
                },
                &b,
                &g,
            );
            worst = worst.max(db);
        }
        worst
    }

    const CASES: &[Case] = &[
        Case {
            x: [2, 3, 5, 5],
            w: [4, 3, 3, 3],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                groups: 1,
            },
            bias: true,
        },
        Case {
            x: [2, 3, 5, 6],
            w: [4, 3, 3, 3],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
                groups: 1,
            },
            bias: false,
        },
        Case {
            x: [1, 2, 7, 6],
            w: [2, 2, 3, 2],
            args: Conv2dArgs {
                stride: [2, 3],
                padding: [1, 2],
                dilation: [1, 1],
                groups: 1,
            },
            bias: true,
        },
        Case {
            x: [2, 2, 7, 7],
            w: [3, 2, 3, 3],
            args: Conv2dArgs {
                stride: [1, 2],
                padding: [2, 1],
                dilation: [2, 3],
                groups: 1,
            },
            bias: true,
        },
        Case {
            x: [2, 4, 5, 5],
            w: [6, 2, 3, 3],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
                groups: 2,
            },
            bias: true,
        },
        Case {
            x: [1, 4, 4, 4],
            w: [4, 1, 2, 2],
            args: Conv2dArgs {
                stride: [2, 2],
                padding: [0, 0],
                dilation: [1, 1],
                groups: 4,
            },
            bias: false,
        },
        // 1×1 kernels read the input in place.
        Case {
            x: [3, 4, 3, 2],
            w: [5, 4, 1, 1],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                groups: 1,
            },
            bias: true,
        },
        Case {
            x: [2, 4, 3, 3],
            w: [2, 2, 1, 1],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                groups: 2,
            },
            bias: false,
        },
        // A kernel as large as the padded input, a padding larger than the kernel, one row.
        Case {
            x: [1, 1, 3, 3],
            w: [1, 1, 5, 5],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [1, 1],
                dilation: [1, 1],
                groups: 1,
            },
            bias: true,
        },
        Case {
            x: [1, 1, 2, 2],
            w: [2, 1, 2, 2],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [3, 3],
                dilation: [1, 1],
                groups: 1,
            },
            bias: false,
        },
        Case {
            x: [2, 2, 1, 9],
            w: [3, 2, 1, 3],
            args: Conv2dArgs {
                stride: [1, 2],
                padding: [0, 1],
                dilation: [1, 2],
                groups: 1,
            },
            bias: true,
        },
        // An empty plane inside its padding: every patch is padding (a same-width one, whose
        // patch rows are shifted planes, and a strided one).
        Case {
            x: [2, 1, 0, 3],
            w: [2, 1, 1, 1],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [1, 0],
                dilation: [1, 1],
                groups: 1,
            },
            bias: true,
        },
        Case {
            x: [1, 2, 0, 4],
            w: [1, 2, 1, 2],
            args: Conv2dArgs {
                stride: [1, 2],
                padding: [1, 0],
                dilation: [1, 1],
                groups: 1,
            },
            bias: false,
        },
        // Taps that read only padding on a same-width geometry: a dilated kernel taller than
        // the plane, its first and last rows beyond it.
        Case {
            x: [1, 1, 1, 3],
            w: [2, 1, 3, 3],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [2, 1],
                dilation: [2, 1],
                groups: 1,
            },
            bias: true,
        },
        // More images than runs (9 images in 5 runs of 2 and one short), and none at all.
        Case {
            x: [9, 1, 3, 3],
            w: [2, 1, 2, 2],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                groups: 1,
            },
            bias: true,
        },
        Case {
            x: [0, 2, 3, 3],
            w: [2, 2, 2, 2],
            args: Conv2dArgs {
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
                groups: 1,
            },
            bias: true,
        },
    ];

    #[test]
    fn conv2d_matches_its_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for (i, c) in CASES.iter().enumerate() {
            let err = check(c, i as u64 * 10);
            assert!(err < FD_TOL, "{c:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst conv2d: {worst:e}");
    }

    #[test]
    fn a_small_convolution_by_hand() {
        // x = 1..9 in a 3×3 image, w = [[1, 0], [0, -1]], bias 10, padding 0:
        // y[i][j] = x[i][j] - x[i+1][j+1] + 10 = -4 + 10 everywhere.
        let (xs, ws) = (shape(&[1, 1, 3, 3]), shape(&[1, 1, 2, 2]));
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        let w = [1.0, 0.0, 0.0, -1.0];
        let mut y = [0.0; 4];
        let mut scratch = Vec::new();
        let (xt, wt) = (TensorRef::trusted(&xs, &x), TensorRef::trusted(&ws, &w));
        conv2d(
            xt,
            wt,
            Some(&[10.0]),
            Conv2dArgs::default(),
            &mut scratch,
            &mut y,
        );
        assert_eq!(y, [6.0; 4]);
        // With padding 1 and stride 2: the windows at (-1, -1), (-1, 1), (1, -1), (1, 1).
        let a = Conv2dArgs {
            stride: [2, 2],
            padding: [1, 1],
            ..Default::default()
        };
        conv2d(xt, wt, None, a, &mut scratch, &mut y);
        assert_eq!(y, [-1.0, -3.0, -7.0, 5.0 - 9.0]);
        // dy = 1 everywhere: dx = Σ of the taps that read each input.
        let mut dx = [f64::NAN; 9];
        conv2d_vjp_input::<f64, false>(&xs, wt, a, &[1.0; 4], &mut scratch, &mut dx);
        assert_eq!(dx, [-1.0, 0.0, -1.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0]);
        let mut dw = [f64::NAN; 4];
        conv2d_vjp_weight::<f64, false>(xt, &ws, a, &[1.0; 4], &mut scratch, &mut dw);
        // Tap (0, 0) reads only x[1][1]; taps (0, 1) and (1, 0) read 4 + 6 and 2 + 8.
        assert_eq!(dw, [5.0, 10.0, 10.0, 1.0 + 3.0 + 7.0 + 9.0]);
    }

    #[test]
    fn conv1d_is_conv2d_on_a_height_of_one() {
        let (xs, ws) = (shape(&[2, 4, 9]), shape(&[6, 2, 3]));
        let a = Conv1dArgs {
            stride: 2,
            padding: 2,
            dilation: 2,
            groups: 2,
        };
        let out = conv1d_shape(&xs, &ws, Some(&Shape::vector(6)), a).unwrap();
        assert_eq!(out.dims(), &[2, 6, 5]);
        let c = Case {
            x: [2, 4, 1, 9],
            w: [6, 2, 1, 3],
            args: a.as_2d(),
            bias: true,
        };
        let (x, w, b) = (values(xs.numel(), 1), values(ws.numel(), 2), values(6, 3));
        let mut y = vec![0.0; out.numel()];
        let mut scratch = Vec::new();
        let (xt, wt) = (TensorRef::trusted(&xs, &x), TensorRef::trusted(&ws, &w));
        conv1d(xt, wt, Some(&b), a, &mut scratch, &mut y);
        for (a, b) in y.iter().zip(naive(&c, &x, &w, Some(&b))) {
            assert!((a - b).abs() < 1e-12, "{a} {b}");
        }
        // Its gradients are conv2d's, which `check` holds to finite differences.
        let g = values(out.numel(), 4);
        let (xs2, ws2) = (shape(&c.x), shape(&c.w));
        let mut d1 = vec![0.0; x.len()];
        let mut d2 = vec![0.0; x.len()];
        conv1d_vjp_input::<f64, false>(&xs, wt, a, &g, &mut scratch, &mut d1);
        conv2d_vjp_input::<f64, false>(
            &xs2,
            TensorRef::trusted(&ws2, &w),
            c.args,
            &g,
            &mut scratch,
            &mut d2,
        );
        assert_eq!(d1, d2);
        let mut d1 = vec![0.0; w.len()];
        let mut d2 = vec![0.0; w.len()];
        conv1d_vjp_weight::<f64, false>(xt, &ws, a, &g, &mut scratch, &mut d1);
        conv2d_vjp_weight::<f64, false>(
            TensorRef::trusted(&xs2, &x),
            &ws2,
            c.args,
            &g,
            &mut scratch,
            &mut d2,
        );
        assert_eq!(d1, d2);
        assert!(check(&c, 5) < FD_TOL);
    }

    #[test]
    fn bad_shapes_and_arguments_are_errors_naming_them() {
        let (x, w) = (shape(&[2, 4, 5, 5]), shape(&[6, 2, 3, 3]));
        let ok = args(1, 0, 1, 2);
        assert!(conv2d_shape(&x, &w, None, ok).is_ok());
        let invalid = |a: Conv2dArgs, name: &str| {
            let err = conv2d_shape(&x, &w, None, a).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument { op: CONV2D, argument, .. } if *argument == name),
                "{a:?}: {err}"
            );
        };
        invalid(args(0, 0, 1, 2), "stride");
        invalid(args(1, 0, 0, 2), "dilation");
        invalid(args(1, 0, 1, 0), "groups");
        invalid(args(1, 0, 1, 3), "groups");
        invalid(args(1, 0, 3, 2), "padding");
        invalid(args(1, usize::MAX, 1, 2), "padding");
        let err = conv2d_shape(&x, &w, None, args(1, 0, 1, 1)).unwrap_err();
        assert_eq!(
            err,
            Error::ShapeMismatch {
                op: CONV2D,
                lhs: x,
                rhs: w
            }
        );
        let b = Shape::vector(5);
        let err = conv2d_shape(&x, &w, Some(&b), ok).unwrap_err();
        assert_eq!(
            err,
            Error::ShapeMismatch {
                op: CONV2D,
                lhs: w,
                rhs: b
            }
        );
        let err = conv2d_shape(&shape(&[4, 5, 5]), &w, None, ok).unwrap_err();
        assert!(matches!(err, Error::WrongRank { op: CONV2D, .. }), "{err}");
        let err = conv1d_shape(&x, &w, None, Conv1dArgs::default()).unwrap_err();
        assert!(matches!(err, Error::WrongRank { op: CONV1D, .. }), "{err}");
        let err = conv2d_shape(&x, &shape(&[6, 2, 0, 3]), None, ok).unwrap_err();
        assert!(err.to_string().contains("kernel"), "{err}");
        assert_eq!(
            err.to_string(),
            "conv2d: kernel size = 0 is invalid: the weight [6, 2, 0, 3] must have kernel axes of length at least 1"
        );
    }

    /// A convolution big enough to run its images in parallel, on `threads` threads.
    fn threaded(threads: usize) -> [Vec<u64>; 4] {
        let a = args(1, 1, 1, 1);
        let (xs, ws) = (shape(&[16, 16, 12, 12]), shape(&[32, 16, 3, 3]));
        let out2 = conv2d_shape(&xs, &ws, None, a).unwrap();
        assert!(Geometry::conv2d(&xs, &ws, a).unwrap().parallel());
        assert!(out2.numel() >= BIAS_PARALLEL_MIN_READS);
        let (x, w, g) = (
            values(xs.numel(), 1),
            values(ws.numel(), 2),
            values(out2.numel(), 3),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (xt, wt) = (TensorRef::trusted(&xs, &x), TensorRef::trusted(&ws, &w));
            let mut scratch = Vec::new();
            let mut y = vec![f64::NAN; out2.numel()];
            conv2d(xt, wt, None, a, &mut scratch, &mut y);
            let mut dx = vec![0.0; x.len()];
            conv2d_vjp_input::<f64, false>(&xs, wt, a, &g, &mut scratch, &mut dx);
            let mut dw = vec![0.0; w.len()];
            conv2d_vjp_weight::<f64, false>(xt, &ws, a, &g, &mut scratch, &mut dw);
            let mut db = vec![0.0; ws.dims()[0]];
            conv_vjp_bias::<f64, false>(&out2, &g, &mut db);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            [bits(&y), bits(&dx), bits(&dw), bits(&db)]
        })
    }

    #[test]
    fn results_are_bit_identical_for_any_thread_count() {
        let one = threaded(1);
        assert_eq!(one, threaded(2));
        assert_eq!(one, threaded(3));
    }

    #[test]
    fn the_scratch_grows_once_and_is_reused() {
        let (xs, ws) = (shape(&[4, 3, 6, 6]), shape(&[5, 3, 3, 3]));
        let a = args(1, 1, 1, 1);
        let len = conv2d_scratch_len(&xs, &ws, a).unwrap();
        let out = conv2d_shape(&xs, &ws, None, a).unwrap();
        let (x, w, g) = (
            values(xs.numel(), 1),
            values(ws.numel(), 2),
            values(out.numel(), 3),
        );
        let (xt, wt) = (TensorRef::trusted(&xs, &x), TensorRef::trusted(&ws, &w));
        let mut scratch = Vec::new();
        let (mut y, mut dx, mut dw) = (
            vec![0.0; out.numel()],
            vec![0.0; x.len()],
            vec![0.0; w.len()],
        );
        let mut step = |scratch: &mut Vec<f64>| {
            conv2d(xt, wt, None, a, scratch, &mut y);
            conv2d_vjp_input::<f64, false>(&xs, wt, a, &g, scratch, &mut dx);
            conv2d_vjp_weight::<f64, true>(xt, &ws, a, &g, scratch, &mut dw);
        };
        step(&mut scratch);
        assert_eq!(scratch.len(), len);
        let (ptr, cap) = (scratch.as_ptr(), scratch.capacity());
        for _ in 0..3 {
            step(&mut scratch);
        }
        assert_eq!((scratch.as_ptr(), scratch.capacity()), (ptr, cap));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn random_convolutions(
            n in 0usize..3, cg in 1usize..3, og in 1usize..3, groups in 1usize..3,
            h in 1usize..6, w in 1usize..6, kh in 1usize..4, kw in 1usize..4,
            stride in 1usize..3, padding in 0usize..3, dilation in 1usize..3,
            bias in proptest::bool::ANY, seed in 0u64..1000,
        ) {
            let c = Case {
                x: [n, cg * groups, h, w],
                w: [og * groups, cg, kh, kw],
                args: args(stride, padding, dilation, groups),
                bias,
            };
            // Kernels larger than the padded input are errors, tested apart.
            prop_assume!(conv2d_shape(&shape(&c.x), &shape(&c.w), None, c.args).is_ok());
            prop_assert!(check(&c, seed) < FD_TOL);
        }
    }
}

/// Timings at W6's shapes, run by hand in release:
/// `cargo test --release -p wengert-ops --lib conv::timing -- --ignored --nocapture`.
#[cfg(test)]
mod timing {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};
    use std::time::Instant;

    /// The shortest time in seconds of each of `fs` over 40 rounds (after 3 of warming up),
    /// the functions interleaved in every round so that they meet the same background load: on
    /// a machine shared with other work the shortest run is the least disturbed.
    fn best<const K: usize>(fs: &mut [&mut dyn FnMut(); K]) -> [f64; K] {
        let mut t = [f64::INFINITY; K];
        for round in 0..43 {
            for (f, t) in fs.iter_mut().zip(&mut t) {
                let start = Instant::now();
                f();
                if round >= 3 {
                    *t = t.min(start.elapsed().as_secs_f64());
                }
            }
        }
        t
    }

    /// The forward as an implicit gemm (stride 1, one group): for each kernel tap and output
    /// row, `out[:, y, lo..hi] += W[:, :, i, j] · x[:, y + i - ph, lo + j - pw..]`, the
    /// operands read in place as strided views.
    fn implicit_forward(geo: &Geometry, x: &[f32], w: &[f32], out: &mut [f32]) {
        let (c, h, wd, o, p) = (geo.c, geo.h, geo.w, geo.o, geo.p());
        let (kh, kw) = (geo.kh, geo.kw);
        let [ph, pw] = geo.args.padding;
        out.par_chunks_mut(o * p)
            .enumerate()
            .for_each(|(n, out_img)| {
                out_img.fill(0.0);
                let x_img = &x[n * c * h * wd..(n + 1) * c * h * wd];
                for i in 0..kh {
                    for j in 0..kw {
                        let taps = (o, c).strides((c * kh * kw, kh * kw));
                        let wt = ArrayView2::from_shape(taps, &w[i * kw + j..]).unwrap();
                        let (lo, hi) = valid(j, pw, 1, wd, geo.ow);
                        for y in 0..geo.oh {
                            let iy = (y + i).wrapping_sub(ph);
                            if iy >= h || lo >= hi {
                                continue;
                            }
                            let len = hi - lo;
                            let at = iy * wd + lo + j - pw;
                            let xv =
                                ArrayView2::from_shape((c, len).strides((h * wd, 1)), &x_img[at..])
                                    .unwrap();
                            let ov = ArrayViewMut2::from_shape(
                                (o, len).strides((p, 1)),
                                &mut out_img[y * geo.ow + lo..],
                            )
                            .unwrap();
                            gemm(1.0, wt, xv, 1.0, ov);
                        }
                    }
                }
            });
    }

    /// Each pass of W6's two convolutions on a pool of 1 and of 2 threads, the two pools taking
    /// turns in every round so that they meet the same background load: the median and the
    /// fastest of 41 rounds (after 3 of warming up), in GFLOP/s (2 × output elements × kernel
    /// volume per pass). Run by hand in release, pinned to the two cores:
    /// `taskset -c 0,1 cargo test --release -p wengert-ops --lib w6_threads -- --ignored --nocapture`.
    /// `W6_ROUNDS` sets the rounds, `W6_THREADS` the pools (`1,2`), `W6_CONV` one convolution
    /// (`1` or `2`): `perf stat` on one pool and one convolution counts that case alone.
    #[test]
    #[ignore = "a measurement, not a check: run by hand in release"]
    fn w6_threads() {
        let a = Conv2dArgs {
            padding: [1, 1],
            ..Default::default()
        };
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_string());
        let rounds: usize = var("W6_ROUNDS", "41").parse().unwrap();
        let threads: Vec<usize> = var("W6_THREADS", "1,2")
            .split(',')
            .map(|t| t.parse().unwrap())
            .collect();
        let conv = var("W6_CONV", "1,2");
        let pools: Vec<rayon::ThreadPool> = threads
            .iter()
            .map(|&t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
            })
            .collect();
        for (name, xd, wd) in [
            ("conv1 1->32 on 28x28", [64, 1, 28, 28], [32, 1, 3, 3]),
            ("conv2 32->64 on 14x14", [64, 32, 14, 14], [64, 32, 3, 3]),
        ] {
            if !conv.contains(&name[4..5]) {
                continue;
            }
            let (xs, ws) = (Shape::new(&xd).unwrap(), Shape::new(&wd).unwrap());
            let out = conv2d_shape(&xs, &ws, None, a).unwrap();
            let x: Vec<f32> = (0..xs.numel())
                .map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6)
                .collect();
            let w: Vec<f32> = (0..ws.numel())
                .map(|i| ((i * 104_729) % 17) as f32 * 0.05)
                .collect();
            let b = vec![0.1f32; wd[0]];
            let g: Vec<f32> = (0..out.numel())
                .map(|i| ((i * 31) % 7) as f32 * 0.1)
                .collect();
            let (xt, wt) = (TensorRef::trusted(&xs, &x), TensorRef::trusted(&ws, &w));
            let mut scratch = [Vec::new(), Vec::new(), Vec::new()];
            let mut y = vec![0.0f32; out.numel()];
            let mut dx = vec![0.0f32; x.len()];
            let mut dw = vec![0.0f32; w.len()];
            let mut db = vec![0.0f32; b.len()];
            // times[pass][pool][round]
            let mut times = vec![vec![Vec::new(); pools.len()]; 3];
            for round in 0..rounds + 3 {
                for (t, pool) in pools.iter().enumerate() {
                    pool.install(|| {
                        let [s0, s1, s2] = &mut scratch;
                        let mut passes: [&mut dyn FnMut(); 3] = [
                            &mut || conv2d(xt, wt, Some(&b), a, s0, &mut y),
                            &mut || conv2d_vjp_input::<f32, false>(&xs, wt, a, &g, s1, &mut dx),
                            &mut || {
                                conv2d_vjp_weight::<f32, false>(xt, &ws, a, &g, s2, &mut dw);
                                conv_vjp_bias::<f32, false>(&out, &g, &mut db);
                            },
                        ];
                        for (pass, f) in passes.iter_mut().enumerate() {
                            let start = Instant::now();
                            f();
                            if round >= 3 {
                                times[pass][t].push(start.elapsed().as_secs_f64());
                            }
                        }
                    });
                }
            }
            let flop = 2.0 * out.numel() as f64 * (wd[1] * wd[2] * wd[3]) as f64;
            for (t, threads) in threads.iter().enumerate() {
                let mut line = format!("{name}, {threads} thread(s):");
                let mut total = [0.0f64; 2];
                for (pass, label) in ["forward", "input grad", "weight+bias grad"]
                    .iter()
                    .enumerate()
                {
                    let v = &mut times[pass][t];
                    v.sort_by(f64::total_cmp);
                    let (median, fastest) = (v[v.len() / 2], v[0]);
                    total[0] += median;
                    total[1] += fastest;
                    line += &format!(
                        " {label} {:.3} ms {:.1} GFLOP/s (fastest {:.3} ms {:.1});",
                        median * 1e3,
                        flop / median / 1e9,
                        fastest * 1e3,
                        flop / fastest / 1e9
                    );
                }
                line += &format!(
                    " 3 passes {:.1} GFLOP/s (fastest {:.1})",
                    3.0 * flop / total[0] / 1e9,
                    3.0 * flop / total[1] / 1e9
                );
                println!("{line}");
            }
        }
    }

    #[test]
    #[ignore = "a measurement, not a check: run by hand in release"]
    fn w6_convolutions() {
        let a = Conv2dArgs {
            padding: [1, 1],
            ..Default::default()
        };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let n = 512;
                let m = Array2::<f32>::from_shape_fn((n, n), |(i, j)| ((i * 7 + j * 3) % 11) as f32);
                let mut cm = Array2::<f32>::zeros((n, n));
                for (name, xd, wd) in [
                    ("conv1 1->32 on 28x28", [64, 1, 28, 28], [32, 1, 3, 3]),
                    ("conv2 32->64 on 14x14", [64, 32, 14, 14], [64, 32, 3, 3]),
                ] {
                    let (xs, ws) = (Shape::new(&xd).unwrap(), Shape::new(&wd).unwrap());
                    let out = conv2d_shape(&xs, &ws, None, a).unwrap();
                    let geo = Geometry::conv2d(&xs, &ws, a).unwrap();
                    let x: Vec<f32> = (0..xs.numel()).map(|i| ((i * 7919) % 13) as f32 * 0.1 - 0.6).collect();
                    let w: Vec<f32> = (0..ws.numel()).map(|i| ((i * 104_729) % 17) as f32 * 0.05).collect();
                    let b = vec![0.1f32; wd[0]];
                    let g: Vec<f32> = (0..out.numel()).map(|i| ((i * 31) % 7) as f32 * 0.1).collect();
                    let (xt, wt) = (TensorRef::trusted(&xs, &x), TensorRef::trusted(&ws, &w));
                    let mut scratch = Vec::new();
                    let (mut y, mut y2) = (vec![0.0f32; out.numel()], vec![0.0f32; out.numel()]);
                    let mut dx = vec![0.0f32; x.len()];
                    let mut dw = vec![0.0f32; w.len()];
                    let mut db = vec![0.0f32; b.len()];
                    // The forward's products alone, on patches unrolled once.
                    let mut cols = vec![0.0f32; geo.k() * geo.p()];
                    im2col(&geo, &x[..geo.in_image()], &mut cols);
                    let mut products = || {
                        for o in y2.chunks_mut(geo.out_image()) {
                            let (wm, pm) = (matrix(&w, geo.o, geo.k()), matrix(&cols, geo.k(), geo.p()));
                            gemm(1.0, wm, pm, 0.0, matrix_mut(o, geo.o, geo.p()));
                        }
                    };
                    let mut square = || gemm(1.0, m.view(), m.view(), 0.0, cm.view_mut());
                    let mut fwd = || conv2d(xt, wt, Some(&b), a, &mut scratch, &mut y);
                    let [t_sq, t_prod, t_fwd] = best(&mut [&mut square, &mut products, &mut fwd]);
                    let mut imp = || implicit_forward(&geo, &x, &w, &mut y);
                    let mut s1 = Vec::new();
                    let mut din = || conv2d_vjp_input::<f32, false>(&xs, wt, a, &g, &mut s1, &mut dx);
                    let mut s2 = Vec::new();
                    let mut dwt = || {
                        conv2d_vjp_weight::<f32, false>(xt, &ws, a, &g, &mut s2, &mut dw);
                        conv_vjp_bias::<f32, false>(&out, &g, &mut db);
                    };
                    // The weight gradient's products alone, on the same patches.
                    let mut partial = vec![0.0f32; w.len()];
                    let mut wproducts = || {
                        for (i, gi) in g.chunks(geo.out_image()).enumerate() {
                            let beta = if i == 0 { 0.0 } else { 1.0 };
                            let (gm, pm) = (matrix(gi, geo.o, geo.p()), matrix(&cols, geo.k(), geo.p()));
                            gemm(1.0, gm, pm.t(), beta, matrix_mut(&mut partial, geo.o, geo.k()));
                        }
                    };
                    let [t_imp, t_din, t_dw, t_wprod] =
                        best(&mut [&mut imp, &mut din, &mut dwt, &mut wproducts]);
                    // 2 · output elements · kernel volume per pass.
                    let flop = 2.0 * out.numel() as f64 * (wd[1] * wd[2] * wd[3]) as f64;
                    let gf = |t: f64| flop / t / 1e9;
                    println!(
                        "{threads} thread(s), {name}: gemm 512^3 {:.1} GFLOP/s; forward {:.3} ms ({:.1} GFLOP/s; its products \
                         alone {:.3} ms, {:.1}); implicit-gemm forward {:.3} ms ({:.1}); input grad {:.3} ms ({:.1}); \
                         weight+bias grad {:.3} ms ({:.1}; its products alone {:.3} ms, {:.1}); the three passes \
                         {:.1} GFLOP/s",
                        2.0 * (n * n * n) as f64 / t_sq / 1e9,
                        t_fwd * 1e3,
                        gf(t_fwd),
                        t_prod * 1e3,
                        gf(t_prod),
                        t_imp * 1e3,
                        gf(t_imp),
                        t_din * 1e3,
                        gf(t_din),
                        t_dw * 1e3,
                        gf(t_dw),
                        t_wprod * 1e3,
                        gf(t_wprod),
                        3.0 * flop / (t_fwd + t_din + t_dw) / 1e9,
                    );
                }
            });
        }
    }
}
