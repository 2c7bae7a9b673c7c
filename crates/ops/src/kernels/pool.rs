//! Pooling over the last two axes of a `[N, C, H, W]` (or `[C, H, W]`) array, each plane on its
//! own: `max_pool2d`, `avg_pool2d` and `adaptive_avg_pool2d`, with PyTorch's rules
//! (`torch.nn.functional.max_pool2d` and friends, `ceil_mode=False`, dilation 1).
//!
//! - Max pooling reads the padding as -∞, so it never wins. The window is scanned row by row and
//!   an element replaces the maximum when it is greater, or NaN: the first of equal maxima wins
//!   and, as in PyTorch, the last NaN. A window of -∞ only keeps its first element. The
//!   gradient goes whole to that element.
//! - Average pooling divides by the window's size, padding included (`count_include_pad`,
//!   PyTorch's default) or by the number of input elements it covers.
//! - Adaptive average pooling splits each axis of length `L` into `S` windows, window `i`
//!   running from `⌊i·L/S⌋` to `⌈(i+1)·L/S⌉` (they may overlap).
//!
//! Each plane is one task and its output (or input gradient) is written by that task in a fixed
//! order, so the results are bit-identical for any thread count. Nothing is allocated.

use rayon::prelude::*;

use crate::{Error, Float, Result, Shape, TensorRef};

const MAX_POOL2D: &str = "max_pool2d";
const AVG_POOL2D: &str = "avg_pool2d";
const ADAPTIVE_AVG_POOL2D: &str = "adaptive_avg_pool2d";

/// Below this many elements read, the planes go one after another on the calling thread.
const PARALLEL_MIN_READS: usize = 1 << 16;

/// The arguments of `max_pool2d` and `avg_pool2d`; each pair is (height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dArgs {
    /// The window's size (at least 1).
    pub kernel: [usize; 2],
    /// The step between windows (at least 1; PyTorch's default is the kernel size).
    pub stride: [usize; 2],
    /// The padding before and after each axis (at most half the kernel, as PyTorch requires).
    pub padding: [usize; 2],
    /// Whether an average divides by the whole window, padding included (PyTorch's default,
    /// `true`), or by the input elements it covers. Max pooling ignores it.
    pub count_include_pad: bool,
}

impl Pool2dArgs {
    /// PyTorch's defaults for a `kernel`: stride equal to it, no padding, padding counted.
    pub fn new(kernel: [usize; 2]) -> Pool2dArgs {
        Pool2dArgs {
            kernel,
            stride: kernel,
            padding: [0, 0],
            count_include_pad: true,
        }
    }
}

/// The planes, their size, and the output plane's size, checked.
#[derive(Debug, Clone, Copy)]
struct Planes {
    count: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Planes {
    /// The planes of `x` (rank 3 or 4, neither spatial axis empty) pooled to `oh × ow`.
    fn of(op: &'static str, x: &Shape) -> Result<(usize, usize, usize)> {
        let d = x.dims();
        if !(3..=4).contains(&d.len()) {
            return Err(Error::WrongRank {
                op,
                expected: "3 or 4 ([C, H, W] or [N, C, H, W])",
                shape: *x,
            });
        }
        let (h, w) = (d[d.len() - 2], d[d.len() - 1]);
        if h == 0 || w == 0 {
            return Err(Error::EmptyBatch { op, shape: *x });
        }
        Ok((d[..d.len() - 2].iter().product(), h, w))
    }

    fn windows(op: &'static str, x: &Shape, args: &Pool2dArgs) -> Result<Planes> {
        let (count, h, w) = Planes::of(op, x)?;
        let invalid = |argument: &'static str, value: usize, requirement: String| {
            Err(Error::InvalidArgument {
                op,
                argument,
                value: value as f64,
                requirement,
            })
        };
        let mut out = [0usize; 2];
        for (axis, len) in [h, w].into_iter().enumerate() {
            let (k, s, p) = (args.kernel[axis], args.stride[axis], args.padding[axis]);
            if k == 0 {
                return invalid("kernel", k, "it must be at least 1".to_string());
            }
            if s == 0 {
                return invalid("stride", s, "it must be at least 1".to_string());
            }
            if p > k / 2 {
                return invalid(
                    "padding",
                    p,
                    format!("it must be at most half the kernel size {k}"),
                );
            }
            // p ≤ k/2, so 2p + len cannot overflow where k did not.
            if len + 2 * p < k {
                return invalid(
                    "kernel",
                    k,
                    format!(
                        "the window is larger than the input {x} padded by {p} along spatial axis {axis}"
                    ),
                );
            }
            out[axis] = (len + 2 * p - k) / s + 1;
        }
        Ok(Planes {
            count,
            h,
            w,
            oh: out[0],
            ow: out[1],
        })
    }

