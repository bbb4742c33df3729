//! `init`, `log`, `replay`, `verify`, `export`, `import`: reading history, proving it, moving it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roster_core::envelope::Envelope;
use roster_core::port::{LogError, LogRead};
use roster_core::world::{AgentStatus, ShareState, World};
use roster_runtime::app::{log_dir, RuntimeError, Snapshot, Store};
use roster_runtime::describe;
use roster_store::SledLog;
use serde_json::json;

use super::Env;
use crate::error::CliError;
use crate::output::{relative, Table};
use crate::refs::TeamRef;

pub(super) fn init(env: &Env<'_>) -> anyhow::Result<()> {
    if env.daemon.is_some() {
        let n = env.read()?.log().len();
        if env.out.json {
            env.out
                .json_line(&json!({"data_dir": env.data_dir, "events": n, "created": false}))?;
        } else {
            env.out.line(format!(
                "{} is already a roster data directory ({n} events; `roster serve` runs on it)",
                env.data_dir.display()
            ))?;
        }
        return Ok(());
    }
    let dir = log_dir(env.data_dir);
    let existed = dir.exists();
    create_data_dir(env.data_dir)?;
    let log = SledLog::open(&dir)?;
    let n = log.len();
    if env.out.json {
        env.out
            .json_line(&json!({"data_dir": env.data_dir, "events": n, "created": !existed}))?;
    } else if existed {
        env.out.line(format!(
            "{} is already a roster data directory ({n} events)",
            env.data_dir.display()
        ))?;
    } else {
        env.out.line(format!(
            "initialised an empty roster log in {}",
            env.data_dir.display()
        ))?;
    }
    Ok(())
}

/// Creates the data directory, readable by its owner only: it holds the whole history. A
/// directory that already exists keeps its permissions (it may be shared, or `$HOME`); if others
/// can read it, say so.
pub(crate) fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.exists() {
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "roster: note: {} is open to other users (mode {mode:o}); the log inside is kept owner-only",
                dir.display()
            );
        }
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// One event as a line (with its newline): JSON, or a line for people.
fn render_event(
    world: &World,
    e: &Envelope,
    json: bool,
    now: roster_core::time::Timestamp,
) -> Result<String, CliError> {
    let mut line = if json {
        serde_json::to_string(e).map_err(|err| CliError::Input(err.to_string()))?
    } else {
        format!(
            "#{:<5} {:>9}  {:<12} v{:<4} {:<22} {}",
            e.seq,
            relative(e.at, now),
            describe::team(world, e.team),
            e.version,
            describe::actor(world, &e.actor),
            describe::event(world, &e.event)
        )
    };
    line.push('\n');
    Ok(line)
}

/// Events rendered per round of `log`: each round renders from a fresh snapshot, so a follower
/// sees the world as of the events it prints.
const LOG_CHUNK: u64 = 1024;

/// What [`read_log`] does with what it reads (`log`, and `subscribe` on the in-process bus).
pub(super) trait Follower {
    /// Called at the start of each round with that round's snapshot; returns the position to
    /// read from (`next` unless the reader moves it, e.g. to a durable's checkpoint).
    fn at_round(&mut self, _snapshot: &Snapshot, next: u64) -> Result<u64, CliError> {
        Ok(next)
    }
    /// The line (with its newline) for `e`, or `None` to skip it.
    fn render(&mut self, world: &World, e: &Envelope) -> Result<Option<String>, CliError>;
    /// Writes the line of the event at `seq`; `Break` ends the reading.
    fn write(&mut self, env: &Env<'_>, _seq: u64, line: &str) -> anyhow::Result<ControlFlow<()>> {
        env.out.write(crate::output::Stream::Out, line)?;
        Ok(ControlFlow::Continue(()))
    }
    /// True when a follower should stop (a signal came).
    fn stopped(&self) -> bool {
        false
    }
}

