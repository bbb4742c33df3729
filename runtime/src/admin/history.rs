//! `init`, `log`, `replay`, `verify`, `export`, `import`: reading history, proving it, moving it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roster_core::envelope::Envelope;
use roster_core::port::{LogError, LogRead};
use roster_core::refs::TeamRef;
use roster_core::world::{ShareState, World};

use super::{
    AdminError, Ctx, EventLine, Initialized, Item, Replayed, ReplayedAgent, ReplayedGrant,
    ReplayedTeam, Verified,
};
use crate::app::{log_dir, RuntimeError, Snapshot, Store};
use crate::describe;

pub(super) fn init(ctx: &Ctx<'_>) -> Result<(), AdminError> {
    if ctx.daemon.is_some() {
        let events = ctx.read()?.log().len();
        ctx.reply.send(Item::Initialized(Initialized {
            data_dir: ctx.data_dir.to_owned(),
            events,
            created: false,
            serving: true,
        }))?;
        return Ok(());
    }
    let dir = log_dir(ctx.data_dir);
    let existed = dir.exists();
    if let Some(note) = create_data_dir(ctx.data_dir)? {
        ctx.reply.note(note)?;
    }
    let events = crate::private::open_log(&dir)?.len();
    ctx.reply.send(Item::Initialized(Initialized {
        data_dir: ctx.data_dir.to_owned(),
        events,
        created: !existed,
        serving: false,
    }))?;
    Ok(())
}

/// Creates the data directory, readable by its owner only: it holds the whole history. A
/// directory that already exists keeps its permissions (it may be shared, or `$HOME`); if others
/// can enter it, the note says so. Every caller then opens the log through
/// `private::open_log`, which makes `log/` owner-only whatever the directory's mode: that is
/// what makes the note true.
pub fn create_data_dir(dir: &Path) -> Result<Option<String>, AdminError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let failed = |source| AdminError::DataDir {
        path: dir.to_owned(),
        source,
    };
    if dir.exists() {
        let mode = std::fs::metadata(dir).map_err(failed)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Ok(Some(format!(
                "note: {} is open to other users (mode {mode:o}); the log inside is kept \
                 owner-only (mode 700)",
                dir.display()
            )));
        }
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(failed)?;
    }
    Ok(None)
}

/// Creates a data directory with an empty log (what `roster init` does), for the benches.
pub fn init_data_dir(dir: &Path) -> Result<(), AdminError> {
    create_data_dir(dir)?;
    crate::private::open_log(&log_dir(dir))?;
    Ok(())
}

/// Events read per round of `log`: each round reads from a fresh snapshot, so a follower sees
/// the world as of the events it sends.
const LOG_CHUNK: u64 = 1024;

/// What [`read_log`] does with what it reads (`log`, and `subscribe` on the in-process bus).
pub(super) trait Follower {
    /// Called at the start of each round with that round's snapshot; returns the position to
    /// read from (`next` unless the reader moves it, e.g. to a durable's checkpoint).
    fn at_round(&mut self, _snapshot: &Snapshot, next: u64) -> Result<u64, AdminError> {
        Ok(next)
    }
    /// The item for `e`, or `None` to skip it.
    fn item(&mut self, world: &World, e: &Envelope) -> Result<Option<Item>, AdminError>;
    /// Sends the item of the event at `seq`; `Break` ends the reading.
    fn send(
        &mut self,
        ctx: &Ctx<'_>,
        _seq: u64,
        item: Item,
    ) -> Result<ControlFlow<()>, AdminError> {
        ctx.reply.send(item)?;
        Ok(ControlFlow::Continue(()))
    }
    /// True when a follower should stop (a signal came).
    fn stopped(&self) -> bool {
        false
    }
}

