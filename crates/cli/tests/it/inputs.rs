//! Hostile and careless input (issue 10, sections 2, 5 and 6): every size the user controls
//! has a limit, input is read as it was meant, results say what they are. Each case ends in
//! one line on standard error naming the file or option, and a non-zero exit.

use std::io::Write;
use std::path::Path;

use crate::errors::fails;
use crate::{stdout, wengert, write_small_csv};

/// Runs `args` in `dir`, which must succeed, and returns the standard output.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = wengert(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// `train` on the small CSV with these extra options (which are expected to be refused).
fn train_refused(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_small_csv(&dir.path().join("small.csv"));
    let mut args = vec!["train", "--data", "small.csv", "--quiet", "--out", "run"];
    args.extend_from_slice(extra);
    fails(dir.path(), &args, 1)
}

/// An iris-like file: four measurements and a `species` column of names, three classes
/// whose measurements differ (made up here; the real iris has the same layout).
fn write_species_csv(path: &Path, rows: usize) {
    let species = ["virginica", "setosa", "versicolor"];
    let mut text = String::from("sepal_length,sepal_width,petal_length,petal_width,species\n");
    for i in 0..rows {
        let class = i % 3;
        let jitter = ((i * 37) % 11) as f64 / 20.0;
        let base = 1.0 + 2.0 * class as f64;
        text.push_str(&format!(
            "{:.2},{:.2},{:.2},{:.2},{}\n",
            base + jitter,
            3.0 - jitter,
            base * 1.5 + jitter,
            base / 2.0,
            species[class]
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn hidden_widths_that_overflow_or_do_not_fit_are_refused_naming_the_bytes() {
    // 2^58: the count fits in a u64 but not in any machine; usize::MAX: it overflows.
    let err = train_refused(&["--hidden", "288230376151711744"]);
    assert!(err.contains("--hidden [288230376151711744]"), "{err}");
    assert!(err.contains("EB to train, more than the"), "{err}");
    let err = train_refused(&["--hidden", &usize::MAX.to_string()]);
    assert!(err.contains("--hidden"), "{err}");
    assert!(
        err.contains("more parameters than this machine can address"),
        "{err}"
    );
    // 10¹⁰ parameters (40 GB of weights alone) and evaluation chunks of 1024 rows 10⁸ wide:
    // refused before a byte of it is allocated (it aborted on a 25.6 GB allocation).
    let err = train_refused(&["--hidden", "100000000,100"]);
    assert!(err.contains("--hidden [100000000, 100]"), "{err}");
    assert!(err.contains("B to train, more than the"), "{err}");
    assert!(err.contains("of memory available"), "{err}");
}

#[test]
fn threads_have_an_upper_bound() {
    for threads in ["0", "1025", "100000"] {
        let err = train_refused(&["--threads", threads]);
        assert!(
            err.contains(&format!("--threads must be from 1 to 1024, got {threads}")),
            "{err}"
        );
    }
}

#[test]
fn rates_that_round_to_zero_or_overflow_in_f32_are_refused() {
    for (option, value, why) in [
        ("--lr", "1e-50", "rounds to 0 in f32"),
        ("--lr", "1e300", "overflows f32"),
        ("--weight-decay", "1e-60", "rounds to 0 in f32"),
        ("--weight-decay", "1e39", "overflows f32"),
    ] {
        let err = train_refused(&[option, value]);
        assert!(err.contains(&format!("{option} {value} {why}")), "{err}");
    }
    // Negative values parse both ways, and are refused by the option's own check.
    for args in [["--lr", "-1"].as_slice(), &["--lr=-1"]] {
        let err = train_refused(args);
        assert!(
            err.contains("--lr must be a positive number, got -1"),
            "{err}"
        );
    }
    // A negative count is a usage error naming the option, not an "unexpected argument".
    let dir = tempfile::tempdir().unwrap();
    let err = fails(dir.path(), &["train", "--epochs", "-1"], 2);
    assert!(err.contains("invalid value '-1' for '--epochs"), "{err}");
}

#[test]
fn data_is_read_within_a_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(dir.path(), &["train", "--data", "/dev/zero", "--quiet"], 1);
    assert!(
        err.contains("/dev/zero: larger than 268435456 bytes, the most a CSV file may hold"),
        "{err}"
    );
}

#[test]
fn class_labels_have_a_limit_and_the_confusion_matrix_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Labels {0, 65535}: past the documented limit of 1024 classes, refused at its line.
    let rows: String = (0..20)
        .map(|i| format!("{i},{}\n", if i == 7 { 65535 } else { 0 }))
        .collect();
    std::fs::write(d.join("wide.csv"), rows).unwrap();
    let err = fails(d, &["train", "--data", "wide.csv", "--quiet"], 1);
    assert!(
        err.contains("wide.csv, line 8: label `65535` is out of range"),
        "{err}"
    );
    assert!(err.contains("from 0 to 1023"), "{err}");
    // Labels {0, 999}: within the limit; the report lists confusions instead of a table of
    // a million cells, and metrics.json holds at most 1000² counts.
    let rows: String = (0..40)
        .map(|i| format!("{},{}\n", i % 7, if i % 2 == 0 { 999 } else { 0 }))
        .collect();
    std::fs::write(d.join("sparse.csv"), rows).unwrap();
    let text = ok(
        d,
        &[
            "train",
            "--data",
            "sparse.csv",
            "--hidden",
            "4",
            "--epochs",
            "2",
            "--quiet",
            "--out",
            "run",
        ],
    );
    assert!(text.len() < 4096, "{} bytes of report", text.len());
    assert!(
        text.contains("1000 classes, too many to tabulate"),
        "{text}"
    );
    let metrics = std::fs::metadata(d.join("run/metrics.json")).unwrap().len();
    // 1000² counts, about 9 MB: the most the class limit allows (10,000 classes made 900 MB).
    assert!(metrics < 12 << 20, "metrics.json is {metrics} bytes");
    let text = ok(d, &["eval", "--model", "run/model.tape"]);
    assert!(text.len() < 4096, "{} bytes of report", text.len());
}

#[test]
fn a_first_row_that_is_not_clearly_a_header_is_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (row, field) in [("0x1,2,0", "`0x1`"), ("1_0,2,0", "`1_0`"), ("1,,0", "``")] {
        std::fs::write(d.join("h.csv"), format!("{row}\n3,4,1\n5,6,0\n")).unwrap();
        let err = fails(d, &["train", "--data", "h.csv", "--quiet"], 1);
        assert!(err.contains("h.csv, line 1: field"), "{err}");
        assert!(err.contains(field), "{err}");
        assert!(err.contains("--header yes"), "{err}");
    }
}

#[test]
fn the_readme_iris_example_trains_on_species_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_species_csv(&d.join("iris.csv"), 150);
    // README: `wengert train --data iris.csv --label-column last --hidden 16`.
    let text = ok(
        d,
        &[
            "train",
            "--data",
            "iris.csv",
            "--label-column",
            "last",
            "--hidden",
            "16",
            "--epochs",
            "30",
            "--quiet",
            "--out",
            "run",
        ],
    );
    assert!(text.contains("test accuracy"), "{text}");
    // eval names the classes (sorted: setosa, versicolor, virginica) on the model's own
    // test split, and on a file given by a named label column.
    let text = ok(d, &["eval", "--model", "run/model.tape"]);
    assert!(
        text.contains("classes: 0 setosa, 1 versicolor, 2 virginica"),
        "{text}"
    );
    assert!(text.contains("30 examples"), "{text}");
    // The file changed since: its own test split cannot be drawn again.
    let original = std::fs::read_to_string(d.join("iris.csv")).unwrap();
    let changed = format!("{original}5.0,3.0,1.5,0.5,setosa\n");
    std::fs::write(d.join("iris.csv"), changed).unwrap();
    let err = fails(d, &["eval", "--model", "run/model.tape"], 1);
    assert!(
        err.contains("iris.csv has changed since the model was trained"),
        "{err}"
    );
    std::fs::write(d.join("iris.csv"), original).unwrap();
    let text = ok(
        d,
        &[
            "eval",
            "--model",
            "run/model.tape",
            "--data",
            "iris.csv",
            "--label-column",
            "species",
        ],
    );
    assert!(text.contains("150 examples"), "{text}");
    // predict writes the names.
    let features: String = std::fs::read_to_string(d.join("iris.csv"))
        .unwrap()
        .lines()
        .map(|l| format!("{}\n", l.rsplit_once(',').unwrap().0))
        .collect();
    std::fs::write(d.join("x.csv"), features).unwrap();
    let csv = ok(
        d,
        &["predict", "--model", "run/model.tape", "--data", "x.csv"],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "class,prob_setosa,prob_versicolor,prob_virginica");
    assert_eq!(lines.len(), 151);
    assert!(
        lines[1..]
            .iter()
            .all(|l| ["setosa,", "versicolor,", "virginica,"]
                .iter()
                .any(|s| l.starts_with(s))),
        "{csv}"
    );
    // An unknown species is named with its line, escaped for the terminal.
    std::fs::write(
        d.join("odd.csv"),
        "a,b,c,d,species\n1,2,3,4,setosa\n1,2,3,4,\"rosa\u{1b}[2J\"\n",
    )
    .unwrap();
    let err = fails(
        d,
        &["eval", "--model", "run/model.tape", "--data", "odd.csv"],
        1,
    );
    assert!(
        err.contains("odd.csv, line 3: label `rosa\\u{1b}[2J` is not one of the model's 3 classes"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "a raw escape reached the terminal: {err}"
    );
}

#[test]
fn control_bytes_from_a_file_are_escaped_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("esc.csv"),
        "a,b,y\n1,2,0\n1,\u{1b}]0;pwned\u{7},1\n",
    )
    .unwrap();
    let err = fails(dir.path(), &["train", "--data", "esc.csv", "--quiet"], 1);
    assert!(
        err.contains("esc.csv, line 3: field 2 (`\\u{1b}]0;pwned\\u{7}`) is not a number"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err}");
    // A class name with a control character is refused: it would be printed and written.
    std::fs::write(dir.path().join("cls.csv"), "1,2,ok\n3,4,\"bad\u{1b}\"\n").unwrap();
    let err = fails(dir.path(), &["train", "--data", "cls.csv", "--quiet"], 1);
    assert!(err.contains("holds a control character"), "{err}");
}

