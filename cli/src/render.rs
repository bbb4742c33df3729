//! How an operation's [`Item`]s look: aligned tables and sentences for people, or with
//! `--json` one JSON object per line for programs. The same rendering serves an operation run
//! here and one the daemon ran (its items arrive over the admin socket).

use std::io::Write;

use roster_core::gateway::answer::ShareState;
use roster_core::signed::Coverage;
use roster_runtime::admin::{
    Item, Replayed, Request, Serving, Status, Stream, Trust, Verdict, Verified,
};
use roster_runtime::app::now;
use roster_runtime::describe::relative;
use serde_json::json;

use crate::output::Table;

/// How many characters of an approval's arguments its row shows (`--json`: all of them).
const APPROVAL_ARGS_SHOWN: usize = 60;

/// Renders one operation's items as they come; tables wait for [`Render::finish`].
#[derive(Debug)]
pub struct Render {
    json: bool,
    /// An agent's output byte for byte (`--raw`), else escaped.
    raw: bool,
    /// The listing's table, its header given by the request.
    table: Option<Table>,
    /// What a listing says when it has no rows.
    empty: &'static str,
    /// Notes held back until the table is out (a note about a listing follows it).
    notes: Vec<String>,
}

impl Render {
    /// Prints an agent's output byte for byte (`--raw`) rather than escaped.
    pub fn raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// A renderer for the answer to `request`.
    pub fn new(request: &Request, json: bool) -> Self {
        let (header, empty): (&[&str], &'static str) = match request {
            Request::Teams => (
                &["team", "agents", "events", "created", "id"],
                "no teams yet",
            ),
            Request::Agents { .. } => (
                &[
                    "agent",
                    "role",
                    "status",
                    "container",
                    "runtime",
                    "grants",
                    "hired",
                    "by",
                    "id",
                ],
                "no agents",
            ),
            Request::Grants { .. } => (
                &[
                    "grant",
                    "holder",
                    "capability",
                    "status",
                    "spent",
                    "parent",
                    "issued",
                ],
                "no grants",
            ),
            Request::Approvals { .. } => (
                &[
                    "approval", "agent", "action", "resource", "amount", "since", "state", "args",
                ],
                "nothing waits for approval",
            ),
            Request::Shares { .. } => (
                &["share", "from", "to", "topics", "state", "crossed"],
                "no shares",
            ),
            _ => (&[], ""),
        };
        Self {
            json,
            raw: false,
            table: (!header.is_empty() && !json).then(|| Table::new(header)),
            empty,
            notes: Vec::new(),
        }
    }

