//! `wengert train`: load, split, scale, train, evaluate, report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use wengert_io::{Checkpoint, CheckpointDir, LoadOptions, Scalar};
use wengert_train::loaders::{CsvOptions, Header, LabelColumn, Labels, load_csv, load_mnist};
use wengert_train::{
    Activation, Adam, Callback, Control, Dataset, EpochRecord, Every, Mlp, Module, Optimizer, Sgd,
    Standardizer, StepInfo, StopReason, TrainConfig, TrainState, Trainer, datasets,
};

use crate::args::{ActivationArg, HeaderArg, OptimizerArg, TrainArgs};
use crate::distributed::World;
use crate::output::{self, Summary};
use crate::run_dir::{self, RunDir};
use crate::run_info::{DataSource, RunInfo, check_class_name, file_crc32};
use crate::{memory, model};

/// The most worker threads `--threads` may ask for: more than any machine this runs on has
/// cores, and few enough to start in a moment.
pub const MAX_THREADS: usize = 1024;

/// The element type the command trains in.
pub type E = f32;

/// The checkpoint entry holding the run's settings (JSON of [`RunSettings`]).
const SETTINGS: &str = "cli.settings";
/// The checkpoint entry describing the training set, to refuse resuming on other data.
const DATA: &str = "cli.data";

/// The options that decide a run, saved in every checkpoint: a resumed run takes them from
/// there. Field names are the options' clap ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunSettings {
    data: Option<PathBuf>,
    mnist: Option<PathBuf>,
    /// `data` and `mnist` made absolute, to find them from another directory.
    data_file: Option<PathBuf>,
    mnist_dir: Option<PathBuf>,
    label_column: String,
    header: HeaderArg,
    hidden: Vec<usize>,
    activation: ActivationArg,
    optimizer: OptimizerArg,
    lr: Option<f64>,
    weight_decay: Option<f64>,
    batch_size: usize,
    /// Absent from the checkpoints of runs that did not accumulate.
    #[serde(default = "one")]
    accumulate: usize,
    seed: u64,
    validation_split: f64,
    test_split: f64,
    patience: usize,
}

impl RunSettings {
    /// The settings of `args`.
    fn of(args: &TrainArgs) -> Self {
        let absolute = |p: &Option<PathBuf>| p.as_ref().and_then(|p| std::fs::canonicalize(p).ok());
        RunSettings {
            data: args.data.clone(),
            mnist: args.mnist.clone(),
            data_file: absolute(&args.data),
            mnist_dir: absolute(&args.mnist),
            label_column: args.label_column.clone(),
            header: args.header,
            hidden: args.hidden.clone(),
            activation: args.activation,
            optimizer: args.optimizer,
            lr: args.lr,
            weight_decay: args.weight_decay,
            batch_size: args.batch_size,
            accumulate: args.accumulate,
            seed: args.seed,
            validation_split: args.validation_split,
            test_split: args.test_split,
            patience: args.patience,
        }
    }

    /// `args` with these settings. A data path is kept as it was given if it still names
    /// the same file from here, else its absolute form is used.
    fn apply(self, args: &TrainArgs) -> TrainArgs {
        let here = |given: Option<PathBuf>, absolute: Option<PathBuf>| match (&given, &absolute) {
            (Some(g), Some(a)) if std::fs::canonicalize(g).ok().as_ref() != Some(a) => absolute,
            _ => given,
        };
        TrainArgs {
            data: here(self.data, self.data_file),
            mnist: here(self.mnist, self.mnist_dir),
            label_column: self.label_column,
            header: self.header,
            hidden: self.hidden,
            activation: self.activation,
            optimizer: self.optimizer,
            lr: self.lr,
            weight_decay: self.weight_decay,
            batch_size: self.batch_size,
            accumulate: self.accumulate,
            seed: self.seed,
            validation_split: self.validation_split,
            test_split: self.test_split,
            patience: self.patience,
            ..args.clone()
        }
    }
}

