//! `wengert export`: a saved model's weights, as safetensors (in wengert's layout or
//! PyTorch's) or a wengert weights file.

use std::collections::BTreeMap;

use ndarray::ArrayD;
use wengert_io::{safetensors_to_bytes_with_metadata, weights_to_bytes};

use crate::E;
use crate::args::{ExportArgs, LayoutArg};
use crate::{destination, model};

/// The safetensors metadata: `format` for the tools that read it (transformers refuses a file
/// without a known one), `layout` for the reader who must know how the weights are laid out.
fn safetensors_metadata(layout: LayoutArg) -> BTreeMap<String, String> {
    let weights = match layout {
        LayoutArg::Wengert => {
            "layers.<i>.weight is [inputs, outputs], the transpose of torch.nn.Linear.weight"
        }
        LayoutArg::Pytorch => "layers.<i>.weight is [outputs, inputs], as torch.nn.Linear.weight",
    };
    BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "layout".to_string(),
            format!(
                "row-major; {weights}; layers.<i>.bias is [outputs]; a CNN's conv.<i>.weight is \
                 [out_channels, in_channels, kh, kw] and conv.<i>.bias [out_channels], as \
                 torch.nn.Conv2d holds them; input.mean and input.std standardise the raw \
                 features: (x - mean) / std"
            ),
        ),
    ])
}

/// The weights in `layout`: PyTorch's transposes every fully connected layer's weight matrix
/// (`layers.<i>.weight`), and leaves the rest (biases, a CNN's convolutions, already in
/// PyTorch's layout, the standardisation) as they are.
fn laid_out(
    weights: BTreeMap<String, ArrayD<E>>,
    layout: LayoutArg,
) -> BTreeMap<String, ArrayD<E>> {
    if layout == LayoutArg::Wengert {
        return weights;
    }
    weights
        .into_iter()
        .map(|(name, w)| {
            if is_layer_weight(&name) && w.ndim() == 2 {
                let transposed = w.reversed_axes().as_standard_layout().into_owned();
                (name, transposed)
            } else {
                (name, w)
            }
        })
        .collect()
}

/// Whether `name` is `layers.<i>.weight`.
fn is_layer_weight(name: &str) -> bool {
    name.strip_prefix("layers.")
        .and_then(|rest| rest.strip_suffix(".weight"))
        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
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
        let tensors = laid_out(weights.clone(), args.layout);
        let bytes =
            safetensors_to_bytes_with_metadata(&tensors, &safetensors_metadata(args.layout))
                .map_err(|e| model::io_message(path, &e))?;
        destination::write("--safetensors", path, &bytes)?;
        report(tensors.len(), path);
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

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn pytorch_layout_transposes_layer_weights_only() {
        let weights = BTreeMap::from([
            (
                "layers.0.weight".to_string(),
                array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]].into_dyn(),
            ),
            (
                "layers.0.bias".to_string(),
                array![1.0f32, 2.0, 3.0].into_dyn(),
            ),
            (
                "layers.x.weight".to_string(),
                array![[1.0f32, 2.0]].into_dyn(),
            ),
            ("input.mean".to_string(), array![0.5f32, 0.5].into_dyn()),
        ]);
        let same = laid_out(weights.clone(), LayoutArg::Wengert);
        assert_eq!(same, weights);
        let torch = laid_out(weights.clone(), LayoutArg::Pytorch);
        assert_eq!(
            torch["layers.0.weight"],
            array![[1.0f32, 4.0], [2.0, 5.0], [3.0, 6.0]].into_dyn()
        );
        assert!(torch["layers.0.weight"].is_standard_layout());
        for name in ["layers.0.bias", "layers.x.weight", "input.mean"] {
            assert_eq!(torch[name], weights[name], "{name}");
        }
    }

    #[test]
    fn layer_weights_are_named_layers_index_weight() {
        assert!(is_layer_weight("layers.0.weight"));
        assert!(is_layer_weight("layers.12.weight"));
        for name in [
            "layers..weight",
            "layers.0.bias",
            "layer.0.weight",
            "layers.a.weight",
            "xlayers.0.weight",
        ] {
            assert!(!is_layer_weight(name), "{name}");
        }
    }
}
