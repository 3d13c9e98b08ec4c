//! The fuzzing harness of leadline's fuzz targets (engine/tests/fuzz.rs,
//! server/tests/fuzz_wire.rs), on the stable toolchain: proptest generates
//! inputs (mutated real inputs, structured values, random bytes) and shrinks
//! a failing one to a small case. No coverage guidance (that needs nightly
//! or an AFL toolchain); the generators aim at the formats' edges instead:
//! length fields, escapes, quotes, delimiters, huge numbers.
//!
//! Each target runs for `LEADLINE_FUZZ_SECS` seconds (default 3, the bounded
//! run of `cargo test`); set it to 3600 for an hour. Each prints its number
//! of executions (`cargo test -- --nocapture` shows it).
#![allow(dead_code)]

use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// How long each target runs.
pub fn budget() -> Duration {
    let secs = std::env::var("LEADLINE_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.1))
}

/// Runs `test` on inputs from `strategy` until the budget is spent; fails
/// the test (with the shrunk input) on the first input it fails or panics
/// on. Returns the number of executions.
pub fn fuzz<S>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) -> u64
where
    S: Strategy,
    S::Value: Debug,
{
    const BATCH: u32 = 16;
    let started = Instant::now();
    let config = Config { cases: BATCH, failure_persistence: None, max_shrink_iters: 2048, ..Config::default() };
    // A runner runs `cases` once: each batch gets a fresh one, its random
    // numbers forked from one source (random per run).
    let mut source = TestRunner::new(config.clone());
    let mut runs = 0u64;
    while runs == 0 || started.elapsed() < budget() {
        let mut runner = TestRunner::new_with_rng(config.clone(), source.new_rng());
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("fuzz target {name} failed after {runs} executions: {e}");
        }
        runs += u64::from(BATCH);
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("fuzz {name}: {runs} executions in {secs:.1} s ({:.0}/s)", runs as f64 / secs);
    runs
}

/// One edit of a byte string. Positions are fractions of the current length.
#[derive(Debug, Clone)]
pub enum Mutation {
    Set(Index, u8),
    Flip(Index, u8),
    Insert(Index, Vec<u8>),
    Remove(Index, usize),
    /// Repeat a slice (long lines, many fields).
    Repeat(Index, usize, usize),
    /// Overwrite 2 or 4 bytes with a value length fields choke on.
    Interesting(Index, usize, bool),
    /// Insert a token of the formats (quotes, escapes, delimiters…).
    Token(Index, usize),
    Truncate(Index),
}

/// Values that break length fields and counts.
pub const INTERESTING: [i64; 14] =
    [0, 1, -1, 2, 4, 8, 16, 127, 255, 32767, 65535, 0x3fff_ffff, 0x7fff_ffff, -0x8000_0000];

/// Bytes that mean something in NDJSON, CSV, COPY text/CSV/binary and SQL.
pub const TOKENS: &[&[u8]] = &[
    b"\"",
    b"'",
    b"\\",
    b",",
    b";",
    b"\t",
    b"\n",
    b"\r\n",
    b"\\.\n",
    b"\\N",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\\u0000",
    b"\\ud800",
    b"1e400",
    b"-9223372036854775809",
    b"9999-12-31T23:59:59Z",
    b"0000-01-01T00:00:00+01:00",
    b"NaN",
    b"null",
    b"PGCOPY\n\xff\r\n\0",
    b"\xff\xff",
    b"E'\\x",
    b"$$",
    b"--",
    b"/*",
    b"::",
    b"%s",
    b"$1",
    b"\xe2\x80\xa8",
];

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1..64usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<Index>(), 1..64usize, 1..200usize).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        (any::<Index>(), 0..INTERESTING.len(), any::<bool>()).prop_map(|(i, v, w)| Mutation::Interesting(i, v, w)),
        (any::<Index>(), 0..TOKENS.len()).prop_map(|(i, t)| Mutation::Token(i, t)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

pub fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        let at = |i: &Index, b: &Vec<u8>| if b.is_empty() { 0 } else { i.index(b.len()) };
        match m {
            Mutation::Set(i, v) if !b.is_empty() => {
                let p = at(i, &b);
                b[p] = *v;
            }
            Mutation::Flip(i, v) if !b.is_empty() => {
                let p = at(i, &b);
                b[p] ^= v | 1;
            }
            Mutation::Insert(i, bytes) => {
                let p = at(i, &b);
                b.splice(p..p, bytes.iter().copied());
            }
            Mutation::Remove(i, n) => {
                let p = at(i, &b);
                let end = (p + n).min(b.len());
                b.drain(p..end);
            }
            Mutation::Repeat(i, n, k) => {
                let p = at(i, &b);
                let end = (p + n).min(b.len());
                let piece = b[p..end].to_vec();
                let copies: Vec<u8> = piece.iter().copied().cycle().take(piece.len() * k).collect();
                b.splice(end..end, copies);
            }
            Mutation::Interesting(i, v, wide) => {
                let p = at(i, &b);
                let value = INTERESTING[*v];
                let bytes =
                    if *wide { (value as i32).to_be_bytes().to_vec() } else { (value as i16).to_be_bytes().to_vec() };
                for (k, byte) in bytes.into_iter().enumerate() {
                    if let Some(slot) = b.get_mut(p + k) {
                        *slot = byte;
                    }
                }
            }
            Mutation::Token(i, t) => {
                let p = at(i, &b);
                b.splice(p..p, TOKENS[*t].iter().copied());
            }
            Mutation::Truncate(i) => {
                let p = at(i, &b);
                b.truncate(p);
            }
            _ => {}
        }
    }
    b
}

/// A seed from `seeds` with up to 12 mutations, or (one time in eight)
/// random bytes.
pub fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edits = (proptest::sample::select(seeds), proptest::collection::vec(mutation(), 0..12))
        .prop_map(|(seed, muts)| apply(&seed, &muts));
    prop_oneof![7 => edits, 1 => proptest::collection::vec(any::<u8>(), 0..512)]
}