#[test]
fn ambiguous_label_columns_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("amb.csv"), "last,b,y\n1,2,0\n3,4,1\n").unwrap();
    let err = fails(d, &["train", "--data", "amb.csv", "--quiet"], 1);
    assert!(err.contains("label column `last` is ambiguous"), "{err}");
    std::fs::write(d.join("dup.csv"), "y,b,y\n1,2,0\n3,4,1\n").unwrap();
    let err = fails(
        d,
        &[
            "train",
            "--data",
            "dup.csv",
            "--label-column",
            "y",
            "--quiet",
        ],
        1,
    );
    assert!(err.contains("label column `y` is ambiguous"), "{err}");
}

#[test]
fn eval_without_data_scores_the_models_own_test_split() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = ok(
        d,
        &[
            "train", "--seed", "3", "--hidden", "16", "--epochs", "3", "--quiet", "--out", "run",
        ],
    );
    let reported = text
        .lines()
        .find(|l| l.starts_with("test accuracy"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap()
        .to_string();
    let text = ok(d, &["eval", "--model", "run/model.tape"]);
    assert!(text.contains("seed 3, 0.2 held out"), "{text}");
    assert!(
        text.contains(&format!("accuracy {reported}")),
        "train reported {reported}: {text}"
    );
    // --seed and --test-split still choose another split, and make no sense with --data.
    let text = ok(d, &["eval", "--model", "run/model.tape", "--seed", "0"]);
    assert!(text.contains("seed 0, 0.2 held out"), "{text}");
    write_small_csv(&d.join("small.csv"));
    let err = fails(
        d,
        &[
            "eval",
            "--model",
            "run/model.tape",
            "--data",
            "small.csv",
            "--seed",
            "1",
        ],
        1,
    );
    assert!(err.contains("do not apply with --data"), "{err}");
}

#[test]
fn mnist_gzip_files_with_anything_after_their_member_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let idx = |dims: &[u32], data: &[u8]| {
        let mut out = vec![0, 0, 0x08, dims.len() as u8];
        for x in dims {
            out.extend_from_slice(&x.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    };
    let gzip = |bytes: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    };
    let mut images = gzip(&idx(&[2, 2, 2], &[0; 8]));
    images.extend_from_slice(&gzip(b"a second member"));
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), images).unwrap();
    std::fs::write(d.join("train-labels-idx1-ubyte"), idx(&[2], &[0, 1])).unwrap();
    let err = fails(d, &["train", "--mnist", ".", "--quiet"], 1);
    assert!(
        err.contains("train-images-idx3-ubyte.gz: bytes after the end of the gzip stream"),
        "{err}"
    );
}

