//! `verify` and `head`: the chain, and the signed heads that make a rewrite of it detectable
//! (`roster_core::signed`, `crate::signing`).
//!
//! `verify` walks the whole chain (a break is exit 4), then checks every signed head kept
//! beside the log and every head of a witness's file (`--head`): its signature, and that the
//! chain's hash at its position is the one signed. A head that does not hold is exit 9: the
//! history was rewritten (or cut short) after it was signed, or the head was forged. Then it
//! says how far heads by the trusted key cover the log — the key given (`--key`), else the
//! witness's, else the data directory's own (which a writer of the directory can replace: only
//! the first two check anything against them). With `--key`, a non-empty log with no head of
//! that key at all is exit 9 too: heads do not vanish by themselves.

use std::io::{BufRead, BufReader};
use std::path::Path;

use roster_core::port::LogError;
use roster_core::signed::{Coverage, PublicKey, SignedHead};
use serde::Deserialize;

use super::{AdminError, Ctx, HeadItem, Item, Trust, Verified};
use crate::app::{log_dir, RuntimeError, Store};
use crate::error::SIGNATURE_EXIT;
use crate::signing::Make;

/// A line of a witness's file: a head as `roster head --json` prints it, or as an export
/// carries it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportLine {
    signed_head: SignedHead,
}

