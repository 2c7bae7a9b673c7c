//! `wengert train`: load, split, scale, train, evaluate, report. This module runs the steps;
//! each has a module of its own.

mod architecture;
mod checks;
mod data;
mod images;
mod net;
mod network;
mod progress;
pub(crate) mod report;
mod resume;
mod settings;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use wengert_io::{CheckpointDir, LoadOptions, Scalar};
use wengert_train::{Control, Every, Module, TrainState, Trainer};

use crate::E;
use crate::args::TrainArgs;
use crate::distributed::World;
use crate::output;
use crate::run_dir::{self, RunDir};
use checks::{check, check_threads};
use progress::Progress;
use report::{Outcome, Written};
use resume::{DATA, Resume, SETTINGS, find_resume};
use settings::{RunSettings, resumed_args};

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
    let data = data::prepare(args)?;
    let (train, validation, test) = (&data.train, &data.validation, &data.test);
    world.check_same(
        "data",
        format!(
            "{}; {} validation, {} test",
            data.fingerprint,
            validation.len(),
            test.len()
        )
        .as_bytes(),
    )?;
    if let Some(r) = &resume
        && r.data != data.fingerprint
    {
        return Err(format!(
            "{}: the run trained on {}, but these data are {}: did the data file change?",
            r.path.display(),
            r.data,
            data.fingerprint
        ));
    }
    let network::Setup {
        mut model,
        activation,
        optimizer,
        learning_rate,
        weight_decay,
        config,
    } = network::build(args, &data.architecture)?;

    let bar = progress::bar(args, train.len());
    if let Some(r) = &resume {
        progress::resume_at(
            &bar,
            r.state.epoch,
            train.len(),
            r.state.batch,
            config.batch_size,
        );
        say!(
            "resuming from {} (epoch {}, step {})",
            r.path.display(),
            r.state.epoch,
            r.state.history.steps
        );
    }
    say!(
        "training {} ({} parameters, {}{}) on {}: {} train, {} validation, {} test examples",
        data.architecture,
        model.parameter_count(),
        activation,
        if args.dropout > 0.0 {
            format!(", dropout {}", args.dropout)
        } else {
            String::new()
        },
        data.source,
        train.len(),
        validation.len(),
        test.len()
    );
    // Declared before the trainer, whose checkpoint hook borrows it.
    let saved = RefCell::new(Vec::new());
    let mut trainer = world.attach(
        Trainer::new(config, optimizer).with_callback(Progress::new(bar.clone(), args.epochs)),
        args.bucket_mib,
    )?;
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
    let fingerprint = data.fingerprint.clone();
    let saved_paths = &saved;
    trainer.checkpoint_every(Every::Epochs(1), move |state: &TrainState<E>| {
        // Every rank holds the same state; one writes it.
        if !writes {
            return Ok(Control::Continue);
        }
        let mut ckpt = state.to_checkpoint();
        ckpt.scalars
            .insert(SETTINGS.into(), Scalar::Text(settings.clone()));
        ckpt.scalars
            .insert(DATA.into(), Scalar::Text(fingerprint.clone()));
        let step = state.history.steps as u64;
        checkpoints
            .save(step, &ckpt)
            .map_err(|e| wengert_train::Error::Checkpoint(e.to_string()))?;
        saved_paths.borrow_mut().push(checkpoints.path_for(step));
        Ok(Control::Continue)
    });
    let started = Instant::now();
    let validation_set = (!validation.is_empty()).then_some(validation);
    let fitted = match resume {
        Some(r) => trainer.resume(&mut model, train, validation_set, r.state),
        None => trainer.fit(&mut model, train, validation_set),
    };
    let train_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let history = fitted.map_err(|e| e.to_string())?;
    if !world.writes() {
        return Ok(());
    }

    let train_eval = trainer.evaluate(&model, train).map_err(|e| e.to_string())?;
    let test_eval = if test.is_empty() {
        None
    } else {
        Some(trainer.evaluate(&model, test).map_err(|e| e.to_string())?)
    };
    let outcome = Outcome {
        history: &history,
        train: &train_eval,
        test: test_eval.as_ref(),
        train_seconds,
    };
    let setup_summary = report::Settings {
        activation,
        learning_rate,
        weight_decay,
    };
    let summary = report::summary(args, &data, &setup_summary, &outcome);
    output::write_all(out_dir, &history, &summary)?;
    crate::model::save(
        &out_dir.join("model.tape"),
        &model,
        &data.scaler,
        &data::run_info(args, train),
    )?;
    drop(trainer);
    let written = Written {
        dir: out_dir.to_path_buf(),
        checkpoints: saved
            .into_inner()
            .into_iter()
            .map(|path| {
                let kept = path.is_file();
                (path, kept)
            })
            .collect(),
    };
    report::print(&outcome, &written);
    Ok(())
}