/// Reads the log from `from` in rounds of [`LOG_CHUNK`] events, each from a snapshot (nothing a
/// decision waits for is held while a slow reader takes its items); with `follow`, waits for new
/// events until the reader stops or the client of the daemon leaves.
pub(super) fn read_log(
    ctx: &Ctx<'_>,
    from: u64,
    follow: bool,
    reader: &mut impl Follower,
) -> Result<(), AdminError> {
    let mut next = from;
    loop {
        let (items, after, start) = {
            let snapshot = ctx.read()?;
            let start = reader.at_round(&snapshot, next)?;
            let mut items = Vec::new();
            let after = snapshot.log().for_each(
                start,
                start.saturating_add(LOG_CHUNK),
                |e| -> Result<(), AdminError> {
                    if let Some(item) = reader.item(snapshot.world(), &e)? {
                        items.push((e.seq, item));
                    }
                    Ok(())
                },
            )?;
            (items, after, start)
        };
        for (seq, item) in items {
            if reader.send(ctx, seq, item)?.is_break() {
                return Ok(());
            }
        }
        let more = after == start.saturating_add(LOG_CHUNK);
        next = after;
        if more {
            continue;
        }
        if !follow || ctx.reply.gone() || reader.stopped() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
        if reader.stopped() {
            return Ok(());
        }
    }
}

/// `roster log`: one item per event.
struct LogLines {
    team: Option<TeamRef>,
    /// `team`, resolved at the start of the round.
    team_id: Option<roster_core::id::TeamId>,
}

impl Follower for LogLines {
    fn at_round(&mut self, snapshot: &Snapshot, next: u64) -> Result<u64, AdminError> {
        self.team_id = self
            .team
            .as_ref()
            .map(|t| t.resolve(snapshot.world()).map(|t| t.id))
            .transpose()?;
        Ok(next)
    }

    fn item(&mut self, world: &World, e: &Envelope) -> Result<Option<Item>, AdminError> {
        if self.team_id.is_some_and(|t| t != e.team) {
            return Ok(None);
        }
        Ok(Some(Item::Event(EventLine {
            team: describe::team(world, e.team),
            actor: describe::actor(world, &e.actor),
            text: describe::event(world, &e.event),
            envelope: e.clone(),
        })))
    }
}

pub(super) fn log(
    team: Option<TeamRef>,
    from: u64,
    follow: bool,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    let mut lines = LogLines {
        team,
        team_id: None,
    };
    read_log(ctx, from, follow, &mut lines)
}

pub(super) fn replay(at: u64, team: Option<TeamRef>, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    // Under the daemon, the log is read without holding it (agents and commands go on).
    let log = ctx.history()?;
    if at >= log.len() {
        return Err(AdminError::NoPosition { at, len: log.len() });
    }
    // Only the prefix is read: the world as it stood after `at`.
    let mut world = World::new();
    let mut when = roster_core::time::Timestamp::EPOCH;
    log.for_each(0, at + 1, |e| -> Result<(), AdminError> {
        world.apply(&e).map_err(RuntimeError::from)?;
        when = e.at;
        Ok(())
    })?;
    let team = team
        .as_ref()
        .map(|t| t.resolve(&world).map(|t| t.id))
        .transpose()?;
    let keep = |t| team.is_none_or(|x| x == t);
    let teams = world
        .teams()
        .filter(|t| keep(t.id))
        .map(|t| ReplayedTeam {
            id: t.id,
            name: t.name.clone(),
            version: t.version,
            agents: world
                .agents()
                .filter(|a| a.team == t.id && !a.is_retired())
                .count() as u64,
        })
        .collect();
    let agents = world
        .agents()
        .filter(|a| keep(a.team))
        .map(|a| ReplayedAgent {
            id: a.id,
            name: describe::agent(&world, a.id),
            retired: a.is_retired(),
            parent: a.parent,
            active: world
                .active_grants_of(a.id, when)
                .iter()
                .map(|g| g.capability.clone())
                .collect(),
        })
        .collect();
    let grants = world
        .grants()
        .filter(|g| world.agent(g.holder).is_some_and(|h| keep(h.team)))
        .map(|g| ReplayedGrant {
            id: g.id,
            holder: g.holder,
            capability: g.capability.clone(),
            active: world.is_active(g.id, when),
            spent: g.spent,
        })
        .collect();
    let open_shares = world
        .shares()
        .filter(|s| s.state == ShareState::Open && (keep(s.from) || keep(s.to)))
        .count() as u64;
    let waiting = world.approvals().filter(|a| a.decision.is_none()).count() as u64;
    ctx.reply.send(Item::Replayed(Replayed {
        at,
        when,
        teams,
        agents,
        grants,
        open_shares,
        waiting,
    }))?;
    Ok(())
}