/// Reads the log from `from` in rounds of [`LOG_CHUNK`] events, each from a snapshot (nothing a
/// decision waits for is held while a slow reader takes its lines); with `follow`, waits for new
/// events until the reader stops or the client of the daemon leaves.
pub(super) fn read_log(
    env: &Env<'_>,
    from: u64,
    follow: bool,
    reader: &mut impl Follower,
) -> anyhow::Result<()> {
    let mut next = from;
    loop {
        let (lines, after, start) = {
            let snapshot = env.read()?;
            let start = reader.at_round(&snapshot, next)?;
            let mut lines = Vec::new();
            let after = snapshot.log().for_each(
                start,
                start.saturating_add(LOG_CHUNK),
                |e| -> Result<(), CliError> {
                    if let Some(line) = reader.render(snapshot.world(), &e)? {
                        lines.push((e.seq, line));
                    }
                    Ok(())
                },
            )?;
            (lines, after, start)
        };
        for (seq, line) in &lines {
            if reader.write(env, *seq, line)?.is_break() {
                return Ok(());
            }
        }
        let more = after == start.saturating_add(LOG_CHUNK);
        next = after;
        if more {
            continue;
        }
        if !follow || env.out.gone() || reader.stopped() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
        if reader.stopped() {
            return Ok(());
        }
    }
}

/// `roster log`: one line per event, for people or as JSON.
struct LogLines {
    team: Option<TeamRef>,
    /// `team`, resolved at the start of the round.
    team_id: Option<roster_core::id::TeamId>,
    json: bool,
    now: roster_core::time::Timestamp,
}

impl Follower for LogLines {
    fn at_round(&mut self, snapshot: &Snapshot, next: u64) -> Result<u64, CliError> {
        self.team_id = self
            .team
            .as_ref()
            .map(|t| t.resolve(snapshot.world()).map(|t| t.id))
            .transpose()
            .map_err(CliError::Input)?;
        self.now = roster_runtime::app::now();
        Ok(next)
    }

    fn render(&mut self, world: &World, e: &Envelope) -> Result<Option<String>, CliError> {
        if self.team_id.is_some_and(|t| t != e.team) {
            return Ok(None);
        }
        render_event(world, e, self.json, self.now).map(Some)
    }
}

pub(super) fn log(
    team: Option<TeamRef>,
    from: u64,
    follow: bool,
    env: &Env<'_>,
) -> anyhow::Result<()> {
    let mut lines = LogLines {
        team,
        team_id: None,
        json: env.out.json,
        now: roster_runtime::app::now(),
    };
    read_log(env, from, follow, &mut lines)
}

pub(super) fn replay(at: u64, team: Option<TeamRef>, env: &Env<'_>) -> anyhow::Result<()> {
    // Under the daemon, the log is read without holding it (agents and commands go on).
    let log = env.history()?;
    if at >= log.len() {
        let held = match log.len() {
            0 => "the log is empty".to_string(),
            n => format!("the log holds positions 0 to {}", n - 1),
        };
        return Err(CliError::Input(format!("there is no position {at}: {held}")).into());
    }
    // Only the prefix is read: the world as it stood after `at`.
    let mut world = World::new();
    let mut when = roster_core::time::Timestamp::EPOCH;
    log.for_each(0, at + 1, |e| -> Result<(), CliError> {
        world.apply(&e)?;
        when = e.at;
        Ok(())
    })?;
    let team = team
        .as_ref()
        .map(|t| t.resolve(&world).map(|t| t.id))
        .transpose()
        .map_err(CliError::Input)?;
    let keep = |t| team.is_none_or(|x| x == t);
    if env.out.json {
        for t in world.teams().filter(|t| keep(t.id)) {
            env.out.json_line(
                &json!({"kind": "team", "id": t.id, "name": t.name, "version": t.version}),
            )?;
        }
        for a in world.agents().filter(|a| keep(a.team)) {
            env.out.json_line(
                &json!({"kind": "agent", "id": a.id, "name": describe::agent(&world, a.id),
                "retired": a.is_retired(), "parent": a.parent}),
            )?;
        }
        for g in world.grants() {
            let Some(h) = world.agent(g.holder) else {
                continue;
            };
            if keep(h.team) {
                env.out.json_line(&json!({"kind": "grant", "id": g.id, "holder": g.holder,
                    "capability": g.capability, "active": world.is_active(g.id, when), "spent": g.spent}))?;
            }
        }
        return Ok(());
    }
    env.out.line(format!(
        "the world as it stood after position {at} ({when}):"
    ))?;
    let mut t = Table::new(&["team", "events", "agents"]);
    for team in world.teams().filter(|t| keep(t.id)) {
        let n = world
            .agents()
            .filter(|a| a.team == team.id && !a.is_retired())
            .count();
        t.row(vec![
            team.name.to_string(),
            team.version.to_string(),
            n.to_string(),
        ]);
    }
    env.out.line(t.render())?;
    let mut t = Table::new(&["agent", "status", "grants (active)"]);
    for a in world.agents().filter(|a| keep(a.team)) {
        let caps: Vec<String> = world
            .active_grants_of(a.id, when)
            .iter()
            .map(|g| g.capability.to_string())
            .collect();
        let status = if a.status == AgentStatus::Retired {
            "retired"
        } else {
            "in service"
        };
        t.row(vec![
            describe::agent(&world, a.id),
            status.into(),
            caps.join("  "),
        ]);
    }
    if !t.is_empty() {
        env.out.line("")?;
        env.out.line(t.render())?;
    }
    let open = world
        .shares()
        .filter(|s| s.state == ShareState::Open && (keep(s.from) || keep(s.to)))
        .count();
    let waiting = world.approvals().filter(|a| a.decision.is_none()).count();
    env.out.line(format!(
        "\n{open} open share(s), {waiting} approval(s) waiting"
    ))?;
    Ok(())
}

