//! Integration tests of the `wengert` binary: run it as a person would and read what it
//! prints and writes.

mod cnn;
mod distributed;
mod errors;
mod hostile_models;
mod inputs;
mod outputs;
mod persist;
mod runs;
mod train;

use std::path::Path;
use std::process::{Command, Output};

/// Runs `wengert` with `args` in `dir`.
pub fn wengert(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wengert"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// The standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small CSV problem: two features, label 1 when their sum is positive.
pub fn write_small_csv(path: &Path) {
    let mut text = String::from("x0,x1,label\n");
    for i in 0..60 {
        let a = ((i * 37) % 23) as f64 / 11.0 - 1.0;
        let b = ((i * 17) % 19) as f64 / 9.0 - 1.0;
        text.push_str(&format!("{a},{b},{}\n", usize::from(a + b > 0.0)));
    }
    std::fs::write(path, text).unwrap();
}