    /// Renders one item (a table row is kept for [`Render::finish`]).
    pub fn item(&mut self, item: Item) -> std::io::Result<()> {
        let now = now();
        if let Some(line) = self.row(&item, now) {
            if let Some(t) = &mut self.table {
                t.row(line);
            }
            if !self.json {
                return Ok(());
            }
        }
        match item {
            Item::Committed { envelope, text } => {
                if self.json {
                    json_line(&envelope)
                } else {
                    line(&format!("#{:<5} {text}", envelope.seq))
                }
            }
            Item::Hired { agent, address } => self.text(&format!("hired {address} as {agent}")),
            Item::Cascaded { grants } => self.text(&format!(
                "       {grants} grant(s) derived from it stop working too"
            )),
            Item::Team(t) => json_line(&t),
            Item::Agent(a) => json_line(&a.row),
            Item::Grant(g) => json_line(&g),
            Item::Approval(a) => json_line(&a),
            Item::Share(s) => json_line(&s),
            Item::Check(c) => {
                if self.json {
                    return json_line(&c.row);
                }
                let r = &c.row;
                let (name, action, resource) = (&c.address, &r.action, &r.resource);
                line(&match r.decision {
                    Verdict::Allow => format!(
                        "ALLOW: {name} may {action} on {resource} (amount {})",
                        r.amount
                    ),
                    Verdict::NeedsApproval => format!(
                        "NEEDS APPROVAL: {name} may {action} on {resource} once a human approves"
                    ),
                    Verdict::Deny => format!(
                        "DENY: {name} may not {action} on {resource}: {}",
                        r.reason.as_deref().unwrap_or_default()
                    ),
                })?;
                for (i, link) in c.links.iter().enumerate() {
                    line(&format!(
                        "  {} {link}",
                        if i == 0 { "via " } else { "from" }
                    ))?;
                }
                Ok(())
            }
            Item::Performed { answer, text } => {
                if self.json {
                    json_line(&answer)
                } else {
                    line(&text)
                }
            }
            Item::ActFailed {
                code,
                message,
                approval,
            } => {
                if self.json {
                    let mut e = json!({ "code": code, "message": message });
                    if let Some(id) = approval {
                        e["approval"] = json!(id);
                    }
                    raw(Stream::Err, &format!("{e}\n"))
                } else {
                    note(&message)
                }
            }
            Item::Event(e) => {
                if self.json {
                    return json_line(&e.envelope);
                }
                let v = &e.envelope;
                line(&format!(
                    "#{:<5} {:>9}  {:<12} v{:<4} {:<22} {}",
                    v.seq,
                    relative(v.at, now),
                    e.team,
                    v.version,
                    e.actor,
                    e.text
                ))
            }
            Item::Replayed(r) => self.replayed(&r),
            Item::Verified(Verified::Intact {
                events,
                head_hash,
                signed,
                trust,
                witnessed,
            }) => {
                if self.json {
                    return json_line(&json!({
                        "ok": true, "events": events, "head_hash": head_hash,
                        "signed_to": signed.signed_to, "unsigned": signed.unsigned,
                        "key": signed.key, "trust": trust, "heads": signed.heads,
                        "other_keys": signed.other_keys, "witnessed": witnessed,
                    }));
                }
                line(&format!(
                    "ok: {events} events, hash chain intact, head {head_hash}"
                ))?;
                line(&coverage(&signed, Some(trust)))?;
                if witnessed > 0 {
                    line(&format!(
                        "witnessed: the log holds all {witnessed} of the witness's signed heads"
                    ))?;
                }
                Ok(())
            }
            Item::Verified(Verified::Altered { error }) => {
                if self.json {
                    json_line(&json!({"ok": false, "error": error}))
                } else {
                    line(&format!("ALTERED OR CORRUPT: {error}"))
                }
            }
            Item::Verified(Verified::Contradicted { error, .. }) => {
                if self.json {
                    json_line(&json!({"ok": false, "contradicted": true, "error": error}))
                } else {
                    line(&format!("REWRITTEN OR FORGED: {error}"))
                }
            }
            Item::Imported {
                imported,
                head_hash,
                signed,
                countersigned,
            } => {
                if self.json {
                    return json_line(&json!({
                        "imported": imported, "head_hash": head_hash,
                        "signed_to": signed.signed_to, "unsigned": signed.unsigned,
                        "key": signed.key, "heads": signed.heads,
                        "other_keys": signed.other_keys, "countersigned": countersigned,
                    }));
                }
                line(&format!(
                    "imported {imported} events, every hash and rule re-checked; head \
                     {head_hash}"
                ))?;
                line(&coverage(&signed, None))?;
                if let Some(k) = countersigned {
                    line(&format!(
                        "this data directory's key {k} signed the imported head (it vouches \
                         for this import, not for where the export came from)"
                    ))?;
                }
                line(
                    "(a cut-off export cannot be told from a shorter log by itself: check it \
                     against a witness's heads with `roster verify --head FILE`)",
                )
            }
            Item::Head(h) => {
                if self.json {
                    return json_line(&h.head);
                }
                let head = &h.head;
                line(&format!(
                    "head: position {}, hash {}, signed {}{}\npublic key: {}",
                    head.seq,
                    head.hash,
                    head.at,
                    if h.signed_now { " (now)" } else { "" },
                    head.public_key
                ))?;
                if h.unsigned > 0 {
                    note(&format!("{} event(s) after it are not signed", h.unsigned))?;
                }
                Ok(())
            }
            Item::Initialized(i) => {
                if self.json {
                    return json_line(&json!({
                        "data_dir": i.data_dir, "events": i.events, "created": i.created,
                        "public_key": i.public_key, "key_file": i.key_file,
                    }));
                }
                let dir = i.data_dir.display();
                line(&if i.serving {
                    format!(
                        "{dir} is already a roster data directory ({} events; `roster serve` \
                         runs on it)",
                        i.events
                    )
                } else if i.created {
                    format!("initialised an empty roster log in {dir}")
                } else {
                    format!(
                        "{dir} is already a roster data directory ({} events)",
                        i.events
                    )
                })?;
                match (&i.key_file, i.public_key) {
                    (Some(file), Some(key)) => line(&format!(
                        "signing key: {}{} (public key {key}: give it to whoever keeps your \
                         signed heads)",
                        file.display(),
                        if i.key_made { ", made now" } else { "" }
                    )),
                    _ => Ok(()),
                }
            }
            Item::Status(s) => self.status(&s),
            Item::Control { agent, done } => {
                if self.json {
                    let mut o = serde_json::Map::new();
                    o.insert("agent".into(), json!(agent));
                    o.insert(done.as_str().into(), json!(true));
                    json_line(&o)
                } else {
                    line(&format!("{} {agent}", done.as_str()))
                }
            }
            Item::Text(text) => raw(Stream::Out, &text),
            Item::Output { stream, text } if self.raw => raw(stream, &text),
            Item::Output { stream, text } => raw(stream, &inert(&text)),
            Item::Note(text) if self.table.is_some() => {
                self.notes.push(text);
                Ok(())
            }
            Item::Note(text) => note(&text),
        }
    }