#[test]
fn settings_read_back_from_a_checkpoint_get_the_same_checks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_small_csv(&d.join("small.csv"));
    ok(
        d,
        &[
            "train",
            "--data",
            "small.csv",
            "--hidden",
            "4",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            "run",
        ],
    );
    let ckpt_path = std::fs::read_dir(d.join("run"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .unwrap();
    let options = wengert_io::LoadOptions::default();
    let original = wengert_io::Checkpoint::<f32>::load(&ckpt_path, &options).unwrap();
    // A checkpoint whose saved options a person (or an attacker) edited.
    for (from, to, expected) in [
        (
            "\"hidden\":[4]",
            "\"hidden\":[100000000,100]",
            "B to train, more than the",
        ),
        (
            "\"hidden\":[4]",
            "\"hidden\":[18446744073709551615]",
            "can address",
        ),
        ("\"lr\":null", "\"lr\":1e-50", "rounds to 0 in f32"),
    ] {
        let mut ckpt = original.clone();
        let Some(wengert_io::Scalar::Text(settings)) = ckpt.scalars.get_mut("cli.settings") else {
            panic!("no settings in the checkpoint");
        };
        assert!(settings.contains(from), "{settings}");
        *settings = settings.replace(from, to);
        ckpt.save(&ckpt_path).unwrap();
        let err = fails(
            d,
            &["train", "--resume", "run", "--epochs", "2", "--quiet"],
            1,
        );
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn a_csv_too_wide_for_the_first_layer_is_refused_at_its_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A million features into 100,000 hidden units: 10¹¹ weights, on no machine's memory.
    let row = "1,".repeat(1_000_000);
    std::fs::write(d.join("wide.csv"), format!("\n{row}0\n{row}1\n")).unwrap();
    let err = fails(
        d,
        &[
            "train", "--data", "wide.csv", "--hidden", "100000", "--quiet",
        ],
        1,
    );
    assert!(
        err.contains("wide.csv, line 2: 1000000 feature columns, more than the"),
        "{err}"
    );
    assert!(
        err.contains("with --hidden [100000], a wider first layer would not fit"),
        "{err}"
    );
    // A CNN's cost grows with the image: 100,000 channels of a 1000x1000 image will not fit.
    let err = fails(
        d,
        &[
            "train",
            "--data",
            "wide.csv",
            "--model",
            "cnn",
            "--channels",
            "100000",
            "--quiet",
        ],
        1,
    );
    assert!(
        err.contains("wide.csv, line 2: 1000000 feature columns, more than the"),
        "{err}"
    );
    assert!(
        err.contains("with --channels [100000], a larger image would not fit"),
        "{err}"
    );
}
