//! Crash safety: a write that fails after k bytes, for every k over the whole file, leaves the
//! previous file in place and loadable.

use std::io::Write;

use wengert_io::{Checkpoint, LoadOptions, Scalar, TapeModel, write_atomic_with};

use crate::common::{model_bytes, scratch, values};

/// A writer that accepts `left` bytes, then fails as a full disk or a dying process would.
struct FailAfter<W> {
    inner: W,
    left: usize,
}

impl<W: Write> Write for FailAfter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            return Err(std::io::Error::other("injected failure"));
        }
        // A short write at the boundary, as a real device may do.
        let n = buf.len().min(self.left);
        let n = self.inner.write(&buf[..n])?;
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn checkpoint(step: u64) -> Checkpoint<f32> {
    let mut c = Checkpoint::default();
    c.arrays.insert("w".into(), values::<f32>(&[8, 4], step));
    c.arrays
        .insert("adam.m.w".into(), values::<f32>(&[8, 4], step + 1));
    c.scalars.insert("step".into(), Scalar::U64(step));
    c.sections.insert("rng".into(), step.to_le_bytes().to_vec());
    c
}

#[test]
fn a_write_failing_after_any_number_of_bytes_leaves_the_previous_checkpoint() {
    let dir = scratch();
    let path = dir.path().join("checkpoint-100.ckpt");
    let old = checkpoint(100);
    old.save(&path).unwrap();
    let new_bytes = checkpoint(200).to_bytes();
    let mut failures = 0;
    for k in 0..new_bytes.len() {
        let result = write_atomic_with(&path, |file| {
            FailAfter {
                inner: file,
                left: k,
            }
            .write_all(&new_bytes)
        });
        assert!(result.is_err(), "a write cut at {k} bytes reported success");
        let loaded = Checkpoint::<f32>::load(&path, &LoadOptions::default()).unwrap();
        assert_eq!(loaded, old, "after a failure at byte {k}");
        failures += 1;
    }
    // No temporary file is left behind by a failed write.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    eprintln!(
        "crash safety: {failures} failed writes (k = 0..{}), the previous checkpoint loaded after each",
        new_bytes.len()
    );
    // The whole file goes through.
    write_atomic_with(&path, |file| {
        FailAfter {
            inner: file,
            left: new_bytes.len(),
        }
        .write_all(&new_bytes)
    })
    .unwrap();
    let loaded = Checkpoint::<f32>::load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.u64("step").unwrap(), 200);
}

#[test]
fn debris_of_a_crashed_write_does_not_disturb_the_target() {
    let dir = scratch();
    let path = dir.path().join("model.tape");
    let bytes = model_bytes::<f32>();
    wengert_io::write_atomic(&path, &bytes).unwrap();
    // A process killed mid-write leaves its temporary file; a partial copy of the new file.
    std::fs::write(
        dir.path().join(".model.tape.999.0.tmp"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let model = TapeModel::<f32>::load(&path, &LoadOptions::default()).unwrap();
    model.save(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn resuming_skips_corrupt_checkpoints_and_only_the_last_k_are_kept() {
    use wengert_io::{CheckpointDir, Error};
    let tmp = scratch();
    let mut dir = CheckpointDir::new(tmp.path().join("run"), 3);
    assert!(matches!(
        dir.latest::<f32>(&LoadOptions::default()),
        Err(Error::Io { .. })
    ));
    for step in 1..=5 {
        dir.save(step * 100, &checkpoint(step * 100)).unwrap();
    }
    std::fs::write(
        tmp.path().join("run/.checkpoint-600.ckpt.1.0.tmp"),
        b"debris",
    )
    .unwrap();
    std::fs::write(tmp.path().join("run/checkpoint-x.ckpt"), b"not a step").unwrap();
    assert_eq!(dir.steps().unwrap(), [300, 400, 500]);
    let latest = dir.latest::<f32>(&LoadOptions::default()).unwrap().unwrap();
    assert_eq!((latest.step, latest.skipped.len()), (500, 0));
    assert_eq!(latest.checkpoint, checkpoint(500));

    // Corrupt the newest (one byte) and truncate the next: resume from the third.
    let newest = dir.path_for(500);
    let mut bytes = std::fs::read(&newest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&newest, &bytes).unwrap();
    let second = dir.path_for(400);
    let bytes = std::fs::read(&second).unwrap();
    std::fs::write(&second, &bytes[..bytes.len() / 2]).unwrap();
    let resumed = dir.latest::<f32>(&LoadOptions::default()).unwrap().unwrap();
    assert_eq!(resumed.step, 300);
    assert_eq!(resumed.checkpoint, checkpoint(300));
    assert!(matches!(
        resumed.skipped[0].1,
        Error::ChecksumMismatch { .. }
    ));
    assert!(matches!(resumed.skipped[1].1, Error::LengthMismatch { .. }));

    // With every checkpoint bad, the newest one's error is the answer.
    std::fs::write(dir.path_for(300), b"").unwrap();
    assert!(matches!(
        dir.latest::<f32>(&LoadOptions::default()),
        Err(Error::ChecksumMismatch { .. })
    ));
    let empty = CheckpointDir::new(tmp.path(), 1);
    assert!(
        empty
            .latest::<f32>(&LoadOptions::default())
            .unwrap()
            .is_none()
    );
}
