//! W5: peak resident memory and heap allocations per step of a process that runs W2 at batch 128
//! for 200 steps. The runner starts itself as a child for each engine, so that each peak belongs
//! to one engine alone.

use crate::mlp::{Mlp, NoTape, Sgd, TapeMlp};
use crate::record::Record;
use crate::shared::{Rng, SEED, W2_LAYERS, W2_LR, W5_BATCH, W5_STEPS, label_vec, normal_vec};
use wengert_testkit::alloc::allocations;

/// One training step of some engine on the network it is given.
type StepFn = dyn FnMut(&mut Mlp) -> Result<(), String> + Send;

/// The process's peak resident set (`VmHWM` in `/proc/self/status`), in MiB.
pub fn peak_rss_mib() -> Result<f64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    parse_vm_hwm(&status).ok_or_else(|| "no VmHWM line in /proc/self/status".to_string())
}

/// The process's resident set now (`VmRSS`), in MiB.
pub fn rss_mib() -> Result<f64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    parse_status_kib(&status, "VmRSS:").ok_or_else(|| "no VmRSS line in /proc/self/status".into())
}

fn parse_vm_hwm(status: &str) -> Option<f64> {
    parse_status_kib(status, "VmHWM:")
}

/// A `/proc/self/status` line's figure in kB, as MiB.
fn parse_status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What one step must hold, in MiB: parameters, their gradients, the optimiser's state (none for
/// SGD) and the step's activations (the input, and each layer's product and activation).
pub fn step_state_mib(layers: &[usize], batch: usize) -> f64 {
    let params: usize = layers.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
    let activations: usize = batch * (layers[0] + 2 * layers[1..].iter().sum::<usize>());
    (2 * params + activations) as f64 * 4.0 / (1024.0 * 1024.0)
}

/// Runs W5 for `engine` (`wengert` or `no-tape`) in this process and returns its record. The
/// allocation count is only meaningful in a binary that installs
/// [`wengert_testkit::count_allocations!`], as the runner does.
pub fn w5_child(engine: &str, threads: usize) -> Result<Record, String> {
    // What the process holds before the workload (the binary, its libraries, the runtime): the
    // "fixed few MiB" of W5's bound, reported beside the peak.
    let start_rss = rss_mib()?;
    let mut rng = Rng::new(SEED);
    let x = normal_vec(&mut rng, W5_BATCH * W2_LAYERS[0]);
    let labels = label_vec(&mut rng, W5_BATCH, W2_LAYERS[3]);
    let mut mlp = Mlp::new(&W2_LAYERS, &mut rng);
    let mut sgd = Sgd { lr: W2_LR };
    let steady_from = W5_STEPS / 2;
    let mut counted_from = 0;
    let mut step: Box<StepFn> = match engine {
        "wengert" => {
            let mut tape = TapeMlp::new(&mlp).map_err(|e| e.to_string())?;
            // The parameters now live on the tape; the harness's copy would only inflate the
            // peak.
            mlp.params = Vec::new();
            Box::new(move |_mlp| {
                tape.step(&x, &labels, &mut sgd)
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        }
        "no-tape" => {
            let mut hand = NoTape::new();
            Box::new(move |mlp| {
                hand.step(mlp, &x, &labels, &mut sgd);
                Ok(())
            })
        }
        other => return Err(format!("W5: unknown engine '{other}'")),
    };
    // The steps run inside the pool, as a training loop should: rayon's jobs then go to its
    // workers' own queues, while work injected from outside a pool goes through a global queue
    // that allocates a block every 63 jobs (0.13 allocations per step here).
    let pool = crate::workloads::pool(threads)?;
    crate::workloads::in_pool(&pool, || -> Result<(), String> {
        for i in 0..W5_STEPS {
            if i == steady_from {
                counted_from = allocations();
            }
            step(&mut mlp)?;
        }
        Ok(())
    })?;
    let per_step = (allocations() - counted_from) as f64 / (W5_STEPS - steady_from) as f64;
    Ok(Record::new(
        "W5",
        engine,
        threads,
        &[("batch", W5_BATCH as u64), ("steps", W5_STEPS as u64)],
        &[
            ("peak_rss_mib", peak_rss_mib()?),
            ("start_rss_mib", start_rss),
            ("allocs_per_step", per_step),
            ("step_state_mib", step_state_mib(&W2_LAYERS, W5_BATCH)),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_in_mib() {
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t  2048 kB\n"), Some(2.0));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
        assert!(peak_rss_mib().unwrap() > 0.0);
        assert!(rss_mib().unwrap() > 0.0);
        // From one read: the resident set can shrink between two (another test's memory
        // freed), and the kernel's VmHWM is only no less than the VmRSS it reports with it.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss = parse_status_kib(&status, "VmRSS:").unwrap();
        assert!(rss <= parse_vm_hwm(&status).unwrap());
    }

    #[test]
    fn the_step_state_counts_parameters_twice_and_activations_once() {
        // [2, 3]: 9 parameters (twice), batch 1 · (2 + 2·3) activations.
        let mib = step_state_mib(&[2, 3], 1);
        assert_eq!(mib * 1024.0 * 1024.0 / 4.0, 26.0);
    }
}
