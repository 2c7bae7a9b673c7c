//! The recorded VJPs of the reductions, losses and indexing ops at the points finite
//! differences cannot judge (zeros of a product, ties, ignored labels) and against closed-form
//! Hessians, and a third derivative through the indexing ops' adjoints.

use ndarray::{Array2, ArrayD, IxDyn, array};
use wengert_tape::{CrossEntropyOptions, Reduction, Result, Tape, Targets};

fn assert_close(h: &Array2<f64>, expected: &Array2<f64>, tol: f64) {
    assert!(
        h.iter()
            .zip(expected)
            .all(|(&h, &e)| (h - e).abs() <= tol * (1.0 + e.abs())),
        "{h} vs {expected}"
    );
}

/// The Hessian of `Π x` over one lane: `H_ij = Π_{k≠i,j} x_k` off the diagonal, 0 on it.
fn prod_hessian(x: &[f64]) -> Array2<f64> {
    let n = x.len();
    Array2::from_shape_fn((n, n), |(i, j)| {
        if i == j {
            0.0
        } else {
            (0..n).filter(|&k| k != i && k != j).map(|k| x[k]).product()
        }
    })
}

#[test]
fn the_hessian_of_a_product_is_exact_with_no_zero_and_with_one() -> Result<()> {
    for xs in [
        [1.5, 2.0, -3.0, 0.5],
        [0.0, 2.0, -3.0, 0.5],
        [1.5, 2.0, 0.0, 0.5],
    ] {
        let mut tape = Tape::<f64>::new();
        let x = tape.parameter(ndarray::arr1(&xs))?;
        let y = tape.prod(x, None, false)?;
        let h = tape.hessian(y, x)?;
        assert_close(&h, &prod_hessian(&xs), 1e-14);
        // The first derivative is exact with any number of zeros.
        let two_zeros = tape.parameter(array![0.0, 2.0, 0.0])?;
        let p = tape.prod(two_zeros, Some(0), true)?;
        let p = tape.sum(p)?;
        let g = tape.record_grad(p, &[two_zeros])?[0];
        assert_eq!(tape.data(g)?, &[0.0, 0.0, 0.0]);
    }
    Ok(())
}

#[test]
fn the_hessian_of_logsumexp_is_diag_p_minus_p_p_transposed() -> Result<()> {
    let xs = [0.5, -1.0, 2.0];
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(ndarray::arr1(&xs))?;
    let y = tape.logsumexp(x, Some(0), false)?;
    let h = tape.hessian(y, x)?;
    let s: f64 = xs.iter().map(|v| v.exp()).sum();
    let p: Vec<f64> = xs.iter().map(|v| v.exp() / s).collect();
    let expected = Array2::from_shape_fn((3, 3), |(i, j)| {
        f64::from(u8::from(i == j)) * p[i] - p[i] * p[j]
    });
    assert_close(&h, &expected, 1e-14);
    Ok(())
}

#[test]
fn the_hessian_of_a_norm_is_the_projection_off_x_over_the_norm() -> Result<()> {
    let xs = [3.0, -4.0, 12.0];
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(ndarray::arr1(&xs))?;
    let y = tape.norm(x, None, false)?;
    let h = tape.hessian(y, x)?;
    let r = 13.0;
    let expected = Array2::from_shape_fn((3, 3), |(i, j)| {
        (f64::from(u8::from(i == j)) - xs[i] * xs[j] / (r * r)) / r
    });
    assert_close(&h, &expected, 1e-14);
    Ok(())
}

#[test]
fn the_hessian_of_a_variance_is_two_centring_over_n_minus_the_correction() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[1.0, 4.0, -2.0, 0.5]])?;
    let y = tape.var(x, Some(1), 1.0, false)?;
    let y = tape.sum(y)?;
    let h = tape.hessian(y, x)?;
    let expected = Array2::from_shape_fn((4, 4), |(i, j)| {
        2.0 * (f64::from(u8::from(i == j)) - 0.25) / 3.0
    });
    assert_close(&h, &expected, 1e-14);
    Ok(())
}

#[test]
fn extremes_split_ties_and_have_a_zero_hessian() -> Result<()> {
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![[1.0, 3.0, 3.0], [2.0, -1.0, 0.0]])?;
    let m = tape.amax(x, Some(1), false)?;
    let first = tape.max_dim(x, 1, true)?.0;
    let m = tape.sum(m)?;
    let first = tape.sum(first)?;
    let loss = tape.add(m, first)?;
    let g = tape.record_grad(loss, &[x])?[0];
    // amax shares the tie at 3 evenly; max_dim sends it all to the first.
    assert_eq!(tape.data(g)?, &[0.0, 1.5, 0.5, 2.0, 0.0, 0.0]);
    assert_eq!(tape.hessian(loss, x)?, Array2::<f64>::zeros((6, 6)));
    Ok(())
}

#[test]
fn ignored_labels_get_no_share_of_the_second_derivative() -> Result<()> {
    // Row 1 is ignored: its logits' Hessian rows and columns are 0, and an all-ignored batch
    // has a zero gradient (the first-order rule's), not 0/0.
    let mut tape = Tape::<f64>::new();
    let z = tape.parameter(array![[0.5, -1.0, 2.0], [1.0, 0.0, -1.0]])?;
    let t = tape.input(array![2.0, -100.0])?;
    let options = CrossEntropyOptions {
        targets: Targets::Classes,
        ignore_index: Some(-100),
        label_smoothing: 0.2,
        reduction: Reduction::Mean,
    };
    let loss = tape.cross_entropy_with(z, t, options)?;
    let h = tape.hessian(loss, z)?;
    assert!(h.slice(ndarray::s![3.., ..]).iter().all(|&v| v == 0.0));
    assert!(h.slice(ndarray::s![.., 3..]).iter().all(|&v| v == 0.0));
    let e: Vec<f64> = [0.5f64, -1.0, 2.0].iter().map(|v| v.exp()).collect();
    let s: f64 = e.iter().sum();
    let p: Vec<f64> = e.iter().map(|v| v / s).collect();
    for i in 0..3 {
        for j in 0..3 {
            let expected = f64::from(u8::from(i == j)) * p[i] - p[i] * p[j];
            assert!((h[[i, j]] - expected).abs() < 1e-15, "{h}");
        }
    }
    let all_ignored = tape.input(array![-100.0, -100.0])?;
    let none = tape.cross_entropy_with(z, all_ignored, options)?;
    let g = tape.record_grad(none, &[z])?[0];
    assert!(tape.data(g)?.iter().all(|&v| v == 0.0));
    Ok(())
}

#[test]
fn a_third_derivative_runs_through_the_indexing_adjoints() -> Result<()> {
    // y = Σ gather(x, idx)³ with idx picking x₀ twice and x₂ once: d³y/dx₀³ = 2·6 = 12,
    // d³y/dx₂³ = 6; the chain is gather → scatter_add → gather → scatter_add.
    let mut tape = Tape::<f64>::new();
    let x = tape.parameter(array![0.5, -1.0, 2.0])?;
    let idx = tape.input(ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.0, 0.0, 2.0]).unwrap())?;
    let picked = tape.gather(x, idx, 0)?;
    let cube = tape.powf(picked, 3.0)?;
    let y = tape.sum(cube)?;
    let mut d = tape.record_grad(y, &[x])?[0];
    for _ in 0..2 {
        let s = tape.sum(d)?;
        d = tape.record_grad(s, &[x])?[0];
    }
    assert_eq!(tape.data(d)?, &[12.0, 0.0, 6.0]);
    Ok(())
}