/// Reads a witness's file of signed heads, one per line, each with its line number; every
/// signature is checked here (a head that does not verify tells nothing about the log).
fn read_witness(path: &Path) -> Result<Vec<(u64, SignedHead)>, AdminError> {
    let unreadable = |source| AdminError::Unreadable {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let bad = |line: u64, why: String| AdminError::Witness {
        path: path.to_owned(),
        line,
        why,
    };
    let mut heads = Vec::new();
    for (n, text) in BufReader::new(file).lines().enumerate() {
        let line = n as u64 + 1;
        let text = text.map_err(unreadable)?;
        if text.trim().is_empty() {
            continue;
        }
        let head = match serde_json::from_str::<SignedHead>(&text) {
            Ok(h) => h,
            Err(e) => match serde_json::from_str::<ExportLine>(&text) {
                Ok(l) => l.signed_head,
                Err(_) => return Err(bad(line, format!("not a signed head: {e}"))),
            },
        };
        head.check().map_err(|e| bad(line, e.to_string()))?;
        heads.push((line, head));
    }
    if heads.is_empty() {
        return Err(bad(0, "it holds no signed head".into()));
    }
    Ok(heads)
}

/// The chain's hash at `seq` in `log`, if the log holds it.
fn hash_at(log: &dyn Store, seq: u64) -> Result<Option<roster_core::envelope::Hash>, LogError> {
    Ok(log
        .read(seq, 1)?
        .pop()
        .filter(|e| e.seq == seq)
        .map(|e| e.hash()))
}

pub(super) fn verify(
    witness: Option<&Path>,
    key: Option<PublicKey>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    let dir = log_dir(ctx.data_dir);
    if !dir.exists() {
        return Err(RuntimeError::NotInitialized(ctx.data_dir.to_owned()).into());
    }
    // A witness's file is the operator's input: a bad one is refused before the log is read.
    let witnessed = witness.map(|p| read_witness(&ctx.path(p))).transpose()?;
    let opened: Result<std::sync::Arc<dyn Store>, RuntimeError> = match ctx.daemon {
        Some(d) => d.read(|app| std::sync::Arc::clone(app.log())),
        None => crate::private::open_log(&dir).map(|l| std::sync::Arc::new(l) as _),
    };
    let chain = opened.and_then(|log| {
        let n = log.verify()?;
        let head = match n.checked_sub(1) {
            None => None,
            Some(last) => hash_at(&*log, last)?,
        };
        Ok((log, n, head.map_or_else(|| "-".into(), |h| h.to_hex())))
    });
    let (log, events, head_hash) = match chain {
        Ok(checked) => checked,
        Err(RuntimeError::Log(e @ (LogError::Corrupt(_) | LogError::Damaged { .. }))) => {
            ctx.reply.send(Item::Verified(Verified::Altered {
                error: e.to_string(),
            }))?;
            return Err(AdminError::Reported(4));
        }
        Err(other) => return Err(other.into()),
    };
    let contradicted = |error: String| -> Result<(), AdminError> {
        ctx.reply.send(Item::Verified(Verified::Contradicted {
            events,
            head_hash: head_hash.clone(),
            error,
        }))?;
        Err(AdminError::Reported(SIGNATURE_EXIT))
    };
    // Heads first, then the length: every head kept was signed over a committed event, so one
    // past the length read after them was cut off the log.
    let kept = match log.signed_heads() {
        Ok(heads) => heads,
        Err(e @ LogError::Damaged { .. }) => {
            ctx.reply.send(Item::Verified(Verified::Altered {
                error: e.to_string(),
            }))?;
            return Err(AdminError::Reported(4));
        }
        Err(e) => return Err(e.into()),
    };
    let len = log.len();
    for head in &kept {
        if let Err(e) = head.check_against(len, hash_at(&*log, head.seq)?) {
            return contradicted(format!("a signed head kept with the log: {e}"));
        }
    }
    let witnessed = witnessed.unwrap_or_default();
    for (line, head) in &witnessed {
        let shown = witness.map(Path::display);
        let from = shown.map_or_else(String::new, |p| format!("{p} line {line}: "));
        if key.is_some_and(|k| k != head.public_key) {
            return contradicted(format!(
                "{from}the witness's head of position {} is signed by {}, not by the key given \
                 with --key",
                head.seq, head.public_key
            ));
        }
        if let Err(e) = head.check_against(len, hash_at(&*log, head.seq)?) {
            return contradicted(format!("{from}{e}"));
        }
    }
    let (trusted, trust) = match (key, witnessed.last()) {
        (Some(k), _) => (Some(k), Trust::Pinned),
        (None, Some((_, h))) => (Some(h.public_key), Trust::Witness),
        (None, None) => match own_key(ctx) {
            Some(k) => (Some(k), Trust::DataDir),
            None => (None, Trust::Latest),
        },
    };
    let signed = Coverage::of(&kept, trusted, len.max(events));
    if let (Some(k), None, true) = (key, signed.signed_to, len > 0) {
        // Asked whether this key signed the log: no head of it at all is a no.
        return contradicted(format!(
            "no signed head by {k} is kept with this log: its heads were removed (the log \
             replaced?), or that key never signed it"
        ));
    }
    ctx.reply.send(Item::Verified(Verified::Intact {
        events,
        head_hash,
        signed,
        trust,
        witnessed: witnessed.len() as u64,
    }))?;
    Ok(())
}

/// The data directory's own public key, if it can be read (a key kept elsewhere may be away).
fn own_key(ctx: &Ctx<'_>) -> Option<PublicKey> {
    match ctx.signer(Make::Never) {
        Ok(signer) => signer.map(|s| s.public_key()),
        Err(e) => {
            let _ = ctx.reply.note(format!(
                "note: cannot read this data directory's signing key ({}); signed events are \
                 counted for the key of the latest head",
                e.message().unwrap_or_default()
            ));
            None
        }
    }
}

pub(super) fn head(out: Option<&Path>, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let log = ctx.store()?;
    let len = log.len();
    if len == 0 {
        return Err(RuntimeError::NothingToSign { len }.into());
    }
    let (head, signed_now) = match ctx.signer(Make::AtDefault)? {
        Some(signer) => {
            let before = log.last_signed_head()?;
            let head = signer
                .sign_head(&*log)?
                .ok_or(RuntimeError::NothingToSign { len })?;
            (head, before != Some(head))
        }
        None => {
            // The key is configured elsewhere and away: the latest head kept is what there is.
            let missing = crate::signing::Signer::require(ctx.data_dir, Make::AtDefault);
            let Some(head) = log.last_signed_head()? else {
                return Err(missing.err().map_or(
                    AdminError::Runtime(RuntimeError::NothingToSign { len }),
                    AdminError::from,
                ));
            };
            if let Err(e) = missing {
                ctx.reply.note(format!(
                    "note: {}; this is the latest head kept, not a new one",
                    crate::error::sentence(&e)
                ))?;
            }
            head.check().map_err(RuntimeError::from)?;
            (head, false)
        }
    };
    if let Some(out) = out {
        let path = ctx.path(out);
        let mut text = serde_json::to_string(&head).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(&path, text).map_err(|source| AdminError::Unwritable {
            path: path.clone(),
            source,
        })?;
    }
    ctx.reply.send(Item::Head(HeadItem {
        head,
        signed_now,
        unsigned: len.saturating_sub(head.seq + 1),
    }))?;
    Ok(())
}
