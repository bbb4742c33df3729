//! `export_jsonl` → `import_jsonl` moves a log unchanged; an edited, reordered or inconsistent
//! export is refused by line, and nothing is written.
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use roster_core::envelope::ChainError;
use roster_core::port::LogRead;
use roster_core::world::World;
use roster_store::{export_jsonl, import_jsonl, ImportError, MemLog, SledLog};

fn exported() -> (Vec<u8>, Vec<roster_core::envelope::Envelope>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    common::populate(&log, 2, 3);
    let mut out = Vec::new();
    let n = export_jsonl(&*log, &mut out).unwrap();
    assert_eq!(n, log.len());
    (out, log.read(0, usize::MAX).unwrap())
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn export_then_import_gives_identical_envelopes() {
    let (out, original) = exported();
    assert_eq!(lines(&out).len(), original.len());
    let dir = tempfile::tempdir().unwrap();
    {
        let target = Arc::new(SledLog::open(dir.path()).unwrap());
        let n = import_jsonl(&*target, &mut out.as_slice()).unwrap();
        assert_eq!(n, original.len() as u64);
    }
    // Durable, and identical after a reopen.
    let target = Arc::new(SledLog::open(dir.path()).unwrap());
    assert_eq!(target.read(0, usize::MAX).unwrap(), original);
    assert_eq!(target.verify().unwrap(), original.len() as u64);
    let world = World::fold(&original).unwrap();
    for team in world.teams() {
        assert_eq!(target.team_version(team.id).unwrap(), team.version);
    }
    // Appending continues the imported chain (a team, a hire, its home disk and its grant).
    common::populate(&target, 1, 1);
    assert_eq!(target.verify().unwrap(), original.len() as u64 + 4);
    // The same export goes into a MemLog too.
    let mem = MemLog::new();
    import_jsonl(&mem, &mut out.as_slice()).unwrap();
    assert_eq!(mem.read(0, usize::MAX).unwrap(), original);
}

/// Imports `text` into a new store and checks that it stayed empty.
fn refused(text: &str) -> ImportError {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(SledLog::open(dir.path()).unwrap());
    let err = import_jsonl(&*target, &mut text.as_bytes()).unwrap_err();
    assert!(target.is_empty());
    drop(target);
    assert!(SledLog::open(dir.path()).unwrap().is_empty());
    err
}

#[test]
fn an_edited_line_is_refused_by_number_and_nothing_is_written() {
    let (out, _) = exported();
    let mut ls = lines(&out);
    // Line 2 is the first hire (seq 1); rename the agent.
    assert!(ls[1].contains("\"agent-0\""), "{}", ls[1]);
    ls[1] = ls[1].replace("\"agent-0\"", "\"agent-x\"");
    let err = refused(&ls.join("\n"));
    assert!(
        matches!(
            err,
            ImportError::Chain {
                line: 2,
                source: ChainError::HashMismatch { seq: 1 }
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("line 2: event at position 1"),
        "{err}"
    );
}

#[test]
fn a_dropped_or_reordered_line_is_refused() {
    let (out, _) = exported();
    let mut ls = lines(&out);
    ls.remove(4);
    let err = refused(&ls.join("\n"));
    assert!(
        matches!(
            err,
            ImportError::Chain {
                line: 5,
                source: ChainError::Gap {
                    expected: 4,
                    found: 5
                }
            }
        ),
        "{err:?}"
    );
    let err = refused("{not json}\n");
    assert!(matches!(err, ImportError::Json { line: 1, .. }), "{err:?}");
}

#[test]
fn a_chain_that_does_not_fold_is_refused() {
    // A self-consistent chain whose first event hires into a team that was never created.
    let mem = MemLog::new();
    let full = exported().1;
    let hire = full.iter().find(|e| e.version == 2).unwrap().body().clone();
    let body = roster_core::envelope::Body {
        seq: 0,
        version: 1,
        ..hire
    };
    mem.append_sealed(vec![roster_core::envelope::Envelope::seal(
        body,
        roster_core::envelope::Hash::ZERO,
    )])
    .unwrap();
    let mut out = Vec::new();
    export_jsonl(&mem, &mut out).unwrap();
    let err = refused(std::str::from_utf8(&out).unwrap());
    assert!(
        matches!(err, ImportError::Inconsistent { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_non_empty_store_is_refused() {
    let (out, original) = exported();
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(SledLog::open(dir.path()).unwrap());
    common::populate(&target, 1, 0);
    let err = import_jsonl(&*target, &mut out.as_slice()).unwrap_err();
    assert!(matches!(err, ImportError::NotEmpty { len: 1 }), "{err:?}");
    assert_eq!(target.len(), 1);
    assert_ne!(original.len(), 1);
}
