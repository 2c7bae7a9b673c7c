//! `wengert`: the command-line trainer. `wengert train` trains a classifier (an MLP, or a
//! small CNN with `--model cnn`) on the embedded UCI digits, a CSV file or MNIST, and writes its metrics, curves, checkpoints and
//! the trained model (`model.tape`); `--resume` continues a run. `wengert eval`, `predict`
//! and `export` use a saved model in a new process.

#![deny(missing_docs)]

/// `println!` that does not panic when standard output is closed (`wengert train | head`):
/// the report is for a reader, and a reader that has gone is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // Under MPI only rank 0 reports.
        if $crate::distributed::prints() {
            let _ = writeln!(std::io::stdout(), $($arg)*);
        }
    }};
}

mod args;
mod data;
mod destination;
mod distributed;
mod eval;
mod export;
mod memory;
mod model;
mod output;
mod plot;
mod predict;
mod run_dir;
mod run_info;
mod train;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use args::{Cli, Command};

/// The element type the command trains and runs models in.
pub type E = f32;

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(err) => return usage_error(err),
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let result = match cli.command {
        Command::Train(args) => {
            // The options typed out, which a resumed run checks against its saved settings.
            let explicit: Vec<String> = matches
                .subcommand_matches("train")
                .map(|m| {
                    m.ids()
                        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                        .map(|id| id.to_string())
                        .collect()
                })
                .unwrap_or_default();
            train::run(&args, &explicit)
        }
        Command::Eval(args) => eval::run(&args),
        Command::Predict(args) => predict::run(&args),
        Command::Export(args) => export::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints help and version in full, and any other parse error as its first paragraph, on
/// one line.
fn usage_error(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Printing to a closed pipe is not worth a panic.
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::from(2)
        }
        _ => {
            // The first paragraph, on one line: "required arguments were not provided:"
            // names them on the lines after it.
            let rendered = err.render().to_string();
            let first = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let first = if first.is_empty() {
                "invalid arguments"
            } else {
                first.as_str()
            };
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("error: {first} (see `wengert --help`)");
            ExitCode::from(2)
        }
    }
}