pub(super) fn verify(env: &Env<'_>) -> anyhow::Result<()> {
    let dir = log_dir(env.data_dir);
    if !dir.exists() {
        return Err(
            CliError::Runtime(RuntimeError::NotInitialized(env.data_dir.to_owned())).into(),
        );
    }
    let check = |log: &dyn LogRead| {
        let n = log.verify()?;
        let head = if n == 0 {
            None
        } else {
            log.read(n - 1, 1)?.pop()
        };
        Ok((
            n,
            head.map(|e| e.hash().to_hex())
                .unwrap_or_else(|| "-".into()),
        ))
    };
    let result = match env.daemon {
        Some(_) => check(&env.history()?),
        None => SledLog::open(&dir).and_then(|log| check(&log)),
    };
    match result {
        Ok((n, hash)) => {
            if env.out.json {
                env.out
                    .json_line(&json!({"ok": true, "events": n, "head_hash": hash}))?;
            } else {
                env.out
                    .line(format!("ok: {n} events, hash chain intact, head {hash}"))?;
            }
            Ok(())
        }
        Err(e @ (LogError::Corrupt(_) | LogError::Damaged { .. })) => {
            if env.out.json {
                env.out
                    .json_line(&json!({"ok": false, "error": e.to_string()}))?;
            } else {
                env.out.line(format!("ALTERED OR CORRUPT: {e}"))?;
            }
            Err(CliError::Reported(4).into())
        }
        Err(other) => Err(CliError::from(other).into()),
    }
}

pub(super) fn export(file: Option<PathBuf>, env: &Env<'_>) -> anyhow::Result<()> {
    // The log reads without holding the daemon: agents and other commands go on meanwhile.
    let log = env.history()?;
    let n = match &file {
        Some(path) => {
            let mut w = BufWriter::new(File::create(env.path(path))?);
            let n = roster_store::export_jsonl(&log, &mut w)?;
            w.flush()?;
            n
        }
        None => {
            let mut w = env.out.writer();
            let n = roster_store::export_jsonl(&log, &mut w)?;
            w.flush()?;
            n
        }
    };
    if let Some(path) = file {
        env.out
            .note(format!("exported {n} events to {}", path.display()))?;
    }
    Ok(())
}

pub(super) fn import(file: &Path, env: &Env<'_>) -> anyhow::Result<()> {
    // Read access to the file is checked before anything is created.
    let file = env.path(file);
    let input = File::open(&file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
    let into = |log: &dyn Store| -> Result<(u64, Option<Envelope>), CliError> {
        if !log.is_empty() {
            return Err(CliError::Input(format!(
                "{} already holds {} events: import only into an empty data directory",
                env.data_dir.display(),
                log.len()
            )));
        }
        let n =
            roster_store::import_jsonl(log, &mut BufReader::new(input)).map_err(CliError::from)?;
        let head = if n == 0 {
            None
        } else {
            log.read(n - 1, 1)?.pop()
        };
        Ok((n, head))
    };
    let (n, head) = if env.daemon.is_some() {
        env.decide(|app| {
            let imported = into(&**app.log())?;
            app.refold()?;
            Ok(imported)
        })?
    } else {
        create_data_dir(env.data_dir)?;
        into(&SledLog::open(&log_dir(env.data_dir))?)?
    };
    let hash = head
        .map(|e| e.hash().to_hex())
        .unwrap_or_else(|| "-".into());
    if env.out.json {
        env.out
            .json_line(&json!({"imported": n, "head_hash": hash}))?;
    } else {
        env.out.line(format!(
            "imported {n} events, every hash and rule re-checked; head {hash}\n\
             (a cut-off export cannot be told from a shorter log: compare the head with `roster verify` where it was made)"
        ))?;
    }
    Ok(())
}