    /// A listing's table row for `item`, if it is one.
    fn row(&self, item: &Item, now: roster_core::time::Timestamp) -> Option<Vec<String>> {
        Some(match item {
            Item::Team(t) => vec![
                t.name.to_string(),
                t.agents.to_string(),
                t.version.to_string(),
                relative(t.created_at, now),
                t.id.to_string(),
            ],
            Item::Agent(a) => {
                let r = &a.row;
                vec![
                    a.address.clone(),
                    r.role.to_string(),
                    r.status.clone(),
                    r.container.clone(),
                    r.runtime.as_str().to_string(),
                    r.active_grants.to_string(),
                    relative(r.hired_at, now),
                    a.by.clone(),
                    r.id.to_string(),
                ]
            }
            Item::Grant(g) => vec![
                g.id.to_string(),
                g.holder_name.clone(),
                g.capability.to_string(),
                g.status.clone(),
                match g.budget {
                    Some(b) => format!("{}/{b}", g.spent),
                    None => g.spent.to_string(),
                },
                g.parent.map_or_else(|| "root".to_string(), |p| p.short()),
                relative(g.issued_at, now),
            ],
            Item::Approval(a) => vec![
                a.id.to_string(),
                a.agent_name.clone(),
                a.action.to_string(),
                a.resource.to_string(),
                a.amount.to_string(),
                relative(a.requested_at, now),
                a.state.clone(),
                a.args.as_ref().map_or_else(
                    || "(not recorded)".to_string(),
                    |args| roster_runtime::describe::args(args, APPROVAL_ARGS_SHOWN),
                ),
            ],
            Item::Share(s) => {
                let team = |t: &Option<roster_core::name::Name>| {
                    t.as_ref()
                        .map_or_else(|| "?".to_string(), ToString::to_string)
                };
                vec![
                    s.id.to_string(),
                    team(&s.from),
                    team(&s.to),
                    s.topics.as_str().to_owned(),
                    match s.state {
                        ShareState::Proposed => "proposed",
                        ShareState::Open => "open",
                        _ => "closed",
                    }
                    .to_owned(),
                    s.crossings.to_string(),
                ]
            }
            _ => return None,
        })
    }

    /// Text for people only (nothing with `--json`).
    fn text(&self, text: &str) -> std::io::Result<()> {
        if self.json {
            Ok(())
        } else {
            line(text)
        }
    }

    fn replayed(&self, r: &Replayed) -> std::io::Result<()> {
        if self.json {
            for t in &r.teams {
                json_line(
                    &json!({"kind": "team", "id": t.id, "name": t.name, "version": t.version}),
                )?;
            }
            for a in &r.agents {
                json_line(&json!({"kind": "agent", "id": a.id, "name": a.name,
                    "retired": a.retired, "parent": a.parent}))?;
            }
            for g in &r.grants {
                json_line(&json!({"kind": "grant", "id": g.id, "holder": g.holder,
                    "capability": g.capability, "active": g.active, "spent": g.spent}))?;
            }
            return Ok(());
        }
        line(&format!(
            "the world as it stood after position {} ({}):",
            r.at, r.when
        ))?;
        let mut t = Table::new(&["team", "events", "agents"]);
        for team in &r.teams {
            t.row(vec![
                team.name.to_string(),
                team.version.to_string(),
                team.agents.to_string(),
            ]);
        }
        line(&t.render())?;
        let mut t = Table::new(&["agent", "status", "grants (active)"]);
        for a in &r.agents {
            let caps: Vec<String> = a.active.iter().map(ToString::to_string).collect();
            let status = if a.retired { "retired" } else { "in service" };
            t.row(vec![a.name.clone(), status.into(), caps.join("  ")]);
        }
        if !t.is_empty() {
            line("")?;
            line(&t.render())?;
        }
        line(&format!(
            "\n{} open share(s), {} approval(s) waiting",
            r.open_shares, r.waiting
        ))
    }