    fn adaptive(x: &Shape, size: [usize; 2]) -> Result<Planes> {
        let (count, h, w) = Planes::of(ADAPTIVE_AVG_POOL2D, x)?;
        if let Some(&s) = size.iter().find(|&&s| s == 0) {
            return Err(Error::InvalidArgument {
                op: ADAPTIVE_AVG_POOL2D,
                argument: "output size",
                value: s as f64,
                requirement: "each output axis must have length at least 1".to_string(),
            });
        }
        Ok(Planes {
            count,
            h,
            w,
            oh: size[0],
            ow: size[1],
        })
    }

    fn out_shape(&self, x: &Shape) -> Result<Shape> {
        let d = x.dims();
        let mut dims = [0usize; 4];
        let r = d.len();
        dims[..r - 2].copy_from_slice(&d[..r - 2]);
        dims[r - 2] = self.oh;
        dims[r - 1] = self.ow;
        Shape::new(&dims[..r])
    }

    fn parallel(&self, reads: usize) -> bool {
        self.count > 1 && self.count.saturating_mul(reads) >= PARALLEL_MIN_READS
    }
}

/// Runs `f(plane, chunk)` on each `len`-element chunk of `out`, on rayon's threads when
/// `parallel`.
fn each_plane<E: Float>(
    parallel: bool,
    out: &mut [E],
    len: usize,
    f: impl Fn(usize, &mut [E]) + Sync + Send,
) {
    if len == 0 {
        return;
    }
    if parallel {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        for (i, c) in out.chunks_mut(len).enumerate() {
            f(i, c);
        }
    }
}

/// Window `o` of a padded axis: `(first, end)` of the input positions it covers, and its size
/// counting the padding (`count_include_pad`).
#[inline]
fn window(o: usize, k: usize, s: usize, p: usize, len: usize) -> (usize, usize, usize) {
    let start = o * s;
    let end = (start + k).min(len + 2 * p);
    (
        start.saturating_sub(p),
        end.saturating_sub(p).min(len),
        end - start,
    )
}

/// An adaptive window: `⌊o·len/size⌋ .. ⌈(o+1)·len/size⌉`.
#[inline]
fn adaptive_window(o: usize, size: usize, len: usize) -> (usize, usize) {
    (o * len / size, ((o + 1) * len).div_ceil(size))
}

/// The output shape of `max_pool2d`: `[.., OH, OW]`, `OH = (H + 2·pad - kernel) / stride + 1`.
///
/// ```
/// use wengert_ops::kernels::pool::{Pool2dArgs, max_pool2d_shape};
/// use wengert_ops::Shape;
/// let x = Shape::new(&[64, 32, 28, 28]).unwrap();
/// let y = max_pool2d_shape(&x, Pool2dArgs::new([2, 2])).unwrap();
/// assert_eq!(y.dims(), &[64, 32, 14, 14]);
/// ```
pub fn max_pool2d_shape(x: &Shape, args: Pool2dArgs) -> Result<Shape> {
    Planes::windows(MAX_POOL2D, x, &args)?.out_shape(x)
}

/// The output shape of `avg_pool2d`, as [`max_pool2d_shape`].
pub fn avg_pool2d_shape(x: &Shape, args: Pool2dArgs) -> Result<Shape> {
    Planes::windows(AVG_POOL2D, x, &args)?.out_shape(x)
}

/// The output shape of `adaptive_avg_pool2d`: `[.., size[0], size[1]]`.
pub fn adaptive_avg_pool2d_shape(x: &Shape, size: [usize; 2]) -> Result<Shape> {
    Planes::adaptive(x, size)?.out_shape(x)
}

/// The position within its plane of window `(y, z)`'s maximum, by PyTorch's scan.
#[inline]
fn argmax<E: Float>(plane: &[E], pl: &Planes, args: &Pool2dArgs, y: usize, z: usize) -> usize {
    let (r0, r1, _) = window(y, args.kernel[0], args.stride[0], args.padding[0], pl.h);
    let (c0, c1, _) = window(z, args.kernel[1], args.stride[1], args.padding[1], pl.w);
    let mut best = (r0 * pl.w + c0, E::neg_infinity());
    for r in r0..r1 {
        for (c, &v) in plane[r * pl.w + c0..r * pl.w + c1].iter().enumerate() {
            if v > best.1 || v.is_nan() {
                best = (r * pl.w + c0 + c, v);
            }
        }
    }
    best.0
}

/// Whether max pooling's scan replaces its best `best` by the next element `v`: when `v` is
/// greater, or NaN (NaN propagates, as in PyTorch). Non-short-circuiting, so that callers
/// compile it to selects.
#[inline(always)]
fn takes<E: Float>(best: E, v: E) -> bool {
    (v > best) | v.is_nan()
}

/// Whether the windows are the 2×2, stride-2, unpadded ones of a CNN's pools.
fn halves(args: &Pool2dArgs) -> bool {
    args.kernel == [2, 2] && args.stride == [2, 2] && args.padding == [0, 0]
}