/// One micro-batch per step: the setting of a run saved before `--accumulate` existed.
fn one() -> usize {
    1
}

/// A run found to resume: its trainer state, identity, settings and training-set description.
struct Resume {
    path: PathBuf,
    state: TrainState<E>,
    /// The run's identity (`None` for a checkpoint saved before runs had one).
    run: Option<String>,
    settings: RunSettings,
    data: String,
}

/// Runs `wengert train`; `explicit` names the options given on the command line (clap ids).
/// The error is a one-line message.
pub fn run(args: &TrainArgs, explicit: &[String]) -> Result<(), String> {
    // Before the pool starts its threads.
    check_threads(args)?;
    // Training runs on a worker of its own pool: the matrix products and the optimiser then split
    // work through the workers' own queues, where a call from outside a pool would go through
    // rayon's global injector on every product (slower, and allocating). MPI lives on that
    // worker too: it is started, used and finished by the one thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .map_err(|e| format!("cannot start {} threads: {e}", args.threads.unwrap_or(0)))?;
    pool.install(|| {
        let world = World::start()?;
        let result = run_in(&world, args, explicit);
        world.finish(result)
    })
}

/// [`run`] as one rank of `world`, on a worker of the training pool.
fn run_in(world: &World, args: &TrainArgs, explicit: &[String]) -> Result<(), String> {
    // Only the rank that writes holds the directories: the run being resumed is locked first,
    // so that one still writing its directory is refused.
    let writes = world.writes();
    let (resume, source) = match &args.resume {
        Some(dir) => {
            let source = if writes {
                run_dir::lock_source(dir)?
            } else {
                None
            };
            (Some(find_resume(dir, args.keep_checkpoints)?), source)
        }
        None => (None, None),
    };
    let mut args = match &resume {
        Some(r) => resumed_args(args, explicit, r)?,
        None => args.clone(),
    };
    // N ranks need at least N micro-batches: one each, unless --accumulate says otherwise.
    let ranks = world.ranks();
    if resume.is_none()
        && ranks > 1
        && ranks.is_power_of_two()
        && !explicit.iter().any(|id| id == "accumulate")
    {
        args.accumulate = ranks;
    }
    check(&args)?;
    let args = agree(world, args, resume.as_ref())?;
    // Before any data is read: the output directory is made, checked and locked.
    let out = if writes {
        Some(output_dir(&args, source)?)
    } else {
        None
    };
    let out_path = out
        .as_ref()
        .map_or_else(PathBuf::new, |d| d.path().to_path_buf());
    let result = train_in_pool(world, &args, resume, &out_path);
    if result.is_err()
        && let Some(out) = out
    {
        out.discard_if_unused();
    }
    result
}

/// Checks that every rank runs the same binary with the same settings (and resumes the same
/// checkpoint); only rank 0 shows progress.
fn agree(world: &World, mut args: TrainArgs, resume: Option<&Resume>) -> Result<TrainArgs, String> {
    if world.ranks() == 1 {
        return Ok(args);
    }
    world.check_same_binary()?;
    let settings = serde_json::to_string(&RunSettings::of(&args)).map_err(|e| e.to_string())?;
    let resumed = resume.map(|r| (r.state.epoch, r.state.history.steps, r.data.clone()));
    let run = format!("{settings} epochs {} resume {resumed:?}", args.epochs);
    world.check_same("settings", run.as_bytes())?;
    if !world.writes() {
        args.quiet = true;
    }
    Ok(args)
}

/// The run's output directory, locked: `--out` (which must not hold another run), else the
/// resumed run's own directory (`source`, locked already if it could be), else a new
/// `runs/<timestamp>`.
fn output_dir(args: &TrainArgs, source: Option<RunDir>) -> Result<RunDir, String> {
    if let Some(from) = &args.resume
        && args.out.as_ref().is_none_or(|out| same_dir(out, from))
    {
        return match source {
            Some(dir) => Ok(dir),
            None => RunDir::open(from, "--resume"),
        };
    }
    match &args.out {
        Some(out) => {
            let dir = RunDir::open(out, "--out")?;
            dir.refuse_another_run("--out")?;
            Ok(dir)
        }
        None => RunDir::new_default(),
    }
}

