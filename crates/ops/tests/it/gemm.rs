//! `wengert_ops::gemm` against a naive product: random shapes with m, k, n in 1..=96 (across
//! the parallel split's row blocks and matrixmultiply's tiles), every operand as a row-major,
//! transposed, strided or reversed view, and `alpha`/`beta` accumulation into `c`.
//!
//! Elements are small integers and `alpha`, `beta` small dyadic numbers, so every product and
//! sum is exact in f64 and f32 alike: results are compared bit for bit.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Slice};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use wengert_ops::Float;
use wengert_ops::gemm;

/// Random cases, each checked in f64 and f32: one naive product of up to 96³ multiply-adds per
/// type, about 5 s for all 128 in the default test profile.
const CASES: u32 = 128;

/// What `c`'s storage holds outside its view, to check that gemm never writes there.
const UNTOUCHED: f64 = 12345.0;

/// `s![.., ..;2]` on one axis. (The `s!` macro itself expands to `#[allow(unsafe_code)]`, which
/// the workspace's `forbid(unsafe_code)` rejects, so the slices are spelled out.)
const EVERY_OTHER: Slice = Slice {
    start: 0,
    end: None,
    step: 2,
};

/// `s![..;-1]` on one axis.
const REVERSED: Slice = Slice {
    start: 0,
    end: None,
    step: -1,
};

/// How an operand's view sits in its storage.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Row-major and contiguous.
    RowMajor,
    /// The transpose (`.t()`) of a row-major array: column-major.
    Transposed,
    /// Every other column of a wider array (`s![.., ..;2]`): a column stride of 2.
    Strided,
    /// Rows in reverse order (`s![..;-1, ..]`): a negative row stride.
    Reversed,
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![
        Just(Layout::RowMajor),
        Just(Layout::Transposed),
        Just(Layout::Strided),
        Just(Layout::Reversed),
    ]
}

/// Storage whose view in `layout` (see [`view`]) holds `logical`; elements outside the view are
/// `fill`.
fn store<E: Float>(logical: &Array2<f64>, layout: Layout, fill: f64) -> Array2<E> {
    let e = |v: &f64| E::from_f64(*v);
    let (rows, cols) = logical.dim();
    match layout {
        Layout::RowMajor => logical.map(e),
        Layout::Transposed => logical.t().as_standard_layout().map(e),
        Layout::Strided => {
            let mut wide = Array2::from_elem((rows, 2 * cols), E::from_f64(fill));
            wide.slice_axis_mut(Axis(1), EVERY_OTHER)
                .assign(&logical.map(e));
            wide
        }
        Layout::Reversed => logical.slice_axis(Axis(0), REVERSED).map(e),
    }
}

fn view<E>(storage: &Array2<E>, layout: Layout) -> ArrayView2<'_, E> {
    match layout {
        Layout::RowMajor => storage.view(),
        Layout::Transposed => storage.t(),
        Layout::Strided => storage.slice_axis(Axis(1), EVERY_OTHER),
        Layout::Reversed => storage.slice_axis(Axis(0), REVERSED),
    }
}

fn view_mut<E>(storage: &mut Array2<E>, layout: Layout) -> ArrayViewMut2<'_, E> {
    match layout {
        Layout::RowMajor => storage.view_mut(),
        Layout::Transposed => storage.view_mut().reversed_axes(),
        Layout::Strided => storage.slice_axis_mut(Axis(1), EVERY_OTHER),
        Layout::Reversed => storage.slice_axis_mut(Axis(0), REVERSED),
    }
}

#[derive(Debug, Clone)]
struct Case {
    a: Array2<f64>,
    b: Array2<f64>,
    c: Array2<f64>,
    layouts: [Layout; 3],
    alpha: f64,
    beta: f64,
}

