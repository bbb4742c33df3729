//! Signed heads end to end, on real sled data directories: what the unkeyed hash chain let
//! through before — an export edited and re-sealed, a log replaced by a re-sealed one — is
//! refused once heads are signed with a key kept apart from the log, or checked against a
//! witness's heads; and what it cannot catch is said, not hidden. Every test here asserts a
//! refusal (exit 9 for a signed head that does not hold) or an explicit "unsigned".
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{fails_in as fails, ok_in as ok, roster_in as roster};
use roster_core::envelope::{Envelope, EnvelopeJson, Hash};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A data directory with a team, a lead (hire, home disk and grant) and a second team: 5
/// events, each command signing the head after it appended, as commands without a daemon do.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    ok(&dir, &["init"]);
    ok(&dir, &["team", "create", "research"]);
    ok(
        &dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "lead",
            "--grant",
            "email.*@mailbox:*",
        ],
    );
    ok(&dir, &["team", "create", "ops"]);
    (tmp, dir)
}

fn public_key(dir: &Path) -> String {
    let head: Value = serde_json::from_str(&ok(dir, &["--json", "head"])).unwrap();
    head["public_key"].as_str().unwrap().to_owned()
}

fn verified(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json", "verify"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &all)).unwrap()
}

/// `text` (an export) with the lead renamed to `boss` and every hash from there re-computed
/// with the unkeyed BLAKE3 chain, as anyone who can write the file (or the log) can; signed
/// head lines are left as they are.
fn resealed(text: &str) -> String {
    let mut prev = Hash::ZERO;
    let mut out = String::new();
    for line in text.lines() {
        match serde_json::from_str::<EnvelopeJson>(line) {
            Ok(json) => {
                let body = serde_json::to_string(&json.body).unwrap();
                let body = serde_json::from_str(&body.replace("\"lead\"", "\"boss\"")).unwrap();
                let env = Envelope::seal(body, prev);
                prev = env.hash();
                out.push_str(&serde_json::to_string(&env).unwrap());
            }
            Err(_) => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

fn without_heads(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("{\"signed_head\""))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn export(dir: &Path, to: &Path) -> String {
    ok(dir, &["export", s(to)]);
    std::fs::read_to_string(to).unwrap()
}

#[test]
fn an_export_edited_and_resealed_is_refused_by_its_signed_heads() {
    let (tmp, dir) = setup();
    let text = export(&dir, &tmp.path().join("x.jsonl"));
    assert!(text.contains("{\"signed_head\":"), "{text}");
    let forged = tmp.path().join("forged.jsonl");
    std::fs::write(&forged, resealed(&text)).unwrap();
    // The re-sealed events pass every check of the chain and of the rules by themselves...
    let bare = tmp.path().join("bare.jsonl");
    std::fs::write(&bare, without_heads(&resealed(&text))).unwrap();
    ok(&tmp.path().join("elsewhere"), &["import", s(&bare)]);
    // ... but the heads signed with them are over another history: refused, nothing written.
    let copy = tmp.path().join("copy");
    let err = fails(&copy, &["import", s(&forged)], 9);
    assert!(err.contains("the history up to it was rewritten"), "{err}");
    // The edit is at position 1; the first head after it, at 3 (the hire's grant), refuses it.
    assert!(err.contains("line 6: the event at position 3"), "{err}");
    assert_eq!(ok(&copy, &["--json", "log"]), "");
    // The original goes in, signed to its end by the key it came from.
    let original = tmp.path().join("x.jsonl");
    let out = ok(&copy, &["--json", "import", s(&original)]);
    let imported: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(imported["signed_to"], 4);
    assert_eq!(imported["unsigned"], 0);
    assert_eq!(imported["key"].as_str().unwrap(), public_key(&dir));
}

#[test]
fn a_tampered_signature_is_refused() {
    let (tmp, dir) = setup();
    let text = export(&dir, &tmp.path().join("x.jsonl"));
    let last = text.lines().last().unwrap();
    let head: Value = serde_json::from_str(last).unwrap();
    let sig = head["signed_head"]["signature"].as_str().unwrap();
    let flipped: String = sig
        .char_indices()
        .map(|(i, c)| {
            if i == 10 {
                if c == '0' {
                    '1'
                } else {
                    '0'
                }
            } else {
                c
            }
        })
        .collect();
    let tampered = tmp.path().join("tampered.jsonl");
    std::fs::write(&tampered, text.replace(sig, &flipped)).unwrap();
    let err = fails(&tmp.path().join("copy"), &["import", s(&tampered)], 9);
    assert!(err.contains("does not verify under its key"), "{err}");
    // A head moved to a position it did not sign: the same.
    let moved = tmp.path().join("moved.jsonl");
    std::fs::write(
        &moved,
        text.replace(
            "{\"signed_head\":{\"seq\":4,",
            "{\"signed_head\":{\"seq\":3,",
        ),
    )
    .unwrap();
    fails(&tmp.path().join("copy2"), &["import", s(&moved)], 9);
}

#[test]
fn an_unsigned_export_is_imported_and_said_unsigned_unless_a_key_is_required() {
    let (tmp, dir) = setup();
    let key = public_key(&dir);
    let text = export(&dir, &tmp.path().join("x.jsonl"));
    // An export as roster wrote them before signed heads: no head lines.
    let old = tmp.path().join("old.jsonl");
    std::fs::write(&old, without_heads(&text)).unwrap();
    let copy = tmp.path().join("copy");
    let out = ok(&copy, &["import", s(&old)]);
    assert!(out.contains("imported 5 events"), "{out}");
    assert!(out.contains("unsigned: no signed head covers it"), "{out}");
    // Insisting on the key it should carry: refused, naming the key.
    let err = fails(
        &tmp.path().join("strict"),
        &["import", s(&old), "--key", &key],
        9,
    );
    assert!(err.contains(&format!("not signed by {key}")), "{err}");
    // ... and taken when signed by it to the end.
    let out = ok(
        &tmp.path().join("strict2"),
        &["import", s(&tmp.path().join("x.jsonl")), "--key", &key],
    );
    assert!(out.contains(&format!("positions 0 to 4 by {key}")), "{out}");
    // A key that is not one is bad input.
    fails(
        &tmp.path().join("x"),
        &["import", s(&old), "--key", "abc"],
        2,
    );
}

/// Replaces the log of `dir` by a forged one made from `export_text` (the attacker's own
/// import into a directory of theirs, then a swap of `log/`): what whoever can write the data
/// directory can do without the key.
fn replace_log(tmp: &Path, dir: &Path, export_text: &str) -> PathBuf {
    let forged = tmp.join("forged.jsonl");
    std::fs::write(&forged, export_text).unwrap();
    let evil = tmp.join("evil");
    ok(&evil, &["import", s(&forged)]);
    std::fs::remove_dir_all(dir.join("log")).unwrap();
    std::fs::rename(evil.join("log"), dir.join("log")).unwrap();
    evil
}

#[test]
fn a_rewritten_log_is_caught_by_a_witness_head_and_a_pinned_key() {
    let (tmp, dir) = setup();
    let key = public_key(&dir);
    // A witness keeps the signed head, outside the data directory.
    let witness = tmp.path().join("witness.jsonl");
    ok(&dir, &["head", "--out", s(&witness)]);
    ok(&dir, &["verify", "--head", s(&witness)]);
    assert_eq!(verified(&dir, &["--head", s(&witness)])["witnessed"], 1);
    // The log is replaced by a re-sealed rewrite (heads stripped: the writer has no key).
    let text = export(&dir, &tmp.path().join("x.jsonl"));
    let evil = replace_log(tmp.path(), &dir, &without_heads(&resealed(&text)));
    // The chain alone is intact: before signed heads, `verify` passed this. Now it says that
    // no head by this directory's key covers the log.
    let v = verified(&dir, &[]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["trust"], "data_dir");
    assert_eq!(v["signed_to"], Value::Null);
    assert_eq!(v["unsigned"], 5);
    assert_eq!(v["other_keys"].as_array().unwrap().len(), 1);
    // The witness's head: refused, exit 9, naming the position.
    let err = fails(&dir, &["verify", "--head", s(&witness)], 9);
    assert!(err.contains("REWRITTEN OR FORGED"), "{err}");
    assert!(err.contains("position 4"), "{err}");
    // The pinned key: no head of it at all.
    let err = fails(&dir, &["verify", "--key", &key], 9);
    assert!(err.contains(&format!("no signed head by {key}")), "{err}");
    // A writer who also replaces the key file passes a plain `verify` — what a key kept in the
    // data directory cannot prevent — but not the witness's check.
    std::fs::copy(evil.join("signing.key"), dir.join("signing.key")).unwrap();
    let v = verified(&dir, &[]);
    assert_eq!(
        (v["signed_to"].clone(), v["unsigned"].clone()),
        (4.into(), 0.into())
    );
    fails(&dir, &["verify", "--head", s(&witness)], 9);
    fails(&dir, &["verify", "--key", &key], 9);
}

#[test]
fn a_log_cut_short_is_caught_by_a_witness_head() {
    let (tmp, dir) = setup();
    let witness = tmp.path().join("witness.jsonl");
    // A witness appending heads as they come, as a cron job would.
    let mut kept = ok(&dir, &["--json", "head"]);
    ok(&dir, &["team", "create", "later"]);
    kept.push_str(&ok(&dir, &["--json", "head"]));
    std::fs::write(&witness, &kept).unwrap();
    assert_eq!(verified(&dir, &["--head", s(&witness)])["witnessed"], 2);
    // The last two events removed: the rest is untouched, its own heads still hold.
    let text = export(&dir, &tmp.path().join("x.jsonl"));
    let first: String = text
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["seq"].as_u64() < Some(4))
        .filter(|l| !l.starts_with("{\"signed_head\""))
        .map(|l| format!("{l}\n"))
        .collect();
    replace_log(tmp.path(), &dir, &first);
    let err = fails(&dir, &["verify", "--head", s(&witness)], 9);
    assert!(
        err.contains("events were removed after it was signed"),
        "{err}"
    );
}

#[test]
fn a_witness_file_that_is_not_one_is_bad_input() {
    let (tmp, dir) = setup();
    let witness = tmp.path().join("witness.jsonl");
    ok(&dir, &["head", "--out", s(&witness)]);
    let text = std::fs::read_to_string(&witness).unwrap();
    // A forged head (its hash changed) does not verify by itself: nothing to learn from it.
    let head: Value = serde_json::from_str(&text).unwrap();
    let hash = head["hash"].as_str().unwrap();
    let forged = tmp.path().join("forged-witness.jsonl");
    std::fs::write(&forged, text.replace(hash, &"0".repeat(64))).unwrap();
    let err = fails(&dir, &["verify", "--head", s(&forged)], 2);
    assert!(err.contains("line 1"), "{err}");
    assert!(err.contains("does not verify"), "{err}");
    let empty = tmp.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    fails(&dir, &["verify", "--head", s(&empty)], 2);
    fails(&dir, &["verify", "--head", "/no/such/file"], 2);
    // Heads as an export carries them are read too.
    let as_export = tmp.path().join("as-export.jsonl");
    std::fs::write(&as_export, format!("{{\"signed_head\":{}}}\n", text.trim())).unwrap();
    ok(&dir, &["verify", "--head", s(&as_export)]);
}

#[test]
fn the_key_is_owner_only_signs_every_append_and_can_live_elsewhere() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, dir) = setup();
    let key_file = dir.join("signing.key");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_file), 0o600);
    // Every command that appended signed the head after it: three commands, three heads.
    let v = verified(&dir, &[]);
    assert_eq!(
        (v["signed_to"].clone(), v["unsigned"].clone()),
        (4.into(), 0.into())
    );
    assert_eq!(v["heads"], 3);
    // A key others may read is made owner-only again before it is used.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(&dir, &["head"]);
    assert_eq!(mode(&key_file), 0o600);

    // Kept off the data directory, as roster.toml says: `init` makes it there.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(
        other.join("roster.toml"),
        "[signing]\nkey = \"../keys/other.key\"\n",
    )
    .unwrap();
    let out = ok(&other, &["init"]);
    assert!(out.contains("keys/other.key, made now"), "{out}");
    assert!(!other.join("signing.key").exists());
    assert_eq!(mode(&keys.join("other.key")), 0o600);
    ok(&other, &["team", "create", "research"]);
    assert_eq!(verified(&other, &[])["unsigned"], 0);
    // Its disk away: what is appended meanwhile is said to be unsigned, and no new key is
    // made in its place.
    std::fs::rename(keys.join("other.key"), keys.join("away.key")).unwrap();
    let out = roster(&other, &["team", "create", "ops"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not signed"), "{err}");
    assert!(err.contains("other.key"), "{err}");
    assert!(!keys.join("other.key").exists());
    let v = verified(&other, &[]);
    assert_eq!(
        (v["signed_to"].clone(), v["unsigned"].clone()),
        (0.into(), 1.into())
    );
    assert_eq!(v["trust"], "latest");
    // `roster head` gives the latest head kept, and says it is not the end.
    let out = roster(&other, &["head"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("position 0"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 event(s) after it"));
}
