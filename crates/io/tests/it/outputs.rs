//! Outputs that destroy nothing they should not: a symbolic link is written through, a device
//! or a directory is never replaced, a killed write's debris is cleared by the next write and
//! a live write's file is not, and a run's checkpoints are its own.

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::array;
use wengert_io::{
    Checkpoint, CheckpointDir, DirLock, Error, LoadOptions, Scalar, Weights, write_atomic,
};

use crate::common::scratch;

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn checkpoint(step: u64) -> Checkpoint<f32> {
    let mut c = Checkpoint::default();
    c.arrays.insert("w".into(), array![step as f32].into_dyn());
    c.scalars.insert("step".into(), Scalar::U64(step));
    c
}

#[cfg(unix)]
#[test]
fn a_symbolic_link_is_written_through_to_its_target_and_stays_a_link() {
    use std::os::unix::fs::symlink;
    let tmp = scratch();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("target.csv"), b"old").unwrap();
    // A relative link, read from the link's own directory, through a second link.
    symlink("../b/target.csv", a.join("first")).unwrap();
    symlink("first", a.join("second")).unwrap();
    write_atomic(&a.join("second"), b"new").unwrap();
    assert_eq!(std::fs::read(b.join("target.csv")).unwrap(), b"new");
    for link in ["first", "second"] {
        let meta = std::fs::symlink_metadata(a.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} was replaced");
    }
    // The temporary file lived in the target's directory and is gone.
    assert_eq!(names(&a), ["first", "second"]);
    assert_eq!(names(&b), ["target.csv"]);
    // A dangling link: its target is created.
    symlink("../b/later.csv", a.join("dangling")).unwrap();
    write_atomic(&a.join("dangling"), b"made").unwrap();
    assert_eq!(std::fs::read(b.join("later.csv")).unwrap(), b"made");
    // A loop is an error, not a hang.
    symlink("loop2", a.join("loop1")).unwrap();
    symlink("loop1", a.join("loop2")).unwrap();
    let err = write_atomic(&a.join("loop1"), b"x").unwrap_err();
    assert!(err.to_string().contains("symbolic links"), "{err}");
}

#[test]
fn a_directory_or_a_device_is_refused_not_replaced() {
    let tmp = scratch();
    let err = write_atomic(tmp.path(), b"x").unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotARegularFile {
                kind: "a directory",
                ..
            }
        ),
        "{err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let err = write_atomic(Path::new("/dev/null"), b"x").unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot replace /dev/null: it is a character device"),
            "{err}"
        );
        let meta = std::fs::metadata("/dev/null").unwrap();
        assert!(meta.file_type().is_char_device());
        // A link to a device is refused as the device is.
        std::os::unix::fs::symlink("/dev/null", tmp.path().join("null")).unwrap();
        let err = write_atomic(&tmp.path().join("null"), b"x").unwrap_err();
        assert!(matches!(err, Error::NotARegularFile { .. }), "{err}");
    }
}

#[test]
fn the_next_write_removes_a_killed_writes_debris_and_only_that() {
    let tmp = scratch();
    let d = tmp.path();
    // A killed write's temporary file: nobody holds its lock.
    std::fs::write(d.join(".checkpoint-5.ckpt.4000000.0.tmp"), b"half").unwrap();
    // A live write's, locked by its writer.
    let live = d.join(".model.tape.4000001.3.tmp");
    let held = std::fs::File::create(&live).unwrap();
    held.lock().unwrap();
    // A named pipe of the pattern: not opened (that would wait for a writer), not removed.
    #[cfg(unix)]
    {
        let made = std::process::Command::new("mkfifo")
            .arg(d.join(".pipe.4000002.0.tmp"))
            .status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    }
    // Files of other patterns, someone else's.
    for other in [
        ".notes.tmp",
        "draft.1.2.tmp",
        ".x.1.2.tmp.keep",
        "model.tmp",
    ] {
        std::fs::write(d.join(other), b"mine").unwrap();
    }
    write_atomic(&d.join("metrics.json"), b"{}").unwrap();
    assert_eq!(
        names(d),
        [
            ".model.tape.4000001.3.tmp",
            ".notes.tmp",
            #[cfg(unix)]
            ".pipe.4000002.0.tmp",
            ".x.1.2.tmp.keep",
            "draft.1.2.tmp",
            "metrics.json",
            "model.tmp"
        ]
    );
    drop(held);
    write_atomic(&d.join("metrics.json"), b"{}").unwrap();
    assert!(!names(d).contains(&".model.tape.4000001.3.tmp".to_string()));
}