    fn status(&self, s: &Status) -> std::io::Result<()> {
        let events = s.events;
        let Some(Serving {
            namespace,
            bus,
            agents_running,
            outbox,
        }) = &s.serving
        else {
            if self.json {
                return json_line(&json!({ "serving": false, "events": events }));
            }
            return line(&format!(
                "roster serve is not running on {} ({events} events in the log)",
                s.data_dir.display()
            ));
        };
        if self.json {
            return json_line(&json!({
                "serving": true,
                "namespace": namespace,
                "bus": bus,
                "events": events,
                "agents_running": agents_running,
                "published": outbox.as_ref().map(|o| o.next),
                "bus_connected": outbox.as_ref().map(|o| o.connected),
                "bus_error": outbox.as_ref().and_then(|o| o.last_error.clone()),
            }));
        }
        line(&format!(
            "roster serve is running on {} (namespace {namespace}); {agents_running} agent(s) \
             running; {events} events",
            s.data_dir.display()
        ))?;
        line(&match outbox {
            None => {
                format!("bus: {bus} (in-process; no outside subscribers but `roster subscribe`)")
            }
            Some(o) => format!(
                "bus: {bus} ({}); {} of {events} events published to JetStream{}",
                if o.connected {
                    "connected"
                } else {
                    "NOT connected: events wait in the log"
                },
                o.next,
                o.last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ),
        })
    }

    /// Ends an answer: if it succeeded, a listing's table (or what it says when empty); then
    /// the notes held back.
    pub fn finish(&mut self, succeeded: bool) -> std::io::Result<()> {
        match self.table.take() {
            Some(t) if succeeded && t.is_empty() => line(self.empty)?,
            Some(t) if succeeded => line(&t.render())?,
            _ => {}
        }
        for text in std::mem::take(&mut self.notes) {
            note(&text)?;
        }
        Ok(())
    }
}

/// Text on `stream`, flushed at once (for `--follow` readers).
fn raw(stream: Stream, text: &str) -> std::io::Result<()> {
    match stream {
        Stream::Out => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()
        }
        Stream::Err => std::io::stderr().lock().write_all(text.as_bytes()),
    }
}

/// An agent's output made inert for a terminal: every control character but newline and tab
/// (ESC and with it every escape sequence, carriage return, backspace, bell, DEL, C1) is shown
/// escaped, `\u{1b}`, so that what an agent prints can never move the cursor, rewrite what the
/// operator sees, retitle the window or answer for them.
fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// How far signed heads cover a log, in a sentence; `trust` says where `verify` took the key.
fn coverage(c: &Coverage, trust: Option<Trust>) -> String {
    let Some(key) = c.key else {
        return "unsigned: no signed head covers it, so nothing shows who wrote it (an edited \
                and re-sealed history would look the same)"
            .into();
    };
    let whose = match trust {
        Some(Trust::Pinned) => "the key given",
        Some(Trust::Witness) => "the witness's key",
        Some(Trust::DataDir) => {
            "this data directory's own key, which proves nothing against whoever can write \
             the directory: check with --key or --head"
        }
        Some(Trust::Latest) | None => "the latest head's key, pinned by nothing",
    };
    let mut text = match c.signed_to {
        Some(s) => format!(
            "signed: positions 0 to {s} by {key} ({whose}); {} event(s) after it unsigned",
            c.unsigned
        ),
        None => format!(
            "unsigned: no head by {key} ({whose}); all {} event(s) unsigned",
            c.unsigned
        ),
    };
    if !c.other_keys.is_empty() {
        let keys: Vec<String> = c.other_keys.iter().map(ToString::to_string).collect();
        text.push_str(&format!(
            "; heads by other keys also hold: {}",
            keys.join(", ")
        ));
    }
    text
}

/// A line for people.
fn line(text: &str) -> std::io::Result<()> {
    raw(Stream::Out, &format!("{text}\n"))
}

/// One JSON object on its own line.
fn json_line<T: serde::Serialize>(value: &T) -> std::io::Result<()> {
    let mut text = serde_json::to_string(value).map_err(std::io::Error::other)?;
    text.push('\n');
    raw(Stream::Out, &text)
}

/// A note for people on standard error.
pub fn note(text: &str) -> std::io::Result<()> {
    raw(Stream::Err, &format!("roster: {text}\n"))
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn an_agents_output_cannot_drive_the_terminal() {
        let printed = "ok\tdone\n\u{1b}]0;owned\u{7}\u{1b}[2J\rX\u{8}\u{9b}31m\u{7f}é\n";
        let shown = inert(printed);
        assert_eq!(
            shown,
            "ok\tdone\n\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}X\\u{8}\\u{9b}31m\\u{7f}é\n"
        );
        assert!(!shown
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'));
    }
}
