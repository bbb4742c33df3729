//! `roster subscribe` on the in-process bus: the data directory's own log, as the outbox would
//! publish it — each event the envelope's JSON of `docs/events.md` — with the same filters as
//! a JetStream subscription. A durable subscription keeps its position as the store checkpoint
//! `consumer/NAME`; an event counts as delivered only once its item was sent.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::name::Name;
use roster_core::world::World;

use super::history::{read_log, Follower};
use super::{AdminError, Ctx, Item, Subscribe};
use crate::app::{RuntimeError, Snapshot};

pub(super) fn run(args: Subscribe, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let kind = match args.kind {
        None => None,
        Some(k) => Some(
            Event::KINDS
                .iter()
                .copied()
                .find(|known| *known == k)
                .ok_or_else(|| {
                    AdminError::BadRequest(format!(
                        "`{k}` is not an event kind (see docs/events.md)"
                    ))
                })?,
        ),
    };
    let stop = Arc::new(AtomicBool::new(false));
    // A signal ends a local subscriber cleanly (position recorded, exit 0). Inside the daemon
    // the subscriber ends when its client leaves.
    if ctx.daemon.is_none() {
        let stop = Arc::clone(&stop);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AdminError::Io)?;
        std::thread::Builder::new()
            .name("roster-subscribe-signals".into())
            .spawn(move || {
                rt.block_on(crate::daemon::wait_for_signal());
                stop.store(true, Ordering::SeqCst);
            })
            .map_err(AdminError::Io)?;
    }
    let mut reader = LogSubscriber {
        team: args.team,
        kind,
        from: args.from.unwrap_or(0),
        checkpoint: args.durable.map(|d| format!("consumer/{d}")),
        started: false,
        count: args.count,
        written: 0,
        next: None,
        recorded: None,
        stop,
    };
    if reader.count == Some(0) {
        return Ok(());
    }
    read_log(ctx, 0, true, &mut reader)?;
    // The position after the last item sent, for the next subscriber of this name.
    if reader.checkpoint.is_some() && reader.next != reader.recorded {
        reader.record(&ctx.read()?)?;
    }
    Ok(())
}

/// `roster subscribe` on the in-process bus, as a [`Follower`].
struct LogSubscriber {
    team: Option<Name>,
    kind: Option<&'static str>,
    from: u64,
    /// The store checkpoint of a durable subscription.
    checkpoint: Option<String>,
    started: bool,
    count: Option<u64>,
    written: u64,
    /// The position after the last event sent.
    next: Option<u64>,
    /// What the checkpoint holds.
    recorded: Option<u64>,
    stop: Arc<AtomicBool>,
}

impl LogSubscriber {
    fn record(&mut self, snapshot: &Snapshot) -> Result<(), AdminError> {
        if let (Some(name), Some(next)) = (&self.checkpoint, self.next) {
            snapshot
                .log()
                .set_checkpoint(name, next)
                .map_err(RuntimeError::from)?;
            self.recorded = Some(next);
        }
        Ok(())
    }
}

impl Follower for LogSubscriber {
    fn at_round(&mut self, snapshot: &Snapshot, next: u64) -> Result<u64, AdminError> {
        if !self.started {
            self.started = true;
            let resumed = match &self.checkpoint {
                Some(name) => snapshot
                    .log()
                    .checkpoint(name)
                    .map_err(RuntimeError::from)?,
                None => None,
            };
            self.recorded = resumed;
            // A durable resumes where it stopped; `from` only starts a new one.
            return Ok(resumed.unwrap_or(self.from));
        }
        // The last round was sent whole: everything before `next` was sent or filtered out, so
        // a durable resumes after it.
        if self.checkpoint.is_some() {
            self.next = Some(next);
            if self.next != self.recorded {
                self.record(snapshot)?;
            }
        }
        Ok(next)
    }

    fn item(&mut self, world: &World, e: &Envelope) -> Result<Option<Item>, AdminError> {
        if self.kind.is_some_and(|k| k != e.event.kind()) {
            return Ok(None);
        }
        if let Some(team) = &self.team {
            if world.team(e.team).is_none_or(|t| &t.name != team) {
                return Ok(None);
            }
        }
        let json = roster_bus::wire::encode(e).map_err(AdminError::Encode)?;
        let mut line = String::from_utf8_lossy(&json).into_owned();
        line.push('\n');
        Ok(Some(Item::Text(line)))
    }

    fn send(&mut self, ctx: &Ctx<'_>, seq: u64, item: Item) -> Result<ControlFlow<()>, AdminError> {
        if self.stopped() {
            return Ok(ControlFlow::Break(()));
        }
        ctx.reply.send(item)?;
        self.written += 1;
        self.next = Some(seq + 1);
        if self.count.is_some_and(|c| self.written >= c) {
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