fn integers(rows: usize, cols: usize) -> impl Strategy<Value = Array2<f64>> {
    prop::collection::vec(-4i8..=4, rows * cols).prop_map(move |v| {
        Array2::from_shape_vec((rows, cols), v.into_iter().map(f64::from).collect())
            .expect("sized rows·cols")
    })
}

fn cases() -> impl Strategy<Value = Case> {
    (1..=96usize, 1..=96usize, 1..=96usize)
        .prop_flat_map(|(m, k, n)| {
            (
                integers(m, k),
                integers(k, n),
                integers(m, n),
                [layout(), layout(), layout()],
                prop::sample::select(vec![1.0, -2.0, 0.5]),
                prop::sample::select(vec![0.0, 1.0, -1.0, 0.5, 2.0]),
            )
        })
        .prop_map(|(a, b, c, layouts, alpha, beta)| Case {
            a,
            b,
            c,
            layouts,
            alpha,
            beta,
        })
}

/// `alpha·a·b + beta·c` by the textbook loops.
fn naive(case: &Case) -> Array2<f64> {
    let ab = wengert_testkit::naive_matmul(case.a.view(), case.b.view());
    Array2::from_shape_fn(ab.dim(), |(i, j)| {
        case.alpha * ab[[i, j]] + case.beta * case.c[[i, j]]
    })
}

fn check<E: Float>(case: &Case) -> Result<(), TestCaseError> {
    let [la, lb, lc] = case.layouts;
    // NaN outside the views of `a` and `b`: reading there would poison the result.
    let a = store::<E>(&case.a, la, f64::NAN);
    let b = store::<E>(&case.b, lb, f64::NAN);
    // With beta = 0, `c` is overwritten, as in BLAS: even NaN in it must not leak through.
    let c0 = if case.beta == 0.0 {
        case.c.mapv(|_| f64::NAN)
    } else {
        case.c.clone()
    };
    let mut c = store::<E>(&c0, lc, UNTOUCHED);
    gemm(
        E::from_f64(case.alpha),
        view(&a, la),
        view(&b, lb),
        E::from_f64(case.beta),
        view_mut(&mut c, lc),
    );
    let got = view(&c, lc).mapv(|v| Float::to_f64(v));
    prop_assert_eq!(&got, &naive(case), "{} {:?}", E::NAME, case.layouts);
    if let Layout::Strided = lc {
        let gaps = c.slice_axis(Axis(1), Slice::new(1, None, 2));
        prop_assert!(
            gaps.iter().all(|&v| v.to_f64() == UNTOUCHED),
            "wrote outside c"
        );
    }
    Ok(())
}

#[test]
fn gemm_matches_a_naive_product_for_every_layout() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(CASES));
    runner
        .run(&cases(), |case| {
            check::<f64>(&case)?;
            check::<f32>(&case)
        })
        .unwrap();
}

#[test]
fn gemm_at_the_parallel_block_boundaries() {
    // Products from 2¹⁸ multiply-adds up are split into row blocks of 16 or more rows, a multiple
    // of 8; these shapes put the split and matrixmultiply's tiles at every kind of edge.
    let shapes = [
        (96, 96, 96),
        (64, 64, 64),
        (65, 64, 64),
        (63, 72, 80),
        (95, 93, 91),
    ];
    let layouts = [
        Layout::RowMajor,
        Layout::Transposed,
        Layout::Strided,
        Layout::Reversed,
    ];
    let mut runner = TestRunner::deterministic();
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let data = (integers(m, k), integers(k, n), integers(m, n));
        let (a, b, c) = data.new_tree(&mut runner).unwrap().current();
        let case = Case {
            a,
            b,
            c,
            layouts: [layouts[i % 4], layouts[(i + 1) % 4], layouts[(i + 2) % 4]],
            alpha: [1.0, 0.5][i % 2],
            beta: [0.0, 1.0, -1.0][i % 3],
        };
        check::<f64>(&case).unwrap();
        check::<f32>(&case).unwrap();
    }
}