/// `dst` = the maximum of each 2×2 window of `plane` (`h × w`), by the same scan as
/// [`argmax`], so the same element's bits: the values alone, without positions, row by row.
fn max_of_halving_windows<E: Float>(plane: &[E], w: usize, dst: &mut [E], ow: usize) {
    for (y, out_row) in dst.chunks_exact_mut(ow).enumerate() {
        let top = &plane[2 * y * w..2 * y * w + 2 * ow];
        let bottom = &plane[(2 * y + 1) * w..(2 * y + 1) * w + 2 * ow];
        for ((d, t), b) in out_row
            .iter_mut()
            .zip(top.chunks_exact(2))
            .zip(bottom.chunks_exact(2))
        {
            *d = halving_window_max(t, b);
        }
    }
}

/// The value [`argmax`]'s scan takes from a 2×2 window (`top` row, then `bottom` row), by
/// selects. The scan starts from -inf: the first element is taken unless it is -inf, and then
/// the value is the same.
#[inline(always)]
fn halving_window_max<E: Float>(top: &[E], bottom: &[E]) -> E {
    let pick = |best: E, v: E| if takes(best, v) { v } else { best };
    pick(pick(pick(top[0], top[1]), bottom[0]), bottom[1])
}

/// Which of a 2×2 window's elements (`top` row, then `bottom` row: 0..4) [`argmax`]'s scan
/// takes, found without branching on the data (on real data a branch per comparison is
/// mispredicted about half the time; a chain of selects on the position was no faster: 7.0 ms
/// against 3.3 for the VJP at W6's first pool, 1 thread). The scan replaces its best only by a
/// greater element or a NaN, so it ends on the last NaN if there is one, and otherwise on the
/// first element equal to the maximum.
#[inline(always)]
fn halving_window_argmax<E: Float>(top: &[E], bottom: &[E]) -> usize {
    let window = [top[0], top[1], bottom[0], bottom[1]];
    let m = halving_window_max(top, bottom);
    let (eq, nan) = window
        .iter()
        .enumerate()
        .fold((0u32, 0u32), |(eq, nan), (i, &v)| {
            (
                eq | u32::from(v == m) << i,
                nan | u32::from(v.is_nan()) << i,
            )
        });
    let k = if nan != 0 {
        31 - nan.leading_zeros()
    } else {
        eq.trailing_zeros()
    };
    k as usize
}

/// Adds each 2×2 window's gradient `g` (`oh × ow`, row by row) into `dst` (the plane, `w`
/// wide) at the element [`argmax`]'s scan takes ([`halving_window_argmax`]).
fn halving_windows_vjp<E: Float>(plane: &[E], w: usize, g: &[E], ow: usize, dst: &mut [E]) {
    for (y, g_row) in g.chunks_exact(ow).enumerate() {
        let top = &plane[2 * y * w..2 * y * w + 2 * ow];
        let bottom = &plane[(2 * y + 1) * w..(2 * y + 1) * w + 2 * ow];
        let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for (z, ((t, b), &gz)) in windows.zip(g_row).enumerate() {
            let k = halving_window_argmax(t, b);
            dst[2 * y * w + 2 * z + (k >> 1) * w + (k & 1)] += gz;
        }
    }
}

/// Calls `f(j, at)` for each window `j` of a plane, in output order, with the position of its
/// maximum (as [`argmax`]; 2×2 stride-2 unpadded windows by [`halving_window_argmax`]).
#[inline]
fn each_argmax<E: Float>(
    plane: &[E],
    pl: &Planes,
    args: &Pool2dArgs,
    mut f: impl FnMut(usize, usize),
) {
    if halves(args) {
        let w = pl.w;
        for y in 0..pl.oh {
            for z in 0..pl.ow {
                let first = 2 * y * w + 2 * z;
                let k = halving_window_argmax(&plane[first..first + 2], &plane[first + w..]);
                f(y * pl.ow + z, first + (k >> 1) * w + (k & 1));
            }
        }
    } else {
        for y in 0..pl.oh {
            for z in 0..pl.ow {
                f(y * pl.ow + z, argmax(plane, pl, args, y, z));
            }
        }
    }
}

/// `out` = the maximum of each window (shapes as [`max_pool2d_shape`] checked).
pub fn max_pool2d<E: Float>(x: TensorRef<'_, E>, args: Pool2dArgs, out: &mut [E]) {
    let Ok(pl) = Planes::windows(MAX_POOL2D, x.shape(), &args) else {
        return;
    };
    let data = x.data();
    let parallel = pl.parallel(pl.oh * pl.ow * args.kernel[0] * args.kernel[1]);
    each_plane(
        parallel,
        &mut out[..pl.count * pl.oh * pl.ow],
        pl.oh * pl.ow,
        |i, dst| {
            let plane = &data[i * pl.h * pl.w..(i + 1) * pl.h * pl.w];
            if halves(&args) {
                max_of_halving_windows(plane, pl.w, dst, pl.ow);
            } else {
                each_argmax(plane, &pl, &args, |j, at| dst[j] = plane[at]);
            }
        },
    );
}