pub(super) fn verify(ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let dir = log_dir(ctx.data_dir);
    if !dir.exists() {
        return Err(RuntimeError::NotInitialized(ctx.data_dir.to_owned()).into());
    }
    let check = |log: &dyn LogRead| -> Result<(u64, String), LogError> {
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
    let result = match ctx.daemon {
        Some(_) => check(&ctx.history()?).map_err(RuntimeError::from),
        None => crate::private::open_log(&dir).and_then(|log| Ok(check(&log)?)),
    };
    match result {
        Ok((events, head_hash)) => {
            ctx.reply
                .send(Item::Verified(Verified::Intact { events, head_hash }))?;
            Ok(())
        }
        Err(RuntimeError::Log(e @ (LogError::Corrupt(_) | LogError::Damaged { .. }))) => {
            ctx.reply.send(Item::Verified(Verified::Altered {
                error: e.to_string(),
            }))?;
            Err(AdminError::Reported(4))
        }
        Err(other) => Err(other.into()),
    }
}

pub(super) fn export(file: Option<PathBuf>, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    // The log reads without holding the daemon: agents and other commands go on meanwhile.
    let log = ctx.history()?;
    match &file {
        Some(path) => {
            let target = ctx.path(path);
            let unwritable = |source| AdminError::Unwritable {
                path: target.clone(),
                source,
            };
            let mut w = BufWriter::new(File::create(&target).map_err(unwritable)?);
            let n = roster_store::export_jsonl(&log, &mut w)?;
            w.flush().map_err(unwritable)?;
            ctx.reply
                .note(format!("exported {n} events to {}", path.display()))?;
        }
        None => {
            let mut w = ctx.reply.writer();
            roster_store::export_jsonl(&log, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

pub(super) fn import(file: &Path, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    // Read access to the file is checked before anything is created.
    let file = ctx.path(file);
    let input = File::open(&file).map_err(|source| AdminError::Unreadable {
        path: file.clone(),
        source,
    })?;
    let into = |log: &dyn Store| -> Result<(u64, Option<Envelope>), AdminError> {
        if !log.is_empty() {
            return Err(AdminError::NotEmpty {
                data_dir: ctx.data_dir.to_owned(),
                events: log.len(),
            });
        }
        let n = roster_store::import_jsonl(log, &mut BufReader::new(input))
            .map_err(RuntimeError::from)?;
        let head = if n == 0 {
            None
        } else {
            log.read(n - 1, 1)?.pop()
        };
        Ok((n, head))
    };
    let (imported, head) = if ctx.daemon.is_some() {
        ctx.decide(|app| {
            let imported = into(&**app.log())?;
            app.refold()?;
            Ok(imported)
        })?
    } else {
        if let Some(note) = create_data_dir(ctx.data_dir)? {
            ctx.reply.note(note)?;
        }
        into(&crate::private::open_log(&log_dir(ctx.data_dir))?)?
    };
    let head_hash = head
        .map(|e| e.hash().to_hex())
        .unwrap_or_else(|| "-".into());
    ctx.reply.send(Item::Imported {
        imported,
        head_hash,
    })?;
    Ok(())
}
