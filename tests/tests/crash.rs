//! Crash consistency of the sled log: `crash-writer` appends from several threads and prints
//! every acknowledged event; it is killed with SIGKILL at a random moment, 25 times on the same
//! store. After every kill the store must open, every acknowledged event must be there with the
//! same hash, positions must be gapless, the whole chain must verify, and the log must still
//! fold into a consistent `World`.
//!
//! On even rounds the random delay starts at spawn (so some kills land while the store opens and
//! recovers), on odd rounds at the first acknowledged event (so they land mid-write).
// Helpers of a test crate panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use roster_core::port::LogRead;
use roster_core::world::World;
use roster_store::SledLog;

const ROUNDS: usize = 25;

/// A random delay of 20–300 ms.
fn random_delay() -> Duration {
    Duration::from_millis(20 + getrandom::u64().unwrap() % 281)
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("log");
    // Every event ever acknowledged, by position, with its hash.
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(&store)
            .arg("30")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_line, writing) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut text = String::new();
            // Reading stops at EOF, when the child is dead.
            while stdout.read_line(&mut text).unwrap() > 0 {
                let _ = first_line.send(());
            }
            text
        });
        if round % 2 == 1 {
            let _ = writing.recv_timeout(Duration::from_secs(10));
        }
        std::thread::sleep(random_delay());
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let text = reader.join().unwrap();
        if status.signal() != Some(9) {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("round {round}: crash-writer ended by itself ({status}): {err}");
        }
        // Only whole lines were acknowledged; a line cut by the kill is ignored.
        let mut this_round = 0;
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            let (seq, hash) = line.trim_end().split_once(' ').unwrap();
            let previous = acked.insert(seq.parse().unwrap(), hash.to_owned());
            assert!(
                previous.is_none(),
                "round {round}: position {seq} acknowledged twice"
            );
            this_round += 1;
        }

        let log = SledLog::open(&store)
            .unwrap_or_else(|e| panic!("round {round}: the store does not open after a kill: {e}"));
        let len = log
            .verify()
            .unwrap_or_else(|e| panic!("round {round}: the chain does not verify: {e}"));
        let all = log.read(0, usize::MAX).unwrap();
        assert_eq!(all.len() as u64, len);
        assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as u64));
        if let Some((&last, _)) = acked.last_key_value() {
            assert!(
                len > last,
                "round {round}: acknowledged position {last} lost (len {len})"
            );
        }
        for (seq, hash) in &acked {
            assert_eq!(
                &all[*seq as usize].hash().to_hex(),
                hash,
                "round {round}: acknowledged position {seq} changed"
            );
        }
        World::fold(&all).unwrap_or_else(|e| panic!("round {round}: does not fold: {e}"));
        eprintln!("round {round}: killed after {this_round} acknowledged events; log holds {len}");
    }
    assert!(!acked.is_empty(), "no round acknowledged anything");
}