/// Whether `a` and `b` are one existing directory.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The body of [`run`], on a worker of the training pool, writing into `out_dir`.
fn train_in_pool(
    world: &World,
    args: &TrainArgs,
    resume: Option<Resume>,
    out_dir: &Path,
) -> Result<(), String> {
    let (source, rest, test) = load(args)?;
    // The network's widths are known once the data are: refuse one that cannot fit before
    // the data are copied into splits and scaled.
    let mut sizes = vec![rest.n_features()];
    sizes.extend(&args.hidden);
    sizes.push(rest.n_outputs());
    check_fits(&sizes, args, &source)?;
    let (train, validation) = rest
        .split(args.validation_split, args.seed)
        .map_err(|e| e.to_string())?;
    if train.is_empty() {
        return Err(format!(
            "no training examples left after holding out the test and validation sets ({} examples in all)",
            rest.len() + test.len()
        ));
    }
    let scaler = Standardizer::fit(train.features());
    let scale = |d: &Dataset<E>| d.scaled(&scaler).map_err(|e| e.to_string());
    let (train, validation, test) = (scale(&train)?, scale(&validation)?, scale(&test)?);
    let data_id = describe(&train);
    world.check_same(
        "data",
        format!(
            "{data_id}; {} validation, {} test",
            validation.len(),
            test.len()
        )
        .as_bytes(),
    )?;
    if let Some(r) = &resume
        && r.data != data_id
    {
        return Err(format!(
            "{}: the run trained on {}, but these data are {data_id}: did the data file change?",
            r.path.display(),
            r.data
        ));
    }

    let activation = match args.activation {
        ActivationArg::Relu => Activation::Relu,
        ActivationArg::Tanh => Activation::Tanh,
        ActivationArg::Sigmoid => Activation::Sigmoid,
    };
    let mut model = Mlp::<E>::builder(&sizes)
        .activation(activation)
        .seed(args.seed)
        .build()
        .map_err(|e| e.to_string())?;

    let lr = args.lr.unwrap_or(match args.optimizer {
        OptimizerArg::Sgd | OptimizerArg::Momentum => 0.05,
        OptimizerArg::Adam | OptimizerArg::Adamw => 1e-3,
    });
    let weight_decay = args.weight_decay.unwrap_or(match args.optimizer {
        OptimizerArg::Adamw => 0.01,
        _ => 0.0,
    });
    let optimizer: Box<dyn Optimizer<E>> = match args.optimizer {
        OptimizerArg::Sgd => boxed(Sgd::builder(lr).weight_decay(weight_decay).build()),
        OptimizerArg::Momentum => boxed(
            Sgd::builder(lr)
                .momentum(0.9)
                .weight_decay(weight_decay)
                .build(),
        ),
        OptimizerArg::Adam => boxed(Adam::builder(lr).weight_decay(weight_decay).build()),
        OptimizerArg::Adamw => boxed(
            Adam::builder(lr)
                .decoupled_weight_decay(weight_decay)
                .build(),
        ),
    }
    .map_err(|e| e.to_string())?;
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        accumulate: args.accumulate,
        patience: (args.patience > 0).then_some(args.patience),
        seed: args.seed,
        ..TrainConfig::default()
    };

    let batches = train.len().div_ceil(args.batch_size.min(train.len()));
    let bar = progress_bar(args, (args.epochs * batches) as u64);
    if let Some(r) = &resume {
        bar.set_position(r.state.history.steps as u64);
        say!(
            "resuming from {} (epoch {}, step {})",
            r.path.display(),
            r.state.epoch,
            r.state.history.steps
        );
    }
    say!(
        "training an MLP {sizes:?} ({} parameters, {}) on {source}: {} train, {} validation, {} test examples",
        model.parameter_count(),
        activation,
        train.len(),
        validation.len(),
        test.len()
    );
    let mut trainer =
        world.attach(Trainer::new(config, optimizer).with_callback(Progress::new(bar.clone())));
    // A resumed run keeps its identity, and with it its checkpoints already in `out_dir`. Only
    // the rank that writes has a directory; the others never save.
    let mut checkpoints = match resume.as_ref().and_then(|r| r.run.as_deref()) {
        Some(run) if world.writes() => CheckpointDir::continuing::<E>(
            out_dir,
            args.keep_checkpoints,
            run,
            &LoadOptions::default(),
        )
        .map_err(|e| e.to_string())?,
        _ => CheckpointDir::new(out_dir, args.keep_checkpoints),
    };
    let settings = serde_json::to_string(&RunSettings::of(args)).map_err(|e| e.to_string())?;
    let writes = world.writes();
    trainer.checkpoint_every(Every::Epochs(1), move |state: &TrainState<E>| {
        // Every rank holds the same state; one writes it.
        if !writes {
            return Ok(Control::Continue);
        }
        let mut ckpt = state.to_checkpoint();
        ckpt.scalars
            .insert(SETTINGS.into(), Scalar::Text(settings.clone()));
        ckpt.scalars
            .insert(DATA.into(), Scalar::Text(data_id.clone()));
        checkpoints
            .save(state.history.steps as u64, &ckpt)
            .map_err(|e| wengert_train::Error::Checkpoint(e.to_string()))?;
        Ok(Control::Continue)
    });
    let started = Instant::now();
    let validation_set = (!validation.is_empty()).then_some(&validation);
    let fitted = match resume {
        Some(r) => trainer.resume(&mut model, &train, validation_set, r.state),
        None => trainer.fit(&mut model, &train, validation_set),
    };
    let train_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let history = fitted.map_err(|e| e.to_string())?;
    if !world.writes() {
        return Ok(());
    }

    let train_eval = trainer
        .evaluate(&model, &train)
        .map_err(|e| e.to_string())?;
    let test_eval = if test.is_empty() {
        None
    } else {
        Some(trainer.evaluate(&model, &test).map_err(|e| e.to_string())?)
    };
    let summary = Summary {
        source,
        seed: args.seed,
        sizes,
        activation: activation.to_string(),
        optimizer: args.optimizer.name().to_string(),
        learning_rate: lr,
        weight_decay,
        batch_size: args.batch_size,
        epochs: history.epochs.len(),
        best_epoch: history.best_epoch,
        stopped_early: history.stop_reason == StopReason::EarlyStopping,
        train_examples: train.len(),
        validation_examples: validation.len(),
        test_examples: test.len(),
        final_loss: train_eval.loss,
        train_accuracy: train_eval.accuracy.unwrap_or(0.0),
        validation_accuracy: history
            .epochs
            .get(history.best_epoch.unwrap_or(0).saturating_sub(1))
            .and_then(|r| r.val_accuracy),
        test_loss: test_eval.as_ref().map(|t| t.loss),
        test_accuracy: test_eval.as_ref().and_then(|t| t.accuracy),
        test_confusion: test_eval
            .as_ref()
            .and_then(|t| t.confusion.as_ref())
            .map(|c| c.rows()),
        train_seconds,
    };
    output::write_all(out_dir, &history, &summary)?;
    model::save(
        &out_dir.join("model.tape"),
        &model,
        &scaler,
        &run_info(args, &train),
    )?;

    say!(
        "{} after {} epochs ({} steps), best epoch {}",
        match history.stop_reason {
            StopReason::EarlyStopping => "stopped early",
            StopReason::Callback | StopReason::Paused => "stopped",
            StopReason::Completed => "finished",
        },
        history.epochs.len(),
        history.steps,
        history
            .best_epoch
            .map_or("-".to_string(), |e| e.to_string()),
    );
    say!(
        "train accuracy {:.2}%  (loss {:.4})",
        100.0 * summary.train_accuracy,
        summary.final_loss
    );
    if let Some(t) = &test_eval {
        say!(
            "test accuracy  {:.2}%  (loss {:.4})",
            100.0 * t.accuracy.unwrap_or(0.0),
            t.loss
        );
        if let Some(c) = &t.confusion {
            say!("test confusion matrix ({c}", c = indent(&c.to_string()));
        }
    }
    say!("time {train_seconds:.2} s");
    say!(
        "wrote {} and {}",
        out_dir.join("metrics.json").display(),
        out_dir.join("model.tape").display()
    );
    Ok(())
}

