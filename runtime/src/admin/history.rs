//! `init`, `log`, `replay`, `export`, `import`: reading history and moving it (with its signed
//! heads; `verify` and `head` are in `signed`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use roster_core::envelope::Envelope;
use roster_core::port::LogRead;
use roster_core::refs::TeamRef;
use roster_core::signed::PublicKey;
use roster_core::world::{ShareState, World};
use roster_store::Imported;

use super::{
    AdminError, Ctx, EventLine, Initialized, Item, Replayed, ReplayedAgent, ReplayedGrant,
    ReplayedTeam,
};
use crate::app::{log_dir, RuntimeError, Snapshot, Store};
use crate::describe;
use crate::signing::{Make, Signer};

pub(super) fn init(ctx: &Ctx<'_>) -> Result<(), AdminError> {
    if let Some(d) = ctx.daemon {
        let events = ctx.read()?.log().len();
        let signer = d.signer();
        ctx.reply.send(Item::Initialized(Initialized {
            data_dir: ctx.data_dir.to_owned(),
            events,
            created: false,
            serving: true,
            public_key: signer.map(|s| s.public_key()),
            key_file: signer.map(|s| s.path().to_owned()),
            key_made: false,
        }))?;
        return Ok(());
    }
    let dir = log_dir(ctx.data_dir);
    let existed = dir.exists();
    if let Some(note) = create_data_dir(ctx.data_dir)? {
        ctx.reply.note(note)?;
    }
    let events = crate::private::open_log(&dir)?.len();
    // Made wherever roster.toml puts it: `init` is how a key kept elsewhere is made.
    let signer = Signer::require(ctx.data_dir, Make::Always)?;
    ctx.reply.send(Item::Initialized(Initialized {
        data_dir: ctx.data_dir.to_owned(),
        events,
        created: !existed,
        serving: false,
        public_key: Some(signer.public_key()),
        key_file: Some(signer.path().to_owned()),
        key_made: signer.made(),
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

/// Creates a data directory with an empty log and its signing key (what `roster init` does),
/// for the benches.
pub fn init_data_dir(dir: &Path) -> Result<(), AdminError> {
    create_data_dir(dir)?;
    crate::private::open_log(&log_dir(dir))?;
    Signer::require(dir, Make::Always)?;
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
    let waiting = world.waiting_approvals(None).len() as u64;
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

pub(super) fn export(file: Option<PathBuf>, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    // The log reads without holding the daemon: agents and other commands go on meanwhile.
    let log = ctx.store()?;
    let end = log.len();
    // Signed to its end when a key is at hand, so that no event of the export goes unsigned.
    if let Some(last) = end.checked_sub(1) {
        match ctx.signer(Make::AtDefault) {
            Ok(Some(signer)) => {
                signer.ensure_signed(&*log, last)?;
            }
            Ok(None) => ctx.reply.note(format!(
                "note: no signing key at hand ({}): the export is signed only as far as \
                 the heads kept with the log",
                missing_key(ctx)
            ))?,
            Err(e) => ctx.reply.note(format!(
                "note: the export's end is not signed: {}",
                e.message().unwrap_or_default()
            ))?,
        }
    }
    let heads = log.signed_heads()?;
    match &file {
        Some(path) => {
            let target = ctx.path(path);
            let unwritable = |source| AdminError::Unwritable {
                path: target.clone(),
                source,
            };
            let mut w = BufWriter::new(File::create(&target).map_err(unwritable)?);
            let n = roster_store::export_signed_jsonl(&*log, end, &heads, &mut w)?;
            w.flush().map_err(unwritable)?;
            ctx.reply
                .note(format!("exported {n} events to {}", path.display()))?;
        }
        None => {
            let mut w = ctx.reply.writer();
            roster_store::export_signed_jsonl(&*log, end, &heads, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// Where the missing signing key should be, for a note.
fn missing_key(ctx: &Ctx<'_>) -> String {
    match Signer::require(ctx.data_dir, Make::Never) {
        Err(e) => crate::error::sentence(&e),
        Ok(s) => format!("{} is there now", s.path().display()),
    }
}

pub(super) fn import(file: &Path, key: Option<PublicKey>, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    // Read access to the file is checked before anything is created.
    let file = ctx.path(file);
    let input = File::open(&file).map_err(|source| AdminError::Unreadable {
        path: file.clone(),
        source,
    })?;
    let into = |log: &dyn Store| -> Result<(Imported, Option<Envelope>), AdminError> {
        if !log.is_empty() {
            return Err(AdminError::NotEmpty {
                data_dir: ctx.data_dir.to_owned(),
                events: log.len(),
            });
        }
        let imported =
            roster_store::import_signed_jsonl(log, &mut BufReader::new(input), key.as_ref())
                .map_err(RuntimeError::from)?;
        let head = match imported.events.checked_sub(1) {
            None => None,
            Some(last) => log.read(last, 1)?.pop(),
        };
        Ok((imported, head))
    };
    let ((imported, head), log) = if ctx.daemon.is_some() {
        let imported = ctx.decide(|app| {
            let imported = into(&**app.log())?;
            app.refold()?;
            Ok(imported)
        })?;
        (imported, ctx.store()?)
    } else {
        if let Some(note) = create_data_dir(ctx.data_dir)? {
            ctx.reply.note(note)?;
        }
        let log: Arc<dyn Store> = Arc::new(crate::private::open_log(&log_dir(ctx.data_dir))?);
        (into(&*log)?, log)
    };
    // Everything checked: this data directory's key signs what it now holds. That says only
    // that this directory took it in, not where it came from (the export's own heads do).
    let countersigned = match ctx.signer(Make::Always).and_then(|s| match s {
        Some(s) => Ok(s.sign_head(&*log)?.map(|_| s.public_key())),
        None => Ok(None),
    }) {
        Ok(k) => k,
        Err(e) => {
            ctx.reply.note(format!(
                "note: the imported head is not signed by this data directory's key: {}",
                e.message().unwrap_or_default()
            ))?;
            None
        }
    };
    let head_hash = head
        .map(|e| e.hash().to_hex())
        .unwrap_or_else(|| "-".into());
    ctx.reply.send(Item::Imported {
        imported: imported.events,
        head_hash,
        signed: imported.coverage,
        countersigned,
    })?;
    Ok(())
}
