//! The CSV and IDX loaders, on small files written here.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use wengert_train::loaders::{
    CsvOptions, Header, LabelColumn, Labels, Task, load_csv, load_csv_features, load_mnist,
    read_idx,
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
        ..CsvOptions::default()
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
        message.contains(&format!("line 2: label `{MAX_CLASSES}` is out of range")),
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

/// The first rows of the standard iris file (Fisher, 1936; UCI), as distributed: a header
/// with a `species` column of names, quoted here as some copies have it.
const IRIS_HEAD: &str = "sepal_length,sepal_width,petal_length,petal_width,species
5.1,3.5,1.4,0.2,setosa
7.0,3.2,4.7,1.4,versicolor
6.3,3.3,6.0,2.5,virginica
4.9,3.0,1.4,0.2,\"setosa\"
";

#[test]
fn iris_with_string_species_reads_as_sorted_classes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iris.csv");
    // Written as Excel writes it: a byte-order mark and CR-LF line endings.
    let text = format!("\u{feff}{}", IRIS_HEAD.replace('\n', "\r\n"));
    write(&path, text.as_bytes());
    for column in ["last", "species", "4"] {
        let options = CsvOptions {
            label_column: column.parse().unwrap(),
            ..CsvOptions::default()
        };
        let data = load_csv::<f32>(&path, &options).unwrap();
        assert_eq!((data.len(), data.n_features()), (4, 4));
        assert_eq!(
            data.class_names().unwrap(),
            ["setosa", "versicolor", "virginica"]
        );
        assert_eq!(data.labels().unwrap(), [0, 1, 2, 0]);
    }
    // Evaluated against a model's classes, in the model's order.
    let options = CsvOptions {
        labels: Labels::Names(vec![
            "virginica".into(),
            "setosa".into(),
            "versicolor".into(),
        ]),
        ..CsvOptions::default()
    };
    let data = load_csv::<f32>(&path, &options).unwrap();
    assert_eq!(data.labels().unwrap(), [1, 2, 0, 1]);
}

#[test]
fn a_csv_past_the_size_limit_is_refused_even_when_its_size_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.csv");
    write(&path, "1,2,0\n".repeat(100).as_bytes());
    let small = CsvOptions {
        max_bytes: 100,
        ..CsvOptions::default()
    };
    let message = load_csv::<f32>(&path, &small).unwrap_err().to_string();
    assert!(
        message.contains("big.csv: larger than 100 bytes, the most a CSV file may hold"),
        "{message}"
    );
    // A device whose size is 0 until read: /dev/zero is cut off at the limit, not read
    // until memory runs out.
    #[cfg(unix)]
    {
        let message = load_csv::<f32>("/dev/zero", &small)
            .unwrap_err()
            .to_string();
        assert!(message.contains("larger than 100 bytes"), "{message}");
        let message = load_csv_features::<f32>("/dev/zero", Header::Auto)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the most a CSV file may hold"),
            "{message}"
        );
    }
}

#[test]
fn gzipped_idx_with_trailing_bytes_or_a_second_member_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("l-idx1-ubyte.gz");
    let one = gzip(&idx(&[2], &[1, 2]));
    write(&gz, &one);
    assert_eq!(read_idx(&gz).unwrap().data, [1, 2]);
    for tail in [b"\0".to_vec(), b"junk".to_vec(), gzip(b"more")] {
        let mut bytes = one.clone();
        bytes.extend_from_slice(&tail);
        write(&gz, &bytes);
        let message = read_idx(&gz).unwrap_err().to_string();
        assert!(
            message.contains("bytes after the end of the gzip stream"),
            "{message}"
        );
    }
}

#[test]
fn mnist_pixels_are_bounded_as_elements_not_as_bytes() {
    // A header declaring 200 MiB of pixels is within the IDX limit as bytes, but not as f64
    // elements (1.6 GB); it is refused from the header, before the pixels are read.
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("train-images-idx3-ubyte.gz"),
        &gzip(&idx(&[200 << 20, 1, 1], &[])),
    );
    write(
        &dir.path().join("train-labels-idx1-ubyte"),
        &idx(&[1], &[0]),
    );
    let message = load_mnist::<f64>(dir.path()).unwrap_err().to_string();
    assert!(
        message.contains("in f64 the pixels may take at most"),
        "{message}"
    );
}
