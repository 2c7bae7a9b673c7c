//! `wengert export`: a saved model's weights, as safetensors or a wengert weights file.

use wengert_io::{export_safetensors, save_weights};

use crate::args::ExportArgs;
use crate::model;

/// Runs `wengert export`; the error is a one-line message.
pub fn run(args: &ExportArgs) -> Result<(), String> {
    let saved = model::load(&args.model)?;
    let weights = saved.weights();
    if let Some(path) = &args.safetensors {
        export_safetensors(path, &weights).map_err(|e| model::io_message(path, &e))?;
        say!("wrote {} tensors to {}", weights.len(), path.display());
    }
    if let Some(path) = &args.weights {
        save_weights(path, &weights).map_err(|e| model::io_message(path, &e))?;
        say!("wrote {} tensors to {}", weights.len(), path.display());
    }
    Ok(())
}
