//! Integration tests of wengert-io: what a user does, end to end, and what a hostile file does.

mod budget;
mod coded_ops;
mod common;
mod crash;
mod golden;
mod hostile;
mod invalid;
mod listed_ops;
mod new_ops;
mod outputs;
mod recorded_grad;
mod round_trip;
mod weights;
