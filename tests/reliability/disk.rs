//! Reliability suite: the data disk full under a running `roster serve`.
//!
//! The daemon's data directory (log, sockets, roster.toml) is on a small tmpfs, which another
//! file then fills up. Operator commands that would record something fail with a message
//! naming the full disk and a non-zero exit, nothing of them is written (`roster verify` and
//! `roster log` show exactly the acknowledged events), the daemon keeps serving reads, and once
//! the tmpfs grows the same commands succeed — no restart.
//!
//! Needs root (it mounts tmpfs) and Docker; without them it fails, saying so — never skips.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod tmpfs;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{rand_u32, Gateway, Served};
use serde_json::{json, Value};
use tmpfs::Tmpfs;

/// The store's disk reserve (`roster_store::RESERVE`), in MiB.
const RESERVE_MIB: u64 = 8;

/// Grows the file `dir/filler` until the disk is full, as another program filling the disk
/// would; again after the daemon may have freed some room.
fn fill_with_a_file(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let chunk = vec![7u8; 64 << 10];
    let mut n = chunk.len();
    loop {
        match file.write(&chunk[..n]) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull && n > 1 => n /= 2,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return path,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// With the disk still full (`fs` filled again: the store freed its reserve to reopen, and
/// another program takes that room), `roster ARGS` fails because the disk is full, and says
/// so.
fn refused_for_the_full_disk(s: &Served, fs: &Tmpfs, args: &[&str]) {
    fill_with_a_file(fs.path());
    let out = s.run(args);
    let said = text(&out);
    assert!(!out.status.success(), "roster {args:?} succeeded: {said}");
    assert!(
        said.contains("the data disk is full") && said.contains("nothing of this was recorded"),
        "roster {args:?} did not name the full disk: {said}"
    );
    assert!(!said.contains("panicked"), "{said}");
}

/// The log as `roster --json log` shows it, and `roster verify` passes on it.
fn log_and_verify(s: &Served) -> Vec<Value> {
    s.ok(&["verify"]);
    s.events()
}

#[test]
fn a_full_data_disk_refuses_commands_clearly_and_they_succeed_once_it_grows() {
    let mib = RESERVE_MIB + 6;
    let fs = Tmpfs::mount(mib);
    // Dropped before the tmpfs (declared after it): the daemon is stopped first.
    let s = Served::in_tmp(
        tempfile::tempdir_in(fs.path()).unwrap(),
        format!("t{:x}", rand_u32()),
    );
    s.ok(&["team", "create", "lab"]);
    s.ok(&["hire", "--team", "lab", "--name", "boss"]);
    s.wait_up("boss");
    let boss = s.agent("boss")["id"].as_str().unwrap().to_owned();
    let filler = fill_with_a_file(fs.path());

    // sled writes its log a 512 KiB segment at a time: what fits in the current one is
    // still written (big grants fill it quickly); the first append that needs a new segment
    // finds the disk full. Every command acknowledged before is kept.
    let big = format!("email.send@mailbox:{}", vec!["a".repeat(240); 4].join("/"));
    let mut granted = 0;
    let first_refusal = (0..3000)
        .find_map(|_| {
            fill_with_a_file(fs.path());
            let out = s.run(&["grant", "lab/boss", &big]);
            granted += usize::from(out.status.success());
            (!out.status.success()).then_some(out)
        })
        .expect("3000 grants of 1 KiB fit on a full disk");
    let said = text(&first_refusal);
    assert!(said.contains("the data disk is full"), "{said}");
    let acked = log_and_verify(&s);

    refused_for_the_full_disk(&s, &fs, &["team", "create", "other"]);
    refused_for_the_full_disk(&s, &fs, &["hire", "--team", "lab", "--name", "worker"]);
    refused_for_the_full_disk(&s, &fs, &["grant", "lab/boss", "email.send@mailbox:a"]);
    refused_for_the_full_disk(&s, &fs, &["retire", "lab/boss"]);

    // An agent whose request would be recorded (here, a refusal) is told the disk is full,
    // with its own code (roster-agent exits 10), not `internal`.
    fill_with_a_file(fs.path());
    let mut g = Gateway::connect(&s, &boss);
    let e = g.call("hire", json!({ "name": "helper" })).unwrap_err();
    assert_eq!(e["code"], "disk_full", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("data disk is full: this decision was not recorded"),
        "{e}"
    );

    // Reads go on, and nothing of the refused commands is there.
    assert_eq!(log_and_verify(&s), acked);
    assert_eq!(s.json(&["team", "list"]).len(), 1);
    assert_eq!(s.json(&["grants", "lab/boss"]).len(), granted);
    assert!(s
        .json(&["agents", "--all"])
        .iter()
        .any(|a| a["name"] == "boss"));

    fs.grow(mib + 16);
    s.ok(&["team", "create", "other"]);
    s.ok(&["grant", "lab/boss", "email.send@mailbox:a"]);
    s.ok(&["hire", "--team", "lab", "--name", "worker"]);
    let after = log_and_verify(&s);
    assert_eq!(
        after[..acked.len()],
        acked[..],
        "the acknowledged events changed"
    );
    let new: Vec<&Value> = after[acked.len()..].iter().collect();
    assert!(
        new.iter()
            .any(|e| e["event"]["TeamCreated"]["name"] == "other"),
        "{new:?}"
    );
    assert!(
        new.iter().any(|e| e["event"].get("GrantIssued").is_some()),
        "{new:?}"
    );
    assert!(
        new.iter()
            .any(|e| e["event"]["AgentHired"]["name"] == "worker"),
        "{new:?}"
    );
    drop(filler);
    drop(s);
    drop(fs);
}
