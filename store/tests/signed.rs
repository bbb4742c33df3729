//! Signed heads in the store and in exports: kept durably beside the log, carried by an export
//! after the event they sign, and checked by an import — which refuses an export whose events
//! were edited and re-sealed (the unkeyed chain alone lets that through), a head whose
//! signature was tampered with, and, when a key is insisted on, an export not signed by it to
//! its end; an export without heads is taken and said to be unsigned.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use roster_core::envelope::{Envelope, EnvelopeJson, Hash};
use roster_core::port::{LogRead, SignedHeads};
use roster_core::signed::{HeadError, SignedHead, SigningKey};
use roster_core::time::Timestamp;
use roster_store::{
    export_signed_jsonl, import_jsonl, import_signed_jsonl, ImportError, MemLog, SledLog,
};

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32])
}

fn sign_at(log: &dyn LogRead, key: &SigningKey, seq: u64) -> SignedHead {
    let hash = log.read(seq, 1).unwrap()[0].hash();
    key.sign(seq, hash, Timestamp::from_millis(1_800_000_000_000))
}

/// A log of 20 events with heads by key 1 at positions 3 and 19, exported.
fn signed_export() -> (String, Vec<SignedHead>) {
    let log = Arc::new(MemLog::new());
    common::populate(&log, 2, 3);
    assert_eq!(log.len(), 20);
    let heads = vec![sign_at(&*log, &key(1), 3), sign_at(&*log, &key(1), 19)];
    let mut out = Vec::new();
    assert_eq!(
        export_signed_jsonl(&*log, log.len(), &heads, &mut out).unwrap(),
        20
    );
    (String::from_utf8(out).unwrap(), heads)
}

/// The export with every event after the first re-written by `edit` and the chain re-sealed
/// with the unkeyed BLAKE3, as anyone who can write the file can; head lines left as they are.
fn resealed(text: &str, edit: impl Fn(&mut EnvelopeJson)) -> String {
    let mut prev = Hash::ZERO;
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(mut json) = serde_json::from_str::<EnvelopeJson>(line) else {
            out.push(line.to_owned());
            continue;
        };
        if json.body.seq == 1 {
            edit(&mut json);
        }
        let env = Envelope::seal(json.body, prev);
        prev = env.hash();
        out.push(serde_json::to_string(&env).unwrap());
    }
    out.join("\n")
}