#[test]
fn two_runs_in_one_directory_prune_only_their_own_checkpoints() {
    let tmp = scratch();
    let d = tmp.path();
    let mut first = CheckpointDir::new(d, 2);
    let mut second = CheckpointDir::new(d, 2);
    assert_ne!(first.run_id(), second.run_id());
    // Files named like checkpoints that are not this type's: never read, never removed.
    std::fs::write(d.join("checkpoint-01.ckpt"), b"notes").unwrap();
    std::fs::write(d.join("checkpoint-007.ckpt"), b"more notes").unwrap();
    for step in 1..=4 {
        first.save(step, &checkpoint(step)).unwrap();
    }
    for step in [10, 20, 30] {
        second.save(step, &checkpoint(step)).unwrap();
    }
    first.save(5, &checkpoint(5)).unwrap();
    assert_eq!(first.own_steps(), [4, 5]);
    assert_eq!(second.own_steps(), [20, 30]);
    assert_eq!(first.steps().unwrap(), [4, 5, 20, 30]);
    assert_eq!(
        std::fs::read(d.join("checkpoint-01.ckpt")).unwrap(),
        b"notes"
    );
    assert!(d.join("checkpoint-007.ckpt").exists());
    // The other run's checkpoint at a step is not overwritten.
    let err = second.save(5, &checkpoint(99)).unwrap_err();
    assert!(matches!(err, Error::ForeignCheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("checkpoint-5.ckpt"), "{err}");
    let kept = Checkpoint::<f32>::load(first.path_for(5), &LoadOptions::default()).unwrap();
    assert_eq!(kept.u64("step").unwrap(), 5);
    // A file there that is not a checkpoint is replaced, as a damaged checkpoint would be.
    std::fs::write(d.join("checkpoint-40.ckpt"), b"garbage").unwrap();
    second.save(40, &checkpoint(40)).unwrap();
    assert_eq!(second.own_steps(), [30, 40]);

    // The newest that loads is the second run's; continuing it finds its own checkpoints.
    let latest = second
        .latest::<f32>(&LoadOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(latest.step, 40);
    assert_eq!(latest.run.as_deref(), Some(second.run_id()));
    assert_eq!(latest.checkpoint, checkpoint(40));
    let mut resumed = CheckpointDir::continuing::<f32>(
        d,
        2,
        latest.run.as_deref().unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(resumed.own_steps(), [30, 40]);
    resumed.save(50, &checkpoint(50)).unwrap();
    assert_eq!(resumed.steps().unwrap(), [4, 5, 40, 50]);
}

#[test]
fn a_checkpoint_carries_its_runs_identity_in_a_reserved_scalar() {
    let tmp = scratch();
    let mut dir = CheckpointDir::new(tmp.path(), 1);
    let mut ckpt = checkpoint(1);
    ckpt.scalars
        .insert(CheckpointDir::RUN_ID.into(), Scalar::Text("forged".into()));
    let path = dir.save(1, &ckpt).unwrap();
    let raw = Checkpoint::<f32>::load(path, &LoadOptions::default()).unwrap();
    assert_eq!(
        raw.scalars.get(CheckpointDir::RUN_ID),
        Some(&Scalar::Text(dir.run_id().to_string()))
    );
}

#[test]
fn a_locked_directory_is_refused_until_the_lock_is_dropped() {
    let tmp = scratch();
    let lock = DirLock::acquire(tmp.path()).unwrap();
    assert_eq!(lock.dir(), tmp.path());
    let err = DirLock::acquire(tmp.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("is locked by another run (process"),
        "{err}"
    );
    drop(lock);
    DirLock::acquire(tmp.path()).unwrap();
}

#[test]
fn safetensors_metadata_is_written_and_a_tensor_cannot_take_its_name() {
    let tmp = scratch();
    let path = tmp.path().join("w.safetensors");
    let mut weights: Weights<f32> = BTreeMap::new();
    weights.insert("w".into(), array![1.0f32, 2.0].into_dyn());
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("layout".to_string(), "row-major".to_string()),
    ]);
    wengert_io::export_safetensors_with_metadata(&path, &weights, &metadata).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let written = header.metadata().clone().unwrap();
    assert_eq!(written.get("format").map(String::as_str), Some("pt"));
    assert_eq!(written.get("layout").map(String::as_str), Some("row-major"));

    weights.insert("__metadata__".into(), array![3.0f32].into_dyn());
    for result in [
        wengert_io::export_safetensors(&path, &weights),
        wengert_io::export_safetensors_with_metadata(&path, &weights, &metadata),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::ReservedName { .. }), "{err}");
        assert!(err.to_string().contains("__metadata__"), "{err}");
    }
    // The earlier file is untouched.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