/// An optimiser just built (its settings checked), boxed for the trainer.
fn boxed<O: Optimizer<E> + 'static>(
    built: wengert_train::Result<O>,
) -> wengert_train::Result<Box<dyn Optimizer<E>>> {
    Ok(Box::new(built?))
}

/// The newest checkpoint in `dir` that loads, with the run's settings.
fn find_resume(dir: &Path, keep: usize) -> Result<Resume, String> {
    let found = CheckpointDir::new(dir, keep)
        .latest::<E>(&LoadOptions::default())
        .map_err(|e| match e {
            wengert_io::Error::Io { .. } => e.to_string(),
            e => format!(
                "{}: no checkpoint there loads; the newest: {e}",
                dir.display()
            ),
        })?
        .ok_or_else(|| {
            format!(
                "{}: no checkpoint to resume from (no checkpoint-<step>.ckpt file)",
                dir.display()
            )
        })?;
    for (path, err) in &found.skipped {
        eprintln!("warning: skipped {}: {err}", path.display());
    }
    let path = found.path;
    let run = found.run;
    let ckpt: Checkpoint<E> = found.checkpoint;
    let text = |name: &str| match ckpt.scalars.get(name) {
        Some(Scalar::Text(t)) => Ok(t.clone()),
        _ => Err(format!(
            "{}: not a checkpoint of `wengert train` (no {name})",
            path.display()
        )),
    };
    let settings: RunSettings = serde_json::from_str(&text(SETTINGS)?)
        .map_err(|e| format!("{}: {SETTINGS}: {e}", path.display()))?;
    let data = text(DATA)?;
    let state =
        TrainState::from_checkpoint(&ckpt).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Resume {
        path,
        state,
        run,
        settings,
        data,
    })
}

