//! Row-major walks over an output shape with the matching offsets into strided inputs.

use crate::shape::MAX_RANK;

/// Calls `f(i, a, b)` for every output element `i` in row-major order, where `a` and `b` are
/// offsets into two inputs laid out with strides `sa` and `sb` (0 on a broadcast axis).
#[inline]
pub(crate) fn walk2(
    dims: &[usize],
    sa: &[usize; MAX_RANK],
    sb: &[usize; MAX_RANK],
    mut f: impl FnMut(usize, usize, usize),
) {
    let rank = dims.len();
    if dims.contains(&0) {
        return;
    }
    if rank == 0 {
        f(0, 0, 0);
        return;
    }
    let last = rank - 1;
    let (len, la, lb) = (dims[last], sa[last], sb[last]);
    let mut index = [0usize; MAX_RANK];
    let (mut oa, mut ob, mut i) = (0usize, 0usize, 0usize);
    loop {
        let (mut pa, mut pb) = (oa, ob);
        for _ in 0..len {
            f(i, pa, pb);
            i += 1;
            pa += la;
            pb += lb;
        }
        // Advance the odometer over the outer axes.
        let mut axis = last;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            oa += sa[axis];
            ob += sb[axis];
            if index[axis] < dims[axis] {
                break;
            }
            oa -= sa[axis] * dims[axis];
            ob -= sb[axis] * dims[axis];
            index[axis] = 0;
        }
    }
}

/// Calls `f(i, [a, b, c])` for every output element `i` in row-major order, where `a`, `b`
/// and `c` are offsets into three inputs laid out with strides `s[0]`, `s[1]`, `s[2]` (0 on a
/// broadcast axis): [`walk2`] for a three-input op.
#[inline]
pub(crate) fn walk3(
    dims: &[usize],
    s: [&[usize; MAX_RANK]; 3],
    mut f: impl FnMut(usize, [usize; 3]),
) {
    let rank = dims.len();
    if dims.contains(&0) {
        return;
    }
    if rank == 0 {
        f(0, [0; 3]);
        return;
    }
    let last = rank - 1;
    let step = [s[0][last], s[1][last], s[2][last]];
    let mut index = [0usize; MAX_RANK];
    let (mut at, mut i) = ([0usize; 3], 0usize);
    loop {
        let mut p = at;
        for _ in 0..dims[last] {
            f(i, p);
            i += 1;
            for (p, step) in p.iter_mut().zip(step) {
                *p += step;
            }
        }
        let mut axis = last;
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            for (at, s) in at.iter_mut().zip(s) {
                *at += s[axis];
            }
            if index[axis] < dims[axis] {
                break;
            }
            for (at, s) in at.iter_mut().zip(s) {
                *at -= s[axis] * dims[axis];
            }
            index[axis] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_a_transposed_matrix() {
        // A [2, 3] output read from a [3, 2] input: input strides (1, 2) in output order.
        let mut sa = [0; MAX_RANK];
        sa[0] = 1;
        sa[1] = 2;
        let sb = [0; MAX_RANK];
        let mut seen = Vec::new();
        walk2(&[2, 3], &sa, &sb, |i, a, _| seen.push((i, a)));
        assert_eq!(seen, vec![(0, 0), (1, 2), (2, 4), (3, 1), (4, 3), (5, 5)]);
    }

    #[test]
    fn empty_shapes_are_not_walked() {
        let s = [0; MAX_RANK];
        let mut n = 0;
        walk2(&[2, 0, 3], &s, &s, |_, _, _| n += 1);
        assert_eq!(n, 0);
    }
}
