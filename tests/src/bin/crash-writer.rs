//! `crash-writer DIR [SECONDS]`: appends to the `SledLog` in DIR from several threads until it is
//! killed (or SECONDS pass, 20 by default), printing `SEQ HASH` on stdout for every event whose
//! append was acknowledged — each line flushed before the next append. `tests/crash.rs` kills it
//! with SIGKILL at a random moment and checks that every printed event survived.
//!
//! Each thread creates its own team (named after the process and thread) and hires agents into
//! it, some with a grant in the same batch, so the log also folds into a consistent `World`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roster_core::actor::Actor;
use roster_core::capability::Capability;
use roster_core::envelope::Envelope;
use roster_core::event::{AgentSpec, Event};
use roster_core::id::{AgentId, Entropy, GrantId, TeamId};
use roster_core::name::{Label, Name};
use roster_core::port::{AppendRequest, EventLog, LogError};
use roster_core::time::Timestamp;
use roster_store::SledLog;

const THREADS: usize = 4;

/// OS randomness for ids; a counter if the OS generator ever fails (ids stay unique per run).
struct OsEntropy(u64);

impl Entropy for OsEntropy {
    fn bytes10(&mut self) -> [u8; 10] {
        let mut out = [0u8; 10];
        if getrandom::fill(&mut out).is_err() {
            self.0 += 1;
            out[2..].copy_from_slice(&self.0.to_be_bytes());
        }
        out
    }
}

fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

/// Prints the acknowledged events, one flushed line each.
fn report(envelopes: &[Envelope]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for env in envelopes {
        writeln!(out, "{} {}", env.seq, env.hash())?;
    }
    out.flush()
}

fn write_forever(log: &SledLog, thread: usize, until: Instant) -> Result<(), String> {
    let mut entropy = OsEntropy(thread as u64 * 1_000_000_000);
    let team = TeamId::mint(now(), &mut entropy);
    let name = |s: String| Name::parse(&s).map_err(|e| e.to_string());
    let team_name = name(format!("crash-{}-{thread}", std::process::id()))?;
    let role = Label::parse("crash test").map_err(|e| e.to_string())?;
    let cap = Capability::parse("spend.usd@*,budget=10").map_err(|e| e.to_string())?;
    let mut batches: Vec<Vec<Event>> = vec![vec![Event::TeamCreated { name: team_name }]];
    let mut version = 0u64;
    let mut i = 0u64;
    while Instant::now() < until {
        let events = match batches.pop() {
            Some(events) => events,
            None => {
                i += 1;
                let agent = AgentId::mint(now(), &mut entropy);
                let mut events = vec![Event::AgentHired {
                    agent,
                    name: name(format!("agent-{i}"))?,
                    role: role.clone(),
                    parent: None,
                    spec: AgentSpec::base(),
                }];
                if i % 3 == 0 {
                    events.push(Event::GrantIssued {
                        grant: GrantId::mint(now(), &mut entropy),
                        holder: agent,
                        capability: cap.clone(),
                        parent: None,
                    });
                }
                events
            }
        };
        let acked = log
            .append(AppendRequest {
                at: None,
                team,
                expected_version: version,
                events,
                actor: Actor::Runtime,
                causation: None,
            })
            .map_err(|e: LogError| e.to_string())?;
        version += acked.len() as u64;
        report(&acked).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: crash-writer DIR [SECONDS]");
        return ExitCode::from(2);
    };
    let seconds = args
        .next()
        .and_then(|s| s.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or(20);
    let log = match SledLog::open(&dir) {
        Ok(log) => Arc::new(log),
        Err(e) => {
            eprintln!("crash-writer: cannot open {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let until = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || write_forever(&log, t, until))
        })
        .collect();
    let mut code = ExitCode::SUCCESS;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                eprintln!("crash-writer: {e}");
                code = ExitCode::FAILURE;
            }
            Err(_) => code = ExitCode::FAILURE,
        }
    }
    code
}