/// The resumed run's options: its saved settings, with `args`' epochs, output and display
/// options. An option given explicitly with a value other than the saved one is an error.
fn resumed_args(args: &TrainArgs, explicit: &[String], r: &Resume) -> Result<TrainArgs, String> {
    let to_map = |s: &RunSettings| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (given, saved) = (to_map(&RunSettings::of(args)), to_map(&r.settings));
    // Paths are compared as the files they name (`./a.csv` is `a.csv`).
    let same = |id: &str, g: &serde_json::Value, s: &serde_json::Value| {
        let absolute = match id {
            "data" => "data_file",
            "mnist" => "mnist_dir",
            _ => return g == s,
        };
        g == s
            || (given.get(absolute).is_some_and(|a| !a.is_null())
                && given.get(absolute) == saved.get(absolute))
    };
    for id in explicit {
        if let (Some(g), Some(s)) = (given.get(id), saved.get(id))
            && !same(id, g, s)
        {
            return Err(format!(
                "--{} {g} differs from the resumed run's {s}: a resumed run keeps its settings \
                 (only --epochs may change)",
                id.replace('_', "-")
            ));
        }
    }
    if args.epochs < r.state.epoch {
        return Err(format!(
            "--epochs {} is fewer than the {} the run in {} has done",
            args.epochs,
            r.state.epoch,
            r.path.display()
        ));
    }
    let mut resumed = r.settings.clone().apply(args);
    // A data path given again names the same file, perhaps from another directory: use it.
    if explicit.iter().any(|id| id == "data") {
        resumed.data = args.data.clone();
    }
    if explicit.iter().any(|id| id == "mnist") {
        resumed.mnist = args.mnist.clone();
    }
    Ok(resumed)
}

