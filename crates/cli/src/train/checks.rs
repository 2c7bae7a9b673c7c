//! The checks clap cannot make: options that cannot work, rates the element type cannot hold,
//! and networks that would not fit in memory, each refused in one line naming the option.

use super::architecture::Architecture;
use crate::E;
use crate::args::{HeaderArg, ModelArg, OptimizerArg, TrainArgs};
use crate::memory;

/// The most worker threads `--threads` may ask for: more than any machine this runs on has
/// cores, and few enough to start in a moment.
pub const MAX_THREADS: usize = 1024;

/// Checks the options that clap cannot: one line naming the option that cannot work.
pub fn check(args: &TrainArgs) -> Result<(), String> {
    let fraction = |name: &str, x: f64| {
        if (0.0..1.0).contains(&x) {
            Ok(())
        } else {
            Err(format!("--{name} must be at least 0 and below 1, got {x}"))
        }
    };
    fraction("validation-split", args.validation_split)?;
    fraction("test-split", args.test_split)?;
    if args.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    if args.accumulate == 0 || !args.batch_size.is_multiple_of(args.accumulate) {
        return Err(format!(
            "--accumulate must be at least 1 and divide --batch-size {}, got {}",
            args.batch_size, args.accumulate
        ));
    }
    if args.epochs == 0 {
        return Err("--epochs must be at least 1".into());
    }
    if args.hidden_widths().contains(&0) {
        return Err(format!(
            "--hidden widths must be positive, got {:?}",
            args.hidden_widths()
        ));
    }
    if args.model == ModelArg::Mlp && args.channels.is_some() {
        return Err("--channels applies to --model cnn, not mlp".into());
    }
    if args.channel_widths().contains(&0) {
        return Err(format!(
            "--channels widths must be positive, got {:?}",
            args.channel_widths()
        ));
    }
    if !(0.0..1.0).contains(&args.dropout) {
        return Err(format!(
            "--dropout must be at least 0 and below 1, got {}",
            args.dropout
        ));
    }
    if let Some(lr) = args.lr {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(format!("--lr must be a positive number, got {lr}"));
        }
        representable("lr", lr)?;
    }
    if let Some(wd) = args.weight_decay {
        if !(wd.is_finite() && wd >= 0.0) {
            return Err(format!("--weight-decay must be zero or positive, got {wd}"));
        }
        representable("weight-decay", wd)?;
    }
    if args.keep_checkpoints == 0 {
        return Err("--keep-checkpoints must be at least 1".into());
    }
    check_threads(args)?;
    if args.mnist.is_some() && (args.label_column != "last" || args.header != HeaderArg::Auto) {
        return Err("--label-column and --header apply to --data (CSV), not --mnist".into());
    }
    Ok(())
}

/// `--threads` within 1 to [`MAX_THREADS`]: checked before the training pool starts them.
pub fn check_threads(args: &TrainArgs) -> Result<(), String> {
    match args.threads {
        Some(threads) if !(1..=MAX_THREADS).contains(&threads) => Err(format!(
            "--threads must be from 1 to {MAX_THREADS}, got {threads}"
        )),
        _ => Ok(()),
    }
}

/// A positive rate that the element type holds as a positive finite number: one that
/// rounds to 0 (1e-50 in f32) would silently train nothing, one that overflows (1e300)
/// would make every weight infinite.
fn representable(option: &str, x: f64) -> Result<(), String> {
    let held = x as E;
    // As a person would write it: 1e-50, not fifty zeros.
    let shown = if x.abs() < 1e-4 || x.abs() >= 1e16 {
        format!("{x:e}")
    } else {
        x.to_string()
    };
    if x > 0.0 && held == 0.0 {
        return Err(format!(
            "--{option} {shown} rounds to 0 in {}, the type training runs in (the smallest is {:e})",
            std::any::type_name::<E>(),
            E::from_bits(1)
        ));
    }
    if !held.is_finite() {
        return Err(format!(
            "--{option} {shown} overflows {}, the type training runs in (the largest is {:e})",
            std::any::type_name::<E>(),
            E::MAX
        ));
    }
    Ok(())
}

/// Refuses a network whose parameter count overflows, or whose training would need more
/// memory than the machine has available, before anything is allocated for it. The same
/// check applies to a resumed run's saved settings.
pub fn check_fits(
    architecture: &Architecture,
    args: &TrainArgs,
    source: &str,
) -> Result<(), String> {
    let layers = match architecture.kind() {
        ModelArg::Mlp => format!(
            "--hidden {:?}: the network {:?}",
            args.hidden_widths(),
            architecture.linear
        ),
        ModelArg::Cnn => format!("--channels {:?}: {architecture}", architecture.channels),
    };
    let parameters = architecture
        .parameter_count()
        .ok_or_else(|| format!("{layers} has more parameters than this machine can address"))?;
    let needed = training_bytes(architecture, parameters, args);
    if let Some(available) = memory::available_memory()
        && needed > u128::from(available)
    {
        return Err(format!(
            "{layers} on {source} has {parameters} parameters and needs about {} to train, \
             more than the {} of memory available",
            human_bytes(needed),
            human_bytes(u128::from(available))
        ));
    }
    Ok(())
}

/// The most input features a network of `args` (and two classes, the fewest) can take in the
/// memory available, so that a file too wide is refused at its first row; `None` where the
/// memory is unknown or the rest of the network alone does not fit. A CNN's features are
/// costed as the smallest square image holding them.
pub fn widest_input(args: &TrainArgs) -> Option<usize> {
    let available = u128::from(memory::available_memory()?);
    let fits = |features: usize| {
        let (features, image) = match args.model {
            ModelArg::Mlp => (features, None),
            ModelArg::Cnn => {
                let side = features.isqrt() + usize::from(features.isqrt().pow(2) < features);
                (side * side, Some([side, side]))
            }
        };
        let Ok(architecture) = Architecture::new(args, features, 2, image) else {
            // Too small to pool: refused later, for what it is.
            return true;
        };
        architecture
            .parameter_count()
            .is_some_and(|p| training_bytes(&architecture, p, args) <= available)
    };
    // A network that does not fit even one feature is refused, by `check_fits`, for its
    // other widths, not for the file's.
    if !fits(1) {
        return None;
    }
    // The cost grows with the width: the largest that fits, by bisection.
    let (mut low, mut high) = (1usize, 1usize << 40);
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if fits(mid) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    Some(low)
}

/// About what training takes, in bytes. Per parameter: the weights, their gradient, the copy
/// each step records on the tape, the best epoch's copy, a checkpoint's copy, and the
/// optimiser's state (none for SGD, one moment for momentum, two for Adam). Per example of a
/// batch (or of an evaluation chunk of 1024): every layer's output and its gradient, before
/// and after the activation.
fn training_bytes(architecture: &Architecture, parameters: usize, args: &TrainArgs) -> u128 {
    let optimiser_state = match args.optimizer {
        OptimizerArg::Sgd => 0,
        OptimizerArg::Momentum => 1,
        OptimizerArg::Adam | OptimizerArg::Adamw => 2,
    };
    let per_parameter = 5 + optimiser_state;
    let rows = args.batch_size.max(1024) as u128;
    let elements =
        parameters as u128 * per_parameter + rows * architecture.activations_per_example() * 4;
    elements * std::mem::size_of::<E>() as u128
}

/// A byte count for a person: `25.6 GB`.
fn human_bytes(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
