//! `roster subscribe`: committed events as JSON lines, as an outside subscriber sees them.
//!
//! With a NATS bus it reads the namespace's JetStream stream (`roster_bus::EventSubscription`);
//! with the in-process bus it follows the data directory's own log (through the daemon when one
//! runs), printing the same lines — each the envelope's JSON as the outbox publishes it
//! (`docs/events.md`) — with the same filters. A durable subscription keeps its position on the
//! server (NATS) or as the store checkpoint `consumer/NAME` (in-process); either way an event
//! counts as delivered only once its line was written.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use roster_bus::{BusUrl, EventSubscription, SubscribeOptions};
use roster_core::envelope::Envelope;
use roster_core::name::Name;
use roster_core::world::World;
use roster_runtime::app::Snapshot;
use roster_runtime::config::Config;

use super::history::{read_log, Follower};
use super::Env;
use crate::args::SubscribeArgs;
use crate::error::CliError;
use crate::output::Stream;

/// How long `roster subscribe` waits for a NATS server before saying it cannot reach it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The bus `roster subscribe` reads: `--bus` (or `ROSTER_BUS`), else `[serve] bus` of
/// DATA/roster.toml, else the in-process one.
pub(crate) fn bus(args: &SubscribeArgs, data_dir: &Path) -> Result<BusUrl, CliError> {
    if let Some(bus) = &args.bus {
        return Ok(bus.clone());
    }
    Ok(Config::load(data_dir)?.serve.bus.unwrap_or_default())
}

/// The namespace: `--ns` (or `ROSTER_NS`), else the one the data directory claimed
/// (DATA/namespace, written by `roster serve`), else `[serve] namespace`, else `roster`.
fn namespace(args: &SubscribeArgs, data_dir: &Path) -> Result<Name, CliError> {
    if let Some(ns) = &args.ns {
        return Ok(ns.clone());
    }
    let file = data_dir.join("namespace");
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            return Name::parse(text.trim())
                .map_err(|e| CliError::Input(format!("{}: {e}", file.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CliError::Input(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    }
    match Config::load(data_dir)?.serve.namespace {
        Some(ns) => Ok(ns),
        None => Name::parse("roster").map_err(|e| CliError::Input(e.to_string())),
    }
}

/// `roster subscribe`
pub fn run(args: SubscribeArgs, env: &Env<'_>) -> anyhow::Result<()> {
    // Inside the daemon: the client resolved the in-process bus (`main::forwarded` sends
    // nothing else), so follow the daemon's log, whatever the daemon's own environment says.
    if env.daemon.is_some() {
        return from_log(args, env);
    }
    let bus = bus(&args, env.data_dir)?;
    match bus {
        BusUrl::Memory => from_log(args, env),
        BusUrl::Nats { .. } => {
            let ns = namespace(&args, env.data_dir)?;
            from_nats(&bus, &ns, args, env)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn from_nats(bus: &BusUrl, ns: &Name, args: SubscribeArgs, env: &Env<'_>) -> anyhow::Result<()> {
    let options = SubscribeOptions {
        team: args.team,
        kind: args.kind.map(str::to_owned),
        from: args.from.unwrap_or(0),
        durable: args.durable,
        limit: args.count,
    };
    runtime()?.block_on(async {
        let client = roster_bus::connect_now(bus, CONNECT_TIMEOUT).await?;
        let mut sub = EventSubscription::open(&client, ns, options)
            .await
            .map_err(|e| match e {
                roster_bus::BusError::DurableMismatch { .. } => {
                    CliError::Input(e.to_string()).into()
                }
                other => anyhow::Error::from(other),
            })?;
        let signal = roster_runtime::daemon::wait_for_signal();
        tokio::pin!(signal);
        loop {
            let delivery = tokio::select! {
                () = &mut signal => break,
                next = sub.next() => match next? {
                    Some(d) => d,
                    None => break,
                },
            };
            let mut line = String::from_utf8_lossy(&delivery.json).into_owned();
            line.push('\n');
            env.out.write(Stream::Out, &line)?;
            delivery.ack().await?;
        }
        sub.close().await?;
        client.flush().await.context("cannot flush to NATS")?;
        anyhow::Ok(())
    })
}

/// The in-process bus: the data directory's own log.
fn from_log(args: SubscribeArgs, env: &Env<'_>) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    // A signal ends a local subscriber cleanly (position recorded, exit 0). Inside the daemon
    // the subscriber ends when its client leaves.
    if env.daemon.is_none() {
        let stop = Arc::clone(&stop);
        let rt = runtime()?;
        std::thread::Builder::new()
            .name("roster-subscribe-signals".into())
            .spawn(move || {
                rt.block_on(roster_runtime::daemon::wait_for_signal());
                stop.store(true, Ordering::SeqCst);
            })
            .context("cannot watch for signals")?;
    }
    let mut reader = LogSubscriber {
        team: args.team,
        kind: args.kind,
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
    read_log(env, 0, true, &mut reader)?;
    // The position after the last line written, for the next subscriber of this name.
    if reader.checkpoint.is_some() && reader.next != reader.recorded {
        reader.record(&env.read()?)?;
    }
    Ok(())
}

/// `roster subscribe` on the in-process bus, as a [`LogReader`].
struct LogSubscriber {
    team: Option<Name>,
    kind: Option<&'static str>,
    from: u64,
    /// The store checkpoint of a durable subscription.
    checkpoint: Option<String>,
    started: bool,
    count: Option<u64>,
    written: u64,
    /// The position after the last event written.
    next: Option<u64>,
    /// What the checkpoint holds.
    recorded: Option<u64>,
    stop: Arc<AtomicBool>,
}

impl LogSubscriber {
    fn record(&mut self, snapshot: &Snapshot) -> Result<(), CliError> {
        if let (Some(name), Some(next)) = (&self.checkpoint, self.next) {
            snapshot.log().set_checkpoint(name, next)?;
            self.recorded = Some(next);
        }
        Ok(())
    }
}

impl Follower for LogSubscriber {
    fn at_round(&mut self, snapshot: &Snapshot, next: u64) -> Result<u64, CliError> {
        if !self.started {
            self.started = true;
            let resumed = match &self.checkpoint {
                Some(name) => snapshot.log().checkpoint(name)?,
                None => None,
            };
            self.recorded = resumed;
            // A durable resumes where it stopped; `--from` only starts a new one.
            return Ok(resumed.unwrap_or(self.from));
        }
        // The last round was written whole: everything before `next` was printed or filtered
        // out, so a durable resumes after it.
        if self.checkpoint.is_some() {
            self.next = Some(next);
            if self.next != self.recorded {
                self.record(snapshot)?;
            }
        }
        Ok(next)
    }

    fn render(&mut self, world: &World, e: &Envelope) -> Result<Option<String>, CliError> {
        if self.kind.is_some_and(|k| k != e.event.kind()) {
            return Ok(None);
        }
        if let Some(team) = &self.team {
            if world.team(e.team).is_none_or(|t| &t.name != team) {
                return Ok(None);
            }
        }
        let json = roster_bus::wire::encode(e).map_err(|err| CliError::Input(err.to_string()))?;
        let mut line = String::from_utf8_lossy(&json).into_owned();
        line.push('\n');
        Ok(Some(line))
    }

    fn write(&mut self, env: &Env<'_>, seq: u64, line: &str) -> anyhow::Result<ControlFlow<()>> {
        if self.stopped() {
            return Ok(ControlFlow::Break(()));
        }
        env.out.write(Stream::Out, line)?;
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