/// y = max_pool2d(x): each window's dy goes to the element [`max_pool2d`] took, found again
/// from `x`; windows that share an element add up. Adds into `gi` when `ACC`, overwrites it
/// otherwise.
pub fn max_pool2d_vjp<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    args: Pool2dArgs,
    g: &[E],
    gi: &mut [E],
) {
    let Ok(pl) = Planes::windows(MAX_POOL2D, x.shape(), &args) else {
        return;
    };
    let data = x.data();
    let (plane_in, plane_out) = (pl.h * pl.w, pl.oh * pl.ow);
    let parallel = pl.parallel(plane_out * args.kernel[0] * args.kernel[1]);
    each_plane(
        parallel,
        &mut gi[..pl.count * plane_in],
        plane_in,
        |i, dst| {
            let plane = &data[i * plane_in..(i + 1) * plane_in];
            let gp = &g[i * plane_out..(i + 1) * plane_out];
            if !ACC {
                dst.fill(E::zero());
            }
            if halves(&args) {
                halving_windows_vjp(plane, pl.w, gp, pl.ow, dst);
            } else {
                each_argmax(plane, &pl, &args, |j, at| dst[at] += gp[j]);
            }
        },
    );
}

/// `out` = `u` at the element of each window [`max_pool2d`] of `x` takes (`u` of `x`'s shape,
/// the output of the pooled shape): [`max_pool2d_vjp`]'s adjoint, a gather where it scatters.
/// Adds into `out` when `ACC`, overwrites it otherwise.
pub fn max_pool2d_select<E: Float, const ACC: bool>(
    x: TensorRef<'_, E>,
    args: Pool2dArgs,
    u: &[E],
    out: &mut [E],
) {
    let Ok(pl) = Planes::windows(MAX_POOL2D, x.shape(), &args) else {
        return;
    };
    let data = x.data();
    let (plane_in, plane_out) = (pl.h * pl.w, pl.oh * pl.ow);
    let parallel = pl.parallel(plane_out * args.kernel[0] * args.kernel[1]);
    each_plane(
        parallel,
        &mut out[..pl.count * plane_out],
        plane_out,
        |i, dst| {
            let plane = &data[i * plane_in..(i + 1) * plane_in];
            let up = &u[i * plane_in..(i + 1) * plane_in];
            each_argmax(plane, &pl, &args, |j, at| {
                if ACC {
                    dst[j] += up[at];
                } else {
                    dst[j] = up[at];
                }
            });
        },
    );
}

/// The divisor of window `(r, c)` of an average pool.
#[inline]
fn divisor(args: &Pool2dArgs, rows: (usize, usize, usize), cols: (usize, usize, usize)) -> usize {
    if args.count_include_pad {
        rows.2 * cols.2
    } else {
        (rows.1 - rows.0) * (cols.1 - cols.0)
    }
}

/// `out` = the mean of each window (shapes as [`avg_pool2d_shape`] checked).
pub fn avg_pool2d<E: Float>(x: TensorRef<'_, E>, args: Pool2dArgs, out: &mut [E]) {
    let Ok(pl) = Planes::windows(AVG_POOL2D, x.shape(), &args) else {
        return;
    };
    let data = x.data();
    let parallel = pl.parallel(pl.oh * pl.ow * args.kernel[0] * args.kernel[1]);
    each_plane(
        parallel,
        &mut out[..pl.count * pl.oh * pl.ow],
        pl.oh * pl.ow,
        |i, dst| {
            let plane = &data[i * pl.h * pl.w..(i + 1) * pl.h * pl.w];
            for (j, d) in dst.iter_mut().enumerate() {
                let rows = window(
                    j / pl.ow,
                    args.kernel[0],
                    args.stride[0],
                    args.padding[0],
                    pl.h,
                );
                let cols = window(
                    j % pl.ow,
                    args.kernel[1],
                    args.stride[1],
                    args.padding[1],
                    pl.w,
                );
                let mut sum = E::zero();
                for r in rows.0..rows.1 {
                    for &v in &plane[r * pl.w + cols.0..r * pl.w + cols.1] {
                        sum += v;
                    }
                }
                *d = sum / E::from_usize(divisor(&args, rows, cols));
            }
        },
    );
}

/// y = avg_pool2d(x): each window's dy / divisor is added to every input element it covers.
/// Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn avg_pool2d_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    args: Pool2dArgs,
    g: &[E],
    gi: &mut [E],
) {
    let Ok(pl) = Planes::windows(AVG_POOL2D, x, &args) else {
        return;
    };
    let (plane_in, plane_out) = (pl.h * pl.w, pl.oh * pl.ow);
    let parallel = pl.parallel(plane_out * args.kernel[0] * args.kernel[1]);
    each_plane(
        parallel,
        &mut gi[..pl.count * plane_in],
        plane_in,
        |i, dst| {
            if !ACC {
                dst.fill(E::zero());
            }
            for (j, &gj) in g[i * plane_out..(i + 1) * plane_out].iter().enumerate() {
                let rows = window(
                    j / pl.ow,
                    args.kernel[0],
                    args.stride[0],
                    args.padding[0],
                    pl.h,
                );
                let cols = window(
                    j % pl.ow,
                    args.kernel[1],
                    args.stride[1],
                    args.padding[1],
                    pl.w,
                );
                let share = gj / E::from_usize(divisor(&args, rows, cols));
                for r in rows.0..rows.1 {
                    for d in &mut dst[r * pl.w + cols.0..r * pl.w + cols.1] {
                        *d += share;
                    }
                }
            }
        },
    );
}

