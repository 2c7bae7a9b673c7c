//! W3's chain recorded and swept `CHAINS` times through one API, for counting instructions
//! where wall-clock times are noisy:
//!
//! ```sh
//! cargo build --release -p wengert-benches --example w3_instructions
//! valgrind --tool=callgrind target/release/examples/w3_instructions tape
//! valgrind --tool=callgrind target/release/examples/w3_instructions graph
//! ```
//!
//! The difference of the two totals over `CHAINS · W3_OPS` is the handle API's cost per op.

use wengert_benches::chain::{graph_chain, tape_chain};
use wengert_benches::shared::W3_OPS;
use wengert_tape::{Graph, Tape};

const CHAINS: usize = 20;

fn main() -> Result<(), String> {
    let which = std::env::args().nth(1).unwrap_or_default();
    let mut sum = 0.0;
    match which.as_str() {
        "tape" => {
            let mut tape = Tape::with_capacity(W3_OPS + 3);
            for _ in 0..CHAINS {
                sum += tape_chain(&mut tape, W3_OPS).map_err(|e| e.to_string())?.1[0];
            }
        }
        "graph" => {
            let graph = Graph::from(Tape::with_capacity(W3_OPS + 3));
            for _ in 0..CHAINS {
                sum += graph_chain(&graph, W3_OPS).map_err(|e| e.to_string())?.1[0];
            }
        }
        _ => return Err("usage: w3_instructions tape|graph".into()),
    }
    println!("{which}: {CHAINS} chains of {W3_OPS} ops, checksum {sum}");
    Ok(())
}
