//! What every fuzz target shares: how many cases to run, the proptest configuration, and the
//! reference the line framer is checked against.

use proptest::test_runner::{Config, FileFailurePersistence};
use roster_core::gateway::frame::Frame;

/// The long form: `ROSTER_LONG` set to anything but `0`.
pub fn long() -> bool {
    std::env::var_os("ROSTER_LONG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Cases for a target: `ROSTER_FUZZ_CASES`, else `long_form` in the long form, else `short`.
#[allow(clippy::panic)] // test support: a mistyped setting stops the run instead of being ignored
pub fn cases(short: u32, long_form: u32) -> u32 {
    match std::env::var("ROSTER_FUZZ_CASES") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|e| panic!("ROSTER_FUZZ_CASES is not a number: {e}")),
        Err(_) if long() => long_form,
        Err(_) => short,
    }
}

/// A proptest config of `cases(short, 1M)`. No regression files: a case worth keeping becomes
/// a test of its own.
pub fn config(short: u32) -> Config {
    Config {
        cases: cases(short, 1_000_000),
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

/// The lines of `stream` as the protocol defines them, cut all at once: at each `\n`; a `\r`
/// before it dropped; a line over `cap` (with that `\r`) reported by its length; the last piece
/// kept as it is if not empty.
pub fn reference_lines(stream: &[u8], cap: usize) -> Vec<(Frame, Vec<u8>)> {
    let mut pieces: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let last = pieces.pop().unwrap_or_default();
    let mut out: Vec<_> = pieces
        .into_iter()
        .map(|l| {
            if l.len() > cap {
                (Frame::TooLong { len: l.len() }, Vec::new())
            } else {
                (Frame::Line, l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            }
        })
        .collect();
    if last.len() > cap {
        out.push((Frame::TooLong { len: last.len() }, Vec::new()));
    } else if !last.is_empty() {
        out.push((Frame::Line, last.to_vec()));
    }
    out
}
