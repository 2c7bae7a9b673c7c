//! The CSV and IDX loaders, on small files written here.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use wengert_train::loaders::{
    CsvOptions, Header, LabelColumn, Task, load_csv, load_mnist, read_idx,
};
use wengert_train::{Error, MAX_CLASSES};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn csv_with_a_header_and_a_named_label_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iris.csv");
    write(
        &path,
        b"sepal,species,petal\n5.1,0,1.4\n7.0,1,4.7\n6.3,2,6.0\n",
    );
    let options = CsvOptions {
        label_column: LabelColumn::Name("species".into()),
        ..CsvOptions::default()
    };
    let data = load_csv::<f32>(&path, &options).unwrap();
    assert_eq!(
        data.features(),
        ndarray::array![[5.1f32, 1.4], [7.0, 4.7], [6.3, 6.0]]
    );
    assert_eq!(data.labels().unwrap(), [0, 1, 2]);
    assert_eq!(data.classes(), Some(3));
}

#[test]
fn csv_without_a_header_for_regression() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.csv");
    write(&path, b"0.5,1,2\n1.5,3,4\n");
    let options = CsvOptions {
        label_column: LabelColumn::Index(0),
        header: Header::Absent,
        task: Task::Regression,
    };
    let data = load_csv::<f64>(&path, &options).unwrap();
    assert_eq!(data.features(), ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    assert_eq!(data.n_outputs(), 1);
}

#[test]
fn csv_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    write(&path, b"a,b,label\n1,2,0\n3,4,1\n5,six,1\n");
    let err = load_csv::<f32>(&path, &CsvOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Parse { line: 4, .. }), "{message}");
    assert!(
        message.contains("bad.csv, line 4: field 2 (`six`) is not a number"),
        "{message}"
    );

    write(&path, format!("1,2,0\n3,4,{MAX_CLASSES}\n").as_bytes());
    let message = load_csv::<f32>(&path, &CsvOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("line 2: label `65536` is out of range"),
        "{message}"
    );

    let missing = dir.path().join("missing.csv");
    let err = load_csv::<f32>(&missing, &CsvOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("missing.csv"), "{err}");
}

/// An IDX file of unsigned bytes with these dimensions and data.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn mnist_from_plain_and_gzipped_idx_files() {
    let dir = tempfile::tempdir().unwrap();
    // Three 2×2 training images, two test images (gzipped).
    write(
        &dir.path().join("train-images-idx3-ubyte"),
        &idx(&[3, 2, 2], &[0, 255, 0, 0, 1, 2, 3, 4, 9, 9, 9, 9]),
    );
    write(
        &dir.path().join("train-labels-idx1-ubyte"),
        &idx(&[3], &[7, 0, 9]),
    );
    write(
        &dir.path().join("t10k-images-idx3-ubyte.gz"),
        &gzip(&idx(&[2, 2, 2], &[255; 8])),
    );
    write(
        &dir.path().join("t10k-labels-idx1-ubyte.gz"),
        &gzip(&idx(&[2], &[1, 2])),
    );
    let (train, test) = load_mnist::<f32>(dir.path()).unwrap();
    assert_eq!(
        (train.len(), train.n_features(), train.classes()),
        (3, 4, Some(10))
    );
    assert_eq!(train.labels().unwrap(), [7, 0, 9]);
    assert_eq!(train.features()[[0, 1]], 1.0);
    assert_eq!(test.len(), 2);
    assert!(test.features().iter().all(|&p| p == 1.0));

    // A label out of range.
    write(
        &dir.path().join("train-labels-idx1-ubyte"),
        &idx(&[3], &[7, 10, 9]),
    );
    let message = load_mnist::<f32>(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("label 10 of example 1 is out of range"),
        "{message}"
    );
    // A missing file.
    let empty = tempfile::tempdir().unwrap();
    let message = load_mnist::<f32>(empty.path()).unwrap_err().to_string();
    assert!(
        message.contains("no MNIST file train-images-idx3-ubyte"),
        "{message}"
    );
}

#[test]
fn corrupt_idx_files_are_refused_without_a_huge_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x-idx3-ubyte");
    let refuse = |bytes: &[u8], needle: &str| {
        write(&path, bytes);
        let message = read_idx(&path).unwrap_err().to_string();
        assert!(message.contains(needle), "{message}");
    };
    // A header declaring 4 GiB, in a file of a few bytes.
    refuse(&idx(&[65536, 256, 256], &[]), "more than");
    refuse(&idx(&[2, 2], &[1, 2, 3]), "declares 4 bytes of data");
    refuse(&idx(&[2, 2], &[1, 2, 3, 4, 5]), "declares 4 bytes of data");
    refuse(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], "type code 0x0d");
    refuse(b"PK\x03\x04", "not an IDX file");
    refuse(&[0, 0, 8], "ends early");
    let gz = dir.path().join("y-idx1-ubyte.gz");
    write(&gz, &gzip(&idx(&[5], &[1, 2])));
    assert!(
        read_idx(&gz)
            .unwrap_err()
            .to_string()
            .contains("ends early")
    );
    write(&gz, &gzip(&idx(&[1], &[1, 2])));
    assert!(read_idx(&gz).unwrap_err().to_string().contains("more data"));
    let absent = read_idx(path.with_file_name("absent")).unwrap_err();
    assert!(absent.to_string().contains("absent"), "{absent}");
}
