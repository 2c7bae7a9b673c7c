//! The limits `docs/ARCHITECTURE.md` quotes from the public API are the code's.

use wengert_testkit::architecture_figure;

#[test]
fn the_limits_the_architecture_quotes_are_the_codes() {
    assert_eq!(
        architecture_figure("MAX_CLASSES"),
        wengert_train::MAX_CLASSES as u64
    );
    assert_eq!(
        architecture_figure("MAX_RANK"),
        wengert_ops::MAX_RANK as u64
    );
}
