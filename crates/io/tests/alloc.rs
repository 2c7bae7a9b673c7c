//! Hostile files allocate nothing large: the bytes allocated while a loader refuses a file
//! whose length fields claim 2⁴⁰ bytes are counted by an instrumented global allocator.
//!
//! A test binary of its own, with one test, so that nothing else allocates meanwhile.

use std::alloc::System;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use wengert_io::container::{self, FileKind};
use wengert_io::{LoadOptions, TapeModel, weights_from_bytes};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Far below the 16 KiB decode limit of these small files: at most 4 KiB is reserved for a
/// sequence whatever its length field claims, and the rest follows the bytes present.
const BOUND: usize = 16 << 10;

fn measure(what: &str, bytes: &[u8], load: impl Fn(&[u8]) -> bool) {
    let region = Region::new(GLOBAL);
    let started = Instant::now();
    let refused = load(bytes);
    let elapsed = started.elapsed();
    let stats = region.change();
    eprintln!(
        "{what}: {} bytes, refused in {elapsed:?}, {} bytes allocated in {} allocations",
        bytes.len(),
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize,
        stats.allocations + stats.reallocations
    );
    assert!(refused, "{what} was accepted");
    assert!(
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize <= BOUND,
        "{what}: {} bytes allocated",
        stats.bytes_allocated
    );
}

#[test]
fn length_fields_claiming_two_to_the_forty_bytes_allocate_nothing_large() {
    let options = LoadOptions::default();
    let tape = |b: &[u8]| TapeModel::<f32>::from_bytes(b, &options).is_err();
    let weights = |b: &[u8]| weights_from_bytes::<f32>(b, &options).is_err();
    let huge = (1u64 << 40).to_le_bytes();

    let mut header = container::wrap(FileKind::Tape, 1, &[0; 8]);
    header[16..24].copy_from_slice(&huge);
    measure("header payload length 2^40", &header, tape);

    let nodes = container::wrap(
        FileKind::Tape,
        1,
        &[&0u32.to_le_bytes()[..], &huge].concat(),
    );
    measure("tape node count 2^40", &nodes, tape);

    let one = 1u64.to_le_bytes();
    let name = container::wrap(
        FileKind::Weights,
        1,
        &[&0u32.to_le_bytes()[..], &one, &huge, b"w"].concat(),
    );
    measure("weights name length 2^40", &name, weights);

    let shape = container::wrap(
        FileKind::Weights,
        1,
        &[
            &0u32.to_le_bytes()[..],
            &one,
            &one,
            b"w",
            &one,
            &huge,
            &0u32.to_le_bytes(),
            &huge,
        ]
        .concat(),
    );
    measure("weights data length 2^40", &shape, weights);

    let dims = container::wrap(
        FileKind::Weights,
        1,
        &[
            &0u32.to_le_bytes()[..],
            &one,
            &one,
            b"w",
            &2u64.to_le_bytes(),
            &huge,
            &huge,
            &0u32.to_le_bytes(),
            &0u64.to_le_bytes(),
        ]
        .concat(),
    );
    measure("weights shape 2^40 x 2^40", &dims, weights);
}
