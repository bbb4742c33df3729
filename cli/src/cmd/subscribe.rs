//! `roster subscribe` from NATS: committed events as JSON lines, as an outside subscriber sees
//! them — the namespace's JetStream stream (`roster_bus::EventSubscription`). A durable
//! subscription keeps its position on the server; an event counts as delivered (acknowledged)
//! only once its line was written. Every message is checked first (`roster_bus::verify`): one
//! that is not a sealed event of the chain — forged, replayed, out of order — is not printed;
//! a line on stderr says which message was refused and why, and reading goes on; so does a
//! line for positions the stream lacks. What is printed is the checked envelope encoded again,
//! one line of canonical JSON, whatever bytes the message carried. (On the
//! in-process bus `subscribe` is an operation on the
//! data directory's log, `roster_runtime::admin`, printing the same lines with the same
//! filters.)

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use roster_bus::{BusUrl, EventSubscription, Received, SubscribeOptions};
use roster_core::name::Name;
use roster_runtime::config::Config;

use crate::args::SubscribeArgs;
use crate::error::CliError;
use crate::output::Out;

/// How long `roster subscribe` waits for a NATS server before saying it cannot reach it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The bus `roster subscribe` reads: `--bus` (or `ROSTER_BUS`), else `[serve] bus` of
/// DATA/roster.toml — the runtime's own credentials, so a reader who is not the runtime's
/// operator is given a URL of its own (docs/nats.md) — else the in-process one.
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

/// `roster subscribe` from NATS (`cmd::plan` makes an in-process one an operation).
pub fn run(args: SubscribeArgs, data_dir: &Path, out: Out) -> anyhow::Result<()> {
    let bus = bus(&args, data_dir)?;
    let ns = namespace(&args, data_dir)?;
    from_nats(&bus, &ns, args, out)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn from_nats(bus: &BusUrl, ns: &Name, args: SubscribeArgs, out: Out) -> anyhow::Result<()> {
    let options = SubscribeOptions {
        team: args.team,
        kind: args.kind.map(str::to_owned),
        from: args.from.unwrap_or(0),
        durable: args.durable,
        limit: args.count,
    };
    // A server on another machine reached without credentials or in clear: said, not refused
    // (the server's configuration, which decides, cannot be seen from here).
    if let Some(url) = bus.nats().filter(|n| !n.is_loopback()) {
        for warning in url.warnings() {
            let _ = writeln!(std::io::stderr(), "roster subscribe: {warning}");
        }
    }
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
                next = sub.receive() => match next? {
                    Some(Received::Event(d)) => {
                        if let Some(n) = &d.notice {
                            let _ = writeln!(std::io::stderr(), "roster subscribe: {n}");
                        }
                        d
                    }
                    Some(Received::Refused(r)) => {
                        // The reason may quote what the forger sent: control characters are
                        // shown escaped, never sent to the terminal.
                        let text = r.to_string().escape_debug().to_string();
                        let _ = writeln!(std::io::stderr(), "roster subscribe: {text}; not printed");
                        continue;
                    }
                    None => break,
                },
            };
            // The checked envelope encoded again (one line of canonical JSON), never the
            // message's bytes: those may carry more fields, or more lines.
            let mut line = String::from_utf8_lossy(&delivery.json).into_owned();
            line.push('\n');
            out.write(&line)?;
            delivery.ack().await?;
        }
        sub.close().await?;
        client.flush().await.context("cannot flush to NATS")?;
        anyhow::Ok(())
    })
}