/// `out` = the mean of each adaptive window (shapes as [`adaptive_avg_pool2d_shape`]
/// checked); `size` `[1, 1]` is global average pooling.
pub fn adaptive_avg_pool2d<E: Float>(x: TensorRef<'_, E>, size: [usize; 2], out: &mut [E]) {
    let Ok(pl) = Planes::adaptive(x.shape(), size) else {
        return;
    };
    let data = x.data();
    let parallel = pl.parallel(pl.h * pl.w);
    each_plane(
        parallel,
        &mut out[..pl.count * pl.oh * pl.ow],
        pl.oh * pl.ow,
        |i, dst| {
            let plane = &data[i * pl.h * pl.w..(i + 1) * pl.h * pl.w];
            for (j, d) in dst.iter_mut().enumerate() {
                let (r0, r1) = adaptive_window(j / pl.ow, pl.oh, pl.h);
                let (c0, c1) = adaptive_window(j % pl.ow, pl.ow, pl.w);
                let mut sum = E::zero();
                for r in r0..r1 {
                    for &v in &plane[r * pl.w + c0..r * pl.w + c1] {
                        sum += v;
                    }
                }
                *d = sum / E::from_usize((r1 - r0) * (c1 - c0));
            }
        },
    );
}

/// y = adaptive_avg_pool2d(x): each window's dy / its size is added to every element it
/// covers. Adds into `gi` when `ACC`, overwrites it otherwise.
pub fn adaptive_avg_pool2d_vjp<E: Float, const ACC: bool>(
    x: &Shape,
    size: [usize; 2],
    g: &[E],
    gi: &mut [E],
) {
    let Ok(pl) = Planes::adaptive(x, size) else {
        return;
    };
    let (plane_in, plane_out) = (pl.h * pl.w, pl.oh * pl.ow);
    each_plane(
        pl.parallel(plane_in),
        &mut gi[..pl.count * plane_in],
        plane_in,
        |i, dst| {
            if !ACC {
                dst.fill(E::zero());
            }
            for (j, &gj) in g[i * plane_out..(i + 1) * plane_out].iter().enumerate() {
                let (r0, r1) = adaptive_window(j / pl.ow, pl.oh, pl.h);
                let (c0, c1) = adaptive_window(j % pl.ow, pl.ow, pl.w);
                let share = gj / E::from_usize((r1 - r0) * (c1 - c0));
                for r in r0..r1 {
                    for d in &mut dst[r * pl.w + c0..r * pl.w + c1] {
                        *d += share;
                    }
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::check::{FD_TOL, fd_error, values};
    use proptest::prelude::*;

    fn shape(d: &[usize]) -> Shape {
        Shape::new(d).unwrap()
    }

    fn args(k: usize, s: usize, p: usize, count_include_pad: bool) -> Pool2dArgs {
        Pool2dArgs {
            kernel: [k, k + 1],
            stride: [s, s],
            padding: [p, p],
            count_include_pad,
        }
    }

    #[test]
    fn the_halving_pools_fast_paths_take_the_general_scans_positions_and_values() {
        // Ties, NaNs and infinities, on planes of odd and even sides.
        let pick = [
            1.0,
            1.0,
            -2.0,
            f64::NAN,
            f64::NEG_INFINITY,
            3.0,
            3.0,
            f64::INFINITY,
            0.0,
        ];
        for (h, w) in [(2, 2), (4, 6), (5, 7), (7, 4), (1, 3)] {
            let dims = [2, h, w];
            let x: Vec<f64> = (0..2 * h * w)
                .map(|i| pick[(i * 7 + i / 3) % pick.len()])
                .collect();
            let halving = Pool2dArgs::new([2, 2]);
            let Ok(pl) = Planes::windows(MAX_POOL2D, &shape(&dims), &halving) else {
                assert!(h < 2, "{h}x{w}");
                continue;
            };
            for plane in x.chunks(h * w) {
                let mut fast = Vec::new();
                each_argmax(plane, &pl, &halving, |j, at| fast.push((j, at)));
                let general: Vec<(usize, usize)> = (0..pl.oh * pl.ow)
                    .map(|j| (j, argmax(plane, &pl, &halving, j / pl.ow, j % pl.ow)))
                    .collect();
                assert_eq!(fast, general, "{h}x{w}");
                let mut values = vec![0.0; pl.oh * pl.ow];
                max_of_halving_windows(plane, w, &mut values, pl.ow);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let taken: Vec<f64> = general.iter().map(|&(_, at)| plane[at]).collect();
                assert_eq!(bits(&values), bits(&taken), "{h}x{w}");
            }
        }
    }

    /// The halving windows' gradient path against the general scatter at the general scan's
    /// positions, bit for bit: overwriting and accumulating into a gradient holding -0s, with
    /// -0 and +0 among the incoming gradients, on planes of odd and even sides.
    #[test]
    fn the_halving_pools_gradient_lands_where_the_general_scatter_puts_it() {
        let pick = [
            1.0,
            f64::NAN,
            -2.0,
            1.0,
            f64::NEG_INFINITY,
            3.0,
            0.5,
            3.0,
            -0.0,
        ];
        for (h, w) in [(2, 2), (4, 6), (5, 7), (7, 4), (3, 3)] {
            let dims = [3, h, w];
            let n = 3 * h * w;
            let x: Vec<f64> = (0..n).map(|i| pick[(i * 5 + i / 4) % pick.len()]).collect();
            let halving = Pool2dArgs::new([2, 2]);
            let xs = shape(&dims);
            let pl = Planes::windows(MAX_POOL2D, &xs, &halving).unwrap();
            let outs = pl.oh * pl.ow;
            let g: Vec<f64> = (0..3 * outs)
                .map(|j| [0.25, -0.0, 0.0, -1.5][j % 4])
                .collect();
            let base: Vec<f64> = (0..n)
                .map(|i| if i % 3 == 0 { -0.0 } else { 0.5 })
                .collect();
            for acc in [false, true] {
                let mut expected = if acc { base.clone() } else { vec![0.0; n] };
                for (i, plane) in x.chunks(h * w).enumerate() {
                    for j in 0..outs {
                        let at = argmax(plane, &pl, &halving, j / pl.ow, j % pl.ow);
                        expected[i * h * w + at] += g[i * outs + j];
                    }
                }
                let mut got = base.clone();
                let xt = TensorRef::trusted(&xs, &x);
                if acc {
                    max_pool2d_vjp::<f64, true>(xt, halving, &g, &mut got);
                } else {
                    max_pool2d_vjp::<f64, false>(xt, halving, &g, &mut got);
                }
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&expected), "{h}x{w}, acc {acc}");
            }
        }
    }

    /// Max and average pooling by the definition: the window's elements in signed coordinates,
    /// the padding skipped (max) or counted as zeros (average).
    fn naive(x: &[f64], dims: &[usize], a: &Pool2dArgs, out: &Shape) -> (Vec<f64>, Vec<f64>) {
        let r = dims.len();
        let (h, w) = (dims[r - 2] as isize, dims[r - 1] as isize);
        let (oh, ow) = (out.dims()[r - 2], out.dims()[r - 1]);
        let planes = out.numel() / (oh * ow);
        let (mut mx, mut av) = (Vec::new(), Vec::new());
        for i in 0..planes {
            for y in 0..oh {
                for z in 0..ow {
                    let (mut best, mut sum, mut inside) = (f64::NEG_INFINITY, 0.0, 0);
                    for ki in 0..a.kernel[0] {
                        for kj in 0..a.kernel[1] {
                            let iy = (y * a.stride[0] + ki) as isize - a.padding[0] as isize;
                            let ix = (z * a.stride[1] + kj) as isize - a.padding[1] as isize;
                            if iy >= 0 && ix >= 0 && iy < h && ix < w {
                                let v = x[i * (h * w) as usize + (iy * w + ix) as usize];
                                best = best.max(v);
                                sum += v;
                                inside += 1;
                            }
                        }
                    }
                    mx.push(best);
                    let d = if a.count_include_pad {
                        a.kernel[0] * a.kernel[1]
                    } else {
                        inside
                    };
                    av.push(sum / d as f64);
                }
            }
        }
        (mx, av)
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
    }

    /// Checks both pools of `x` against [`naive`] and their VJPs against finite differences.
    fn check(dims: &[usize], a: Pool2dArgs, seed: u64) -> f64 {
        let s = shape(dims);
        let out = max_pool2d_shape(&s, a).unwrap();
        assert_eq!(out, avg_pool2d_shape(&s, a).unwrap());
        let x = values(s.numel(), seed);
        let maxf = |x: &[f64]| {
            let mut y = vec![f64::NAN; out.numel()];
            max_pool2d(TensorRef::trusted(&s, x), a, &mut y);
            y
        };
        let avgf = |x: &[f64]| {
            let mut y = vec![f64::NAN; out.numel()];
            avg_pool2d(TensorRef::trusted(&s, x), a, &mut y);
            y
        };
        let (want_max, want_avg) = naive(&x, dims, &a, &out);
        assert!(close(&maxf(&x), &want_max), "{dims:?} {a:?}");
        assert!(close(&avgf(&x), &want_avg), "{dims:?} {a:?}");
        let g = values(out.numel(), seed + 1);
        let dmax = fd_error(
            &maxf,
            &|x, g, gi, acc| {
                let xt = TensorRef::trusted(&s, x);
                if acc {
                    max_pool2d_vjp::<f64, true>(xt, a, g, gi);
                } else {
                    max_pool2d_vjp::<f64, false>(xt, a, g, gi);
                }
            },
            &x,
            &g,
        );
        let davg = fd_error(
            &avgf,
            &|_, g, gi, acc| {
                if acc {
                    avg_pool2d_vjp::<f64, true>(&s, a, g, gi);
                } else {
                    avg_pool2d_vjp::<f64, false>(&s, a, g, gi);
                }
            },
            &x,
            &g,
        );
        dmax.max(davg)
    }

    #[test]
    fn pools_match_their_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for (dims, a) in [
            (&[2usize, 3, 6, 7][..], Pool2dArgs::new([2, 2])),
            (&[2, 3, 6, 7], args(2, 1, 1, true)),
            (&[2, 3, 6, 7], args(2, 1, 1, false)),
            (&[1, 2, 5, 5], args(3, 2, 1, true)),
            (&[1, 2, 5, 5], args(3, 2, 1, false)),
            (&[3, 4, 4], args(1, 1, 0, true)),
            (&[0, 3, 4, 4], Pool2dArgs::new([2, 2])),
            (&[1, 1, 1, 2], args(1, 1, 0, true)),
            (&[1, 1, 3, 3], args(4, 2, 2, false)),
        ] {
            let err = check(dims, a, 7);
            assert!(err < FD_TOL, "{dims:?} {a:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst pools: {worst:e}");
    }

    #[test]
    fn max_pool_follows_pytorch_on_ties_nan_and_infinity() {
        let s = shape(&[1, 1, 2, 4]);
        // Two windows of 2×2: ties at 5 (first wins), a NaN after another NaN (the last wins).
        let x = [5.0, 1.0, f64::NAN, 2.0, 0.0, 5.0, 3.0, f64::NAN];
        let a = Pool2dArgs::new([2, 2]);
        let mut y = [0.0; 2];
        max_pool2d(TensorRef::trusted(&s, &x), a, &mut y);
        assert_eq!(y[0], 5.0);
        assert!(y[1].is_nan());
        let mut gi = [f64::NAN; 8];
        max_pool2d_vjp::<f64, false>(TensorRef::trusted(&s, &x), a, &[1.0, 2.0], &mut gi);
        assert_eq!(gi, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]);
        // A window of -∞ takes its first element; padding (read as -∞) never wins.
        let x = [f64::NEG_INFINITY; 8];
        let mut gi = [0.0; 8];
        max_pool2d_vjp::<f64, true>(TensorRef::trusted(&s, &x), a, &[1.0, 2.0], &mut gi);
        assert_eq!(gi, [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let s = shape(&[1, 1, 1, 2]);
        let a = Pool2dArgs {
            kernel: [1, 2],
            stride: [1, 1],
            padding: [0, 1],
            count_include_pad: true,
        };
        let mut y = [0.0; 3];
        max_pool2d(TensorRef::trusted(&s, &[-3.0, -4.0]), a, &mut y);
        assert_eq!(y, [-3.0, -3.0, -4.0]);
    }

    #[test]
    fn average_pools_by_hand() {
        // x = 1..9 in 3×3, kernel 2, stride 1, padding 1: the corner window holds only x[0].
        let s = shape(&[1, 1, 3, 3]);
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        let mut a = Pool2dArgs {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [1, 1],
            count_include_pad: true,
        };
        let mut y = [0.0; 4];
        avg_pool2d(TensorRef::trusted(&s, &x), a, &mut y);
        assert_eq!(
            y,
            [
                0.25,
                (2.0 + 3.0) / 4.0,
                (4.0 + 7.0) / 4.0,
                (5.0 + 6.0 + 8.0 + 9.0) / 4.0
            ]
        );
        a.count_include_pad = false;
        avg_pool2d(TensorRef::trusted(&s, &x), a, &mut y);
        assert_eq!(y, [1.0, 2.5, 5.5, 7.0]);
        // Adaptive: 5 → 3 takes rows 0..2, 1..4, 3..5 (overlapping); 1×1 is the global mean.
        let s = shape(&[1, 5, 1]);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let mut y = [0.0; 3];
        adaptive_avg_pool2d(TensorRef::trusted(&s, &x), [3, 1], &mut y);
        assert_eq!(y, [1.5, 3.0, 4.5]);
        let mut gi = [f64::NAN; 5];
        adaptive_avg_pool2d_vjp::<f64, false>(&s, [3, 1], &[2.0, 3.0, 4.0], &mut gi);
        assert_eq!(gi, [1.0, 1.0 + 1.0, 1.0, 1.0 + 2.0, 2.0]);
        let mut y = [0.0];
        adaptive_avg_pool2d(TensorRef::trusted(&s, &x), [1, 1], &mut y);
        assert_eq!(y, [3.0]);
    }

    fn adaptive_fd(dims: &[usize], size: [usize; 2], seed: u64) -> f64 {
        let s = shape(dims);
        let out = adaptive_avg_pool2d_shape(&s, size).unwrap();
        let x = values(s.numel(), seed);
        let f = |x: &[f64]| {
            let mut y = vec![f64::NAN; out.numel()];
            adaptive_avg_pool2d(TensorRef::trusted(&s, x), size, &mut y);
            y
        };
        // Against the definition: the mean over ⌊i·L/S⌋..⌈(i+1)·L/S⌉ on both axes.
        let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        let y = f(&x);
        for (j, &v) in y.iter().enumerate() {
            let (p, o) = (j / (size[0] * size[1]), j % (size[0] * size[1]));
            let (oy, oz) = (o / size[1], o % size[1]);
            let rows = (oy * h / size[0])..((oy + 1) * h).div_ceil(size[0]);
            let cols = (oz * w / size[1])..((oz + 1) * w).div_ceil(size[1]);
            let mut vals = Vec::new();
            for r in rows {
                for c in cols.clone() {
                    vals.push(x[p * h * w + r * w + c]);
                }
            }
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            assert!((mean - v).abs() < 1e-12, "{dims:?} {size:?} at {j}");
        }
        let g = values(out.numel(), seed + 1);
        fd_error(
            &f,
            &|_, g, gi, acc| {
                if acc {
                    adaptive_avg_pool2d_vjp::<f64, true>(&s, size, g, gi);
                } else {
                    adaptive_avg_pool2d_vjp::<f64, false>(&s, size, g, gi);
                }
            },
            &x,
            &g,
        )
    }

    #[test]
    fn adaptive_pooling_matches_its_definition_and_finite_differences() {
        let mut worst = 0.0f64;
        for (dims, size) in [
            (&[2usize, 3, 7, 5][..], [1, 1]),
            (&[2, 3, 7, 5], [3, 2]),
            (&[1, 2, 4, 4], [4, 4]),
            (&[2, 3, 3], [5, 4]),
            (&[0, 3, 3, 3], [2, 2]),
        ] {
            let err = adaptive_fd(dims, size, 3);
            assert!(err < FD_TOL, "{dims:?} {size:?}: {err}");
            worst = worst.max(err);
        }
        eprintln!("fd worst adaptive pool: {worst:e}");
    }

    #[test]
    fn bad_shapes_and_arguments_are_errors_naming_them() {
        let x = shape(&[2, 3, 5, 5]);
        let invalid = |a: Pool2dArgs, name: &str| {
            let err = max_pool2d_shape(&x, a).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidArgument { op: MAX_POOL2D, argument, .. } if *argument == name),
                "{a:?}: {err}"
            );
        };
        invalid(Pool2dArgs::new([0, 2]), "kernel");
        invalid(Pool2dArgs::new([6, 2]), "kernel");
        invalid(
            Pool2dArgs {
                stride: [1, 0],
                ..Pool2dArgs::new([2, 2])
            },
            "stride",
        );
        invalid(
            Pool2dArgs {
                padding: [2, 0],
                ..Pool2dArgs::new([3, 3])
            },
            "padding",
        );
        let err = avg_pool2d_shape(&shape(&[5, 5]), Pool2dArgs::new([2, 2])).unwrap_err();
        assert!(
            matches!(err, Error::WrongRank { op: AVG_POOL2D, .. }),
            "{err}"
        );
        let err = avg_pool2d_shape(&shape(&[1, 2, 0, 5]), Pool2dArgs::new([1, 1])).unwrap_err();
        assert!(
            matches!(err, Error::EmptyBatch { op: AVG_POOL2D, .. }),
            "{err}"
        );
        let err = adaptive_avg_pool2d_shape(&x, [0, 1]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "adaptive_avg_pool2d: output size = 0 is invalid: each output axis must have length at least 1"
        );
    }

    #[test]
    fn results_are_bit_identical_for_any_thread_count() {
        let s = shape(&[4, 8, 32, 32]);
        let a = args(3, 2, 1, false);
        let out = max_pool2d_shape(&s, a).unwrap();
        let x = values(s.numel(), 1);
        let g = values(out.numel(), 2);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let xt = TensorRef::trusted(&s, &x);
                let mut y = vec![0.0; 2 * out.numel()];
                max_pool2d(xt, a, &mut y[..out.numel()]);
                avg_pool2d(xt, a, &mut y[out.numel()..]);
                let mut gi = vec![0.0; 2 * x.len()];
                max_pool2d_vjp::<f64, false>(xt, a, &g, &mut gi[..x.len()]);
                avg_pool2d_vjp::<f64, false>(&s, a, &g, &mut gi[x.len()..]);
                y.iter().chain(&gi).map(|v| v.to_bits()).collect::<Vec<_>>()
            })
        };
        assert_eq!(run(1), run(2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn random_pools(
            n in 0usize..3, c in 1usize..3, h in 1usize..7, w in 1usize..7,
            k in 1usize..4, s in 1usize..4, p in 0usize..2, count_include_pad in proptest::bool::ANY,
            seed in 0u64..1000,
        ) {
            let a = args(k, s, p.min(k / 2), count_include_pad);
            let dims = [n, c, h, w];
            prop_assume!(max_pool2d_shape(&shape(&dims), a).is_ok());
            prop_assert!(check(&dims, a, seed) < FD_TOL);
        }

        #[test]
        fn random_adaptive_pools(
            n in 0usize..3, h in 1usize..7, w in 1usize..7, oh in 1usize..8, ow in 1usize..8,
            seed in 0u64..1000,
        ) {
            prop_assert!(adaptive_fd(&[n, 2, h, w], [oh, ow], seed) < FD_TOL);
        }
    }
}