/// The training set's size and a CRC-32 of its features and labels: what a resumed run must
/// train on again.
fn describe(train: &Dataset<E>) -> String {
    // Row by row, so that a large data set is not copied whole.
    let mut crc = crc32fast::Hasher::new();
    let mut bytes = Vec::new();
    for row in train.features().rows() {
        bytes.clear();
        bytes.extend(row.iter().flat_map(|x| x.to_le_bytes()));
        crc.update(&bytes);
    }
    for &label in train.labels().unwrap_or(&[]) {
        crc.update(&(label as u64).to_le_bytes());
    }
    format!(
        "{} examples of {} features (CRC-32 {:08x})",
        train.len(),
        train.n_features(),
        crc.finalize()
    )
}

/// A labelled CSV file, with `--label-column` and `--header`, its labels read as `labels`
/// says, at most `max_features` wide. Class names must be printable (they are printed, and
/// written into predictions).
pub fn load_labelled_csv(
    path: &Path,
    label_column: &str,
    header: HeaderArg,
    labels: Labels,
    max_features: Option<usize>,
) -> Result<Dataset<E>, String> {
    let options = CsvOptions {
        label_column: label_column
            .parse::<LabelColumn>()
            .map_err(|e| e.to_string())?,
        header: header_option(header),
        labels,
        max_features,
        ..CsvOptions::default()
    };
    let data = load_csv::<E>(path, &options).map_err(|e| e.to_string())?;
    for name in data.class_names().unwrap_or(&[]) {
        check_class_name(name).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(data)
}

/// `--header` as the loader's option.
pub fn header_option(header: HeaderArg) -> Header {
    match header {
        HeaderArg::Auto => Header::Auto,
        HeaderArg::Yes => Header::Present,
        HeaderArg::No => Header::Absent,
    }
}

/// Checks the options that clap cannot: one line naming the option that cannot work.
fn check(args: &TrainArgs) -> Result<(), String> {
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
    if args.hidden.contains(&0) {
        return Err(format!(
            "--hidden widths must be positive, got {:?}",
            args.hidden
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
fn check_threads(args: &TrainArgs) -> Result<(), String> {
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
fn check_fits(sizes: &[usize], args: &TrainArgs, source: &str) -> Result<(), String> {
    let layers = format!("--hidden {:?}: the network {sizes:?}", args.hidden);
    let parameters = Mlp::<E>::builder(sizes)
        .parameter_count()
        .map_err(|_| format!("{layers} has more parameters than this machine can address"))?;
    let needed = training_bytes(sizes, parameters, args);
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

/// The most input features a network of `--hidden` (and two classes, the fewest) can take
/// in the memory available, so that a file too wide is refused at its first row; `None`
/// where the memory is unknown or the hidden layers alone do not fit.
fn widest_input(args: &TrainArgs) -> Option<usize> {
    let available = u128::from(memory::available_memory()?);
    let fits = |features: usize| {
        let mut sizes = vec![features];
        sizes.extend(&args.hidden);
        sizes.push(2);
        Mlp::<E>::builder(&sizes)
            .parameter_count()
            .is_ok_and(|p| training_bytes(&sizes, p, args) <= available)
    };
    // A network that does not fit even one feature is refused, by `check_fits`, for its
    // hidden widths, not for the file's.
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
fn training_bytes(sizes: &[usize], parameters: usize, args: &TrainArgs) -> u128 {
    let optimiser_state = match args.optimizer {
        OptimizerArg::Sgd => 0,
        OptimizerArg::Momentum => 1,
        OptimizerArg::Adam | OptimizerArg::Adamw => 2,
    };
    let per_parameter = 5 + optimiser_state;
    let rows = args.batch_size.max(1024) as u128;
    let widths: u128 = sizes.iter().map(|&w| w as u128).sum();
    let elements = parameters as u128 * per_parameter + rows * widths * 4;
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

/// What `model.tape` records about this run (see [`RunInfo`]).
fn run_info(args: &TrainArgs, train: &Dataset<E>) -> RunInfo {
    let absolute = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let data = match (&args.data, &args.mnist) {
        (Some(path), _) => DataSource::Csv {
            path: absolute(path),
            crc32: file_crc32(path).ok(),
            label_column: args.label_column.clone(),
            header: args.header,
        },
        (None, Some(dir)) => DataSource::Mnist { dir: absolute(dir) },
        (None, None) => DataSource::Digits,
    };
    RunInfo {
        data: Some(data),
        seed: Some(args.seed),
        // MNIST's test set is its own t10k files.
        test_split: args.mnist.is_none().then_some(args.test_split),
        validation_split: Some(args.validation_split),
        class_names: train.class_names().map(<[String]>::to_vec),
    }
}

/// The data's description, the examples to train and validate on, and the test set.
fn load(args: &TrainArgs) -> Result<(String, Dataset<E>, Dataset<E>), String> {
    if let Some(dir) = &args.mnist {
        let (train, test) = load_mnist::<E>(dir).map_err(|e| e.to_string())?;
        return Ok((format!("MNIST from {}", dir.display()), train, test));
    }
    let (source, all) = match &args.data {
        Some(path) => {
            let widest = widest_input(args);
            let data = load_labelled_csv(path, &args.label_column, args.header, Labels::Detect, widest)
                .map_err(|e| match widest {
                    Some(w) if e.contains(&format!("more than the {w} allowed")) => format!(
                        "{e}: with --hidden {:?}, a wider first layer would not fit in the memory available",
                        args.hidden
                    ),
                    _ => e,
                })?;
            (path.display().to_string(), data)
        }
        None => (
            "the UCI digits (embedded)".to_string(),
            datasets::digits::<E>().map_err(|e| e.to_string())?,
        ),
    };
    if all.classes() == Some(1) {
        return Err(format!(
            "{source}: every example has label 0; nothing to classify"
        ));
    }
    let (rest, test) = all
        .split(args.test_split, args.seed)
        .map_err(|e| e.to_string())?;
    Ok((source, rest, test))
}

/// The first line of `text` closed with `)`, the others indented.
pub fn indent(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            out.push_str(line);
            out.push(')');
        } else {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out
}

fn progress_bar(args: &TrainArgs, steps: u64) -> ProgressBar {
    if args.quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {elapsed_precise} {msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// The progress bar, as a training callback: the running loss after every step, the
/// validation accuracy after every epoch.
struct Progress {
    bar: ProgressBar,
    running: Option<f64>,
    last_epoch: String,
}

impl Progress {
    fn new(bar: ProgressBar) -> Self {
        Progress {
            bar,
            running: None,
            last_epoch: String::new(),
        }
    }
}

impl Callback for Progress {
    fn on_step(&mut self, step: &StepInfo) -> Control {
        // An exponential moving average: smooth enough to read, quick to follow.
        let running = match self.running {
            Some(r) => 0.95 * r + 0.05 * step.loss,
            None => step.loss,
        };
        self.running = Some(running);
        self.bar.set_prefix(step.epoch.to_string());
        self.bar.inc(1);
        if step.batch == step.batches || step.step.is_multiple_of(8) {
            self.bar
                .set_message(format!("loss {running:.4}{}", self.last_epoch));
        }
        Control::Continue
    }

    fn on_epoch(&mut self, record: &EpochRecord) -> Control {
        if let Some(acc) = record.val_accuracy {
            self.last_epoch = format!("  val acc {:.2}%", 100.0 * acc);
        }
        Control::Continue
    }
}