fn without_heads(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("{\"signed_head\""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Imports `text` (insisting on `key`) into a new store; on refusal, checks nothing was written.
fn import(text: &str, key: Option<&SigningKey>) -> Result<roster_store::Imported, ImportError> {
    let dir = tempfile::tempdir().unwrap();
    let target = SledLog::open(dir.path()).unwrap();
    let pin = key.map(SigningKey::public_key);
    let result = import_signed_jsonl(&target, &mut text.as_bytes(), pin.as_ref());
    if result.is_err() {
        assert!(target.is_empty());
        assert!(target.signed_heads().unwrap().is_empty());
    }
    result
}

#[test]
fn heads_follow_their_event_in_an_export_and_come_back_with_it() {
    let (text, heads) = signed_export();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 22);
    assert!(
        lines[4].starts_with("{\"signed_head\":{\"seq\":3,"),
        "{}",
        lines[4]
    );
    assert!(
        lines[21].starts_with("{\"signed_head\":{\"seq\":19,"),
        "{}",
        lines[21]
    );
    let dir = tempfile::tempdir().unwrap();
    {
        let target = SledLog::open(dir.path()).unwrap();
        let imported = import_signed_jsonl(&target, &mut text.as_bytes(), None).unwrap();
        assert_eq!(imported.events, 20);
        assert_eq!(imported.coverage.key, Some(key(1).public_key()));
        assert_eq!(imported.coverage.signed_to, Some(19));
        assert_eq!(imported.coverage.unsigned, 0);
    }
    // Kept durably, in the same batch as the events.
    let target = SledLog::open(dir.path()).unwrap();
    assert_eq!(target.signed_heads().unwrap(), heads);
    assert_eq!(target.last_signed_head().unwrap(), Some(heads[1]));
    // Export again: the same text.
    let mut again = Vec::new();
    let stored = target.signed_heads().unwrap();
    export_signed_jsonl(&target, target.len(), &stored, &mut again).unwrap();
    assert_eq!(String::from_utf8(again).unwrap(), text);
    // Insisting on the key that signed it to its end: taken.
    import(&text, Some(&key(1))).unwrap();
}

#[test]
fn an_export_edited_and_resealed_is_refused_by_its_signed_heads() {
    let (text, _) = signed_export();
    // The hire at position 1 renamed (the fold stays consistent), the chain re-sealed.
    let renamed = resealed(&text, |e| {
        let v = serde_json::to_string(&e.body.event).unwrap();
        e.body.event = serde_json::from_str(&v.replace("agent-0", "agent-9")).unwrap();
    });
    assert_ne!(renamed, text);
    // Without its heads it passes every check of the chain and the rules (the unkeyed chain
    // cannot tell)...
    let unsigned = import(&without_heads(&renamed), None).unwrap();
    assert_eq!(unsigned.coverage.signed_to, None);
    assert_eq!(unsigned.coverage.unsigned, 20);
    // ... but not the heads: the chain's hash at 3 is not the one key 1 signed.
    let err = import(&renamed, None).unwrap_err();
    assert!(err.is_signature(), "{err}");
    match err {
        ImportError::Head {
            line: 5,
            source: HeadError::Rewritten { seq: 3, key: k },
        } => assert_eq!(k, key(1).public_key()),
        other => panic!("{other}"),
    }
}

#[test]
fn a_tampered_or_forged_head_is_refused() {
    let (text, heads) = signed_export();
    // A signature with one bit flipped.
    let mut h = heads[1];
    h.signature.0[10] ^= 4;
    let tampered = text.replace(
        &serde_json::to_string(&heads[1].signature).unwrap(),
        &serde_json::to_string(&h.signature).unwrap(),
    );
    assert_ne!(tampered, text);
    assert!(matches!(
        import(&tampered, None),
        Err(ImportError::Head {
            line: 22,
            source: HeadError::BadSignature { seq: 19, .. }
        })
    ));
    // A head moved to another position it did not sign.
    let moved = text.replace(
        "{\"signed_head\":{\"seq\":3,",
        "{\"signed_head\":{\"seq\":2,",
    );
    assert!(matches!(
        import(&moved, None),
        Err(ImportError::Head {
            source: HeadError::BadSignature { seq: 2, .. },
            ..
        })
    ));
    // A head of a position the export lacks (events cut off, the head kept).
    let cut: Vec<&str> = text.lines().collect();
    let cut = [&cut[..20], &cut[21..]].concat().join("\n");
    assert!(matches!(
        import(&cut, None),
        Err(ImportError::Head {
            source: HeadError::Beyond {
                seq: 19,
                len: 19,
                ..
            },
            ..
        })
    ));
    // A line that calls itself a head but is not one.
    let broken = text.replace("\"public_key\"", "\"publickey\"");
    assert!(matches!(
        import(&broken, None),
        Err(ImportError::HeadJson { line: 5, .. })
    ));
}

#[test]
fn an_unsigned_export_is_taken_and_said_unsigned_unless_a_key_is_insisted_on() {
    let (text, _) = signed_export();
    let bare = without_heads(&text);
    let imported = import(&bare, None).unwrap();
    assert_eq!(imported.events, 20);
    assert_eq!(imported.coverage.heads, 0);
    assert_eq!(imported.coverage.key, None);
    assert_eq!(imported.coverage.unsigned, 20);
    // Old callers still import it.
    assert_eq!(
        import_jsonl(&MemLog::new(), &mut bare.as_bytes()).unwrap(),
        20
    );
    // Insisting on a key: unsigned, signed by another key only, or not to the end: refused.
    for (text, signed_to) in [
        (bare.clone(), None),
        (text.clone(), None),
        (
            text.lines()
                .filter(|l| !l.starts_with("{\"signed_head\":{\"seq\":19"))
                .collect::<Vec<_>>()
                .join("\n"),
            Some(3),
        ),
    ] {
        let pin = if signed_to.is_none() && text.contains("signed_head") {
            key(2)
        } else {
            key(1)
        };
        match import(&text, Some(&pin)) {
            Err(ImportError::NotSignedBy {
                key: k,
                signed_to: s,
                last: 19,
            }) => {
                assert_eq!((k, s), (pin.public_key(), signed_to));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn heads_of_several_keys_are_kept_side_by_side_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = {
        let log = Arc::new(SledLog::open(dir.path()).unwrap());
        common::populate(&log, 1, 2);
        let a = sign_at(&*log, &key(1), 2);
        let b = sign_at(&*log, &key(2), 2);
        log.keep_signed_head(a).unwrap();
        log.keep_signed_head(b).unwrap();
        // The same key and position again: replaced, not added.
        log.keep_signed_head(a).unwrap();
        (a, b)
    };
    let log = SledLog::open(dir.path()).unwrap();
    let mut expected = vec![a, b];
    expected.sort_by_key(|h| h.public_key.to_bytes());
    assert_eq!(log.signed_heads().unwrap(), expected);
    let early = sign_at(&log, &key(1), 0);
    log.keep_signed_head(early).unwrap();
    assert_eq!(log.last_signed_head().unwrap().unwrap().seq, 2);
    assert_eq!(log.signed_head(2, &b.public_key).unwrap(), Some(b));
    assert_eq!(log.signed_head(1, &b.public_key).unwrap(), None);
    assert_eq!(log.signed_heads().unwrap()[0], early);
    // Heads are not events: the log and its chain are as they were.
    assert_eq!(log.verify().unwrap(), 7);
}
