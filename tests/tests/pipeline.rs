//! The pipelined group commit never shows a reader an event that a crash can still take away.
//!
//! The child is the `pipeline-child` binary of this crate: appenders write from several threads while two
//! readers follow the log — a `Subscription` (`read` + `wait_longer_than`) and a
//! `team_version` + `read_team` poller — and the child prints every envelope that was
//! acknowledged or read. It is killed with SIGKILL at a random moment, over and over on the same
//! store — on every other round right after a reader printed something; after each kill every
//! printed envelope must be in the reopened log, with its hash.
//! sled keeps applied-but-unflushed writes in its own memory, so a reader that ran ahead of the
//! flush would print events the kill then erases.
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use roster_core::port::LogRead;
use roster_store::SledLog;

const ROUNDS: usize = 24;

#[test]
fn readers_never_see_what_a_crash_can_take_away() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("log");
    // Every envelope ever printed by a child, by position, with its hash.
    let mut printed: BTreeMap<u64, String> = BTreeMap::new();
    let mut seen_total = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline-child"))
            .arg(&store)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (seen_line, seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut text = String::new();
            let mut start = 0;
            while stdout.read_line(&mut text).unwrap() > 0 {
                if text[start..].starts_with("SEEN ") {
                    let _ = seen_line.send(());
                }
                start = text.len();
            }
            text
        });
        std::thread::sleep(Duration::from_millis(30 + getrandom::u64().unwrap() % 270));
        // On odd rounds the kill follows the next read at once: if readers could run ahead of
        // the flush, this is when what they saw would still be only in memory.
        if round % 2 == 1 {
            while seen.try_recv().is_ok() {}
            let _ = seen.recv_timeout(Duration::from_secs(10));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: the child ended by itself"
        );
        let text = reader.join().unwrap();
        // Only whole lines count; a line cut by the kill is ignored.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let mut parts = line.split_whitespace();
            let (Some(kind @ ("ACK" | "SEEN")), Some(seq), Some(hash)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            seen_total += usize::from(kind == "SEEN");
            let seq: u64 = seq.parse().unwrap();
            if let Some(before) = printed.insert(seq, hash.to_owned()) {
                assert_eq!(
                    before, hash,
                    "round {round}: position {seq} changed its hash"
                );
            }
        }

        let log = SledLog::open(&store)
            .unwrap_or_else(|e| panic!("round {round}: the store does not open after a kill: {e}"));
        let len = log
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: the chain does not verify: {e}"));
        let all = log.read(0, usize::MAX).unwrap();
        assert_eq!(all.len() as u64, len);
        for (seq, hash) in &printed {
            let found = all.get(*seq as usize).unwrap_or_else(|| {
                panic!(
                    "round {round}: position {seq} was read or acknowledged, then lost (len {len})"
                )
            });
            assert_eq!(
                &found.hash().to_hex(),
                hash,
                "round {round}: position {seq} was read or acknowledged with another hash"
            );
        }
    }
    assert!(seen_total > 0, "the readers never read anything");
}
