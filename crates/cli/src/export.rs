//! `wengert export`: a saved model's weights, as safetensors or a wengert weights file.

use std::collections::BTreeMap;

use wengert_io::{safetensors_to_bytes_with_metadata, weights_to_bytes};

use crate::args::ExportArgs;
use crate::{destination, model};

/// The safetensors metadata: `format` for the tools that read it (transformers refuses a file
/// without a known one), `layout` for the reader who must know the weights are transposed.
fn safetensors_metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "layout".to_string(),
            "row-major; layers.<i>.weight is [inputs, outputs], the transpose of \
             torch.nn.Linear.weight; layers.<i>.bias is [outputs]; input.mean and input.std \
             standardise the raw features: (x - mean) / std"
                .to_string(),
        ),
    ])
}

/// Runs `wengert export`; the error is a one-line message.
pub fn run(args: &ExportArgs) -> Result<(), String> {
    let outputs: Vec<(&str, &std::path::Path)> = [
        ("--safetensors", args.safetensors.as_deref()),
        ("--weights", args.weights.as_deref()),
    ]
    .into_iter()
    .filter_map(|(option, path)| Some((option, path?)))
    .collect();
    destination::check_outputs(&outputs, &[("--model", &args.model)])?;
    let saved = model::load(&args.model)?;
    let weights = saved.weights();
    if let Some(path) = &args.safetensors {
        let bytes = safetensors_to_bytes_with_metadata(&weights, &safetensors_metadata())
            .map_err(|e| model::io_message(path, &e))?;
        destination::write("--safetensors", path, &bytes)?;
        report(weights.len(), path);
    }
    if let Some(path) = &args.weights {
        destination::write("--weights", path, &weights_to_bytes(&weights))?;
        report(weights.len(), path);
    }
    Ok(())
}

/// Says what was written, on standard error when the file itself went to standard output.
fn report(tensors: usize, path: &std::path::Path) {
    let line = format!("wrote {tensors} tensors to {}", path.display());
    if destination::is_stdout(path) {
        eprintln!("{line}");
    } else {
        say!("{line}");
    }
}
