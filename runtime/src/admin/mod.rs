//! The operator's operations: a typed [`Request`] in, typed [`Item`]s out.
//!
//! Every command the operator types (other than `serve`, `demo`, `bench` and `sandbox`) is one
//! [`Request`], whose fields are validated values (names, references, capabilities, limits):
//! the CLI builds it from its flags, the admin socket carries it as one JSON line, and
//! [`run`] carries it out — inside `roster serve` against its own ledger, or, when no daemon
//! runs, against the data directory opened for the one command. What it answers are [`Item`]s
//! (committed events, rows, verdicts, raw text to pass on) sent to a [`Reply`] as they are
//! made; how they look to people or as `--json` is the CLI's business.
//!
//! # Layout
//! - `answer`: the items and their rows.
//! - `people`, `grants`, `history`, `containers`, `shares`, `subscribe`: the operations by
//!   group, as the CLI groups its commands; `signed`: `verify` and `head`, the chain and its
//!   signed heads.
//! - `socket`: the admin socket (`DATA/admin.sock`) — server and client.

mod answer;
mod containers;
mod grants;
mod history;
mod people;
mod shares;
mod signed;
pub mod socket;
mod subscribe;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use answer::*;
pub use history::{create_data_dir, init_data_dir};
use roster_core::actor::Actor;
use roster_core::capability::{Action, Amount, Capability, Resource};
use roster_core::envelope::Envelope;
use roster_core::gateway::ActParams;
use roster_core::id::{ApprovalId, GrantId, ShareId};
use roster_core::ledger::LogReader;
use roster_core::limits::{CpuMillis, DiskMib, MemoryMib, Pids, TimeoutSecs, TmpfsMib};
use roster_core::name::{ImageRef, Label, Name};
use roster_core::refs::{AgentRef, IdRef, TeamRef};
use roster_core::signed::PublicKey;
use roster_core::topic::TopicPattern;
use roster_core::world::World;
use serde::{Deserialize, Serialize};

use crate::app::{App, Snapshot, Store};
use crate::daemon::Daemon;
pub use crate::error::AdminError;

/// One operation, as the operator asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `roster init`: make the data directory and its empty log.
    Init,
    /// `roster team create`.
    CreateTeam {
        /// The new team's name.
        name: Name,
    },
    /// `roster team list`.
    Teams,
    /// `roster hire`.
    Hire(Hire),
    /// `roster agents`.
    Agents {
        /// Only this team's.
        team: Option<TeamRef>,
        /// Retired agents too.
        all: bool,
    },
    /// `roster retire`.
    Retire {
        /// Who.
        agent: AgentRef,
        /// As this agent, not as the operator.
        by: Option<AgentRef>,
    },
    /// `roster grant`.
    Grant {
        /// To whom.
        agent: AgentRef,
        /// What it allows.
        capability: Capability,
        /// The grant it derives from (whole, or a fragment of its id).
        from: Option<IdRef<GrantId>>,
        /// As this agent, not as the operator.
        by: Option<AgentRef>,
    },
    /// `roster revoke`.
    Revoke {
        /// Which (whole, or a fragment of its id).
        grant: IdRef<GrantId>,
        /// As this agent, not as the operator.
        by: Option<AgentRef>,
    },
    /// `roster grants`.
    Grants {
        /// Only this agent's.
        agent: Option<AgentRef>,
    },
    /// `roster check`: what `authorize` would answer now, recording nothing.
    Check {
        /// Who.
        agent: AgentRef,
        /// What.
        action: Action,
        /// On what.
        resource: Resource,
        /// How much [default: 1].
        amount: Option<Amount>,
    },
    /// `roster act`: the agent's own `act`.
    Act {
        /// As whom.
        agent: AgentRef,
        /// What, as the gateway takes it.
        params: ActParams,
        /// The approval asked for earlier, whole or a fragment of its id: resolved here, then
        /// used as `params.approval` (which takes whole ids only; give one or the other).
        #[serde(default)]
        approval: Option<IdRef<ApprovalId>>,
    },
    /// `roster approvals`.
    Approvals {
        /// Decided ones too.
        all: bool,
    },
    /// `roster approve` and `roster deny`.
    Decide {
        /// Which (whole, or a fragment of its id).
        approval: IdRef<ApprovalId>,
        /// Granted or refused.
        approved: bool,
        /// Why, for the record.
        note: Option<Label>,
    },
    /// `roster deny --agent A` or `--all`: every approval waiting now (of one agent, or of
    /// all) is refused, with the same note.
    DenyWaiting {
        /// Only this agent's.
        agent: Option<AgentRef>,
        /// Why, for the record.
        note: Option<Label>,
    },
    /// `roster log`.
    Log {
        /// Only this team's events.
        team: Option<TeamRef>,
        /// From this position.
        from: u64,
        /// Then wait for more.
        follow: bool,
    },
    /// `roster replay`: the world as it stood after a position.
    Replay {
        /// The position.
        at: u64,
        /// Only this team.
        team: Option<TeamRef>,
    },
    /// `roster verify`: the chain, then every signed head kept and a witness's.
    Verify {
        /// A witness's file of signed heads to check the log against (relative to the
        /// client's directory).
        head: Option<PathBuf>,
        /// The key to count signed events for (else the witness's, else the data directory's).
        key: Option<PublicKey>,
    },
    /// `roster export`: to a file, or as text.
    Export {
        /// The file (relative to the client's directory).
        file: Option<PathBuf>,
    },
    /// `roster import`.
    Import {
        /// The file (relative to the client's directory).
        file: PathBuf,
        /// Take only an export signed by this key to its end.
        key: Option<PublicKey>,
    },
    /// `roster head`: the log's head, signed now, for a witness.
    Head {
        /// Also write it to this file (relative to the client's directory).
        out: Option<PathBuf>,
    },
    /// `roster status`.
    Status,
    /// `roster stop`.
    Stop {
        /// Whose container.
        agent: AgentRef,
    },
    /// `roster start`.
    Start {
        /// Whose container.
        agent: AgentRef,
    },
    /// `roster logs`.
    Logs {
        /// Whose container.
        agent: AgentRef,
        /// Then wait for more.
        follow: bool,
        /// Only the last lines.
        tail: Option<u32>,
    },
    /// `roster purge`.
    Purge {
        /// Whose home.
        agent: AgentRef,
    },
    /// `roster exec`.
    Exec {
        /// In whose container.
        agent: AgentRef,
        /// The program and its arguments.
        command: Vec<String>,
    },
    /// `roster share propose`.
    ProposeShare {
        /// The offering team.
        from: TeamRef,
        /// The receiving team.
        to: TeamRef,
        /// Which of `from`'s topics may cross.
        topics: TopicPattern,
        /// As this agent, not as the operator.
        by: Option<AgentRef>,
    },
    /// `roster share accept`.
    AcceptShare {
        /// Which (whole, or a fragment of its id).
        share: IdRef<ShareId>,
        /// As this agent, not as the operator.
        by: Option<AgentRef>,
    },
    /// `roster share close`.
    CloseShare {
        /// Which (whole, or a fragment of its id).
        share: IdRef<ShareId>,
        /// As this agent, not as the operator.
        by: Option<AgentRef>,
    },
    /// `roster shares`.
    Shares {
        /// Only those this team is a side of.
        team: Option<TeamRef>,
    },
    /// `roster subscribe` on the in-process bus: the log's events as the outbox publishes them.
    Subscribe(Subscribe),
}

/// `roster hire`: what is given; what is not comes from `[agent]` of roster.toml, then the
/// defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hire {
    /// Its team.
    pub team: TeamRef,
    /// Its name there.
    pub name: Name,
    /// What it is for.
    pub role: Label,
    /// Its image [default: the base image].
    pub image: Option<ImageRef>,
    /// Its container runtime.
    pub runtime: Option<roster_core::event::RuntimeKind>,
    /// CPU quota.
    pub cpus: Option<CpuMillis>,
    /// Memory, swap included.
    pub memory: Option<MemoryMib>,
    /// Most processes.
    pub pids: Option<Pids>,
    /// Size of /tmp.
    pub tmpfs: Option<TmpfsMib>,
    /// Longest run.
    pub timeout: Option<TimeoutSecs>,
    /// Home disk quota (left out: `null`).
    #[serde(default)]
    pub disk: Option<DiskMib>,
    /// Hire as this agent.
    pub by: Option<AgentRef>,
    /// Its first grants.
    pub grants: Vec<Capability>,
}

/// `roster subscribe` on the in-process bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Only this team's events.
    pub team: Option<Name>,
    /// Only events of this kind (one of `Event::KINDS`).
    pub kind: Option<String>,
    /// From this position (a new durable only).
    pub from: Option<u64>,
    /// Keep the position as the checkpoint `consumer/NAME`.
    pub durable: Option<Name>,
    /// Stop after this many events.
    pub count: Option<u64>,
}

/// Where an operation's items go: this process's renderer, or a client of the admin socket.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// Sends one item; fails once nobody reads (the client left, the pipe closed).
    fn send(&self, item: Item) -> std::io::Result<()>;
    /// True once nobody reads any more (a `--follow` stops then).
    fn gone(&self) -> bool;
}

/// An operation's answer, sent an item at a time.
#[derive(Debug, Clone)]
pub struct Reply(Arc<dyn Sink>);

impl Reply {
    /// Items to `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self(sink)
    }

    /// Sends one item.
    pub fn send(&self, item: Item) -> std::io::Result<()> {
        self.0.send(item)
    }

    /// Sends a note for people.
    pub fn note(&self, text: impl Into<String>) -> std::io::Result<()> {
        self.send(Item::Note(text.into()))
    }

    /// True once nobody reads.
    pub fn gone(&self) -> bool {
        self.0.gone()
    }

    /// A writer of bulk text (`export`), sent as [`Item::Text`] chunks; buffered: flush it.
    pub fn writer(&self) -> std::io::BufWriter<TextWriter> {
        std::io::BufWriter::with_capacity(64 * 1024, TextWriter(self.clone()))
    }
}

/// See [`Reply::writer`].
#[derive(Debug)]
pub struct TextWriter(Reply);

impl Write for TextWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Bulk output is UTF-8 text; a buffer may end inside a character, so only whole
        // characters are sent and the caller writes the rest again.
        let cut = match std::str::from_utf8(buf) {
            Ok(_) => buf.len(),
            Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        };
        let text = std::str::from_utf8(&buf[..cut])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.send(Item::Text(text.to_owned()))?;
        Ok(cut)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Who asks and where: what an operation needs besides its request.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The data directory.
    pub data_dir: &'a Path,
    /// The operator at the keyboard (the admin socket's peer is the data directory's owner;
    /// this is the name it gives).
    pub operator: Name,
    /// The directory relative file arguments are relative to (the client's).
    pub cwd: PathBuf,
    /// The daemon, when the operation runs inside `roster serve`.
    pub daemon: Option<&'a Daemon>,
    /// Where the answer goes.
    pub reply: Reply,
}

impl Ctx<'_> {
    /// The world as it stands and the log to read: the daemon's (held without holding
    /// anything a decision waits for, so a client that reads slowly slows nobody else), or
    /// opened here.
    fn read(&self) -> Result<Snapshot, AdminError> {
        match self.daemon {
            Some(d) => Ok(d.snapshot()?),
            None => Ok(App::open(self.data_dir)?.snapshot()),
        }
    }

    /// The log to read history from: the daemon's (without holding its world), or opened here
    /// without folding it.
    fn history(&self) -> Result<LogReader<dyn Store>, AdminError> {
        match self.daemon {
            Some(d) => Ok(d.snapshot()?.log().clone()),
            None => {
                let log: Arc<dyn Store> = Arc::new(App::open_log(self.data_dir)?);
                Ok(LogReader::new(log))
            }
        }
    }

    /// Runs `f` on the data directory for a decision: the daemon's, held exclusively for the
    /// length of `f` (which must send nothing), or opened here (then the head is signed if
    /// `f` appended, as the daemon would).
    fn decide<T>(
        &self,
        f: impl FnOnce(&mut App) -> Result<T, AdminError>,
    ) -> Result<T, AdminError> {
        match self.daemon {
            Some(d) => d.decide(f)?,
            None => {
                let mut app = App::open(self.data_dir)?;
                let before = app.log().len();
                let done = f(&mut app);
                if app.log().len() > before {
                    self.sign_here(&**app.log());
                }
                done
            }
        }
    }

    /// The log of the data directory: the daemon's, or opened here.
    fn store(&self) -> Result<Arc<dyn Store>, AdminError> {
        match self.daemon {
            Some(d) => Ok(d.read(|app| Arc::clone(app.log()))?),
            None => Ok(Arc::new(App::open_log(self.data_dir)?)),
        }
    }

    /// The data directory's signing key: the daemon's, or loaded here (made as `make` allows);
    /// `None` when there is none to use.
    fn signer(
        &self,
        make: crate::signing::Make,
    ) -> Result<Option<Arc<crate::signing::Signer>>, AdminError> {
        match self.daemon {
            Some(d) => Ok(d.signer().cloned()),
            None => Ok(crate::signing::Signer::open(self.data_dir, make)?.map(Arc::new)),
        }
    }

    /// Signs the head of `log`, which this command appended to without a daemon; a failure
    /// is a note (what was appended stands), not the command's.
    fn sign_here(&self, log: &dyn Store) {
        let why =
            match crate::signing::Signer::require(self.data_dir, crate::signing::Make::AtDefault) {
                Ok(signer) => match signer.sign_head(log) {
                    Ok(_) => return,
                    Err(e) => e,
                },
                Err(e) => e,
            };
        let _ = self.reply.note(format!(
            "note: the log's new head is not signed: {}",
            crate::error::sentence(&why)
        ));
    }

    /// The operator at the keyboard, as an actor.
    fn operator(&self) -> Actor {
        Actor::Operator(self.operator.clone())
    }

    /// The actor for an operation: the agent named by `--by`, or the operator.
    fn actor(&self, world: &World, by: Option<&AgentRef>) -> Result<Actor, AdminError> {
        match by {
            Some(r) => Ok(Actor::Agent(r.resolve(world)?.id)),
            None => Ok(self.operator()),
        }
    }

    /// The daemon, for operations on containers.
    fn daemon(&self) -> Result<&Daemon, AdminError> {
        self.daemon
            .ok_or_else(|| AdminError::NoDaemon(self.data_dir.to_owned()))
    }

    /// `path` made absolute against the caller's directory.
    fn path(&self, path: &Path) -> PathBuf {
        self.cwd.join(path)
    }

    /// Tells the daemon, if this runs in one, that the log moved: it starts, stops or removes
    /// containers to match. (It also looks by itself every second.)
    fn poke(&self) {
        if let Some(d) = self.daemon {
            d.poke();
        }
    }

    /// Decides `command` as `actor` (resolved in the world it is decided in), tells the daemon
    /// the log moved, and sends what was committed, described from the world just after (a
    /// snapshot: nothing is held while the client reads).
    fn commit(
        &self,
        decide: impl FnOnce(&World) -> Result<(roster_core::command::Command, Actor), AdminError>,
    ) -> Result<(Vec<Envelope>, Snapshot), AdminError> {
        let daemon = self.daemon;
        let (committed, after) = self.decide(|app| {
            let (command, actor) = decide(app.world())?;
            let committed = app.execute(command, &actor)?;
            // In force before anything else is decided (a retired agent's streams end).
            if let Some(d) = daemon {
                d.in_force(&committed, None);
            }
            Ok((committed, app.snapshot()))
        })?;
        self.poke();
        send_committed(&self.reply, after.world(), &committed)?;
        Ok((committed, after))
    }
}

/// Sends what a command committed, each with its description in `world` (the world after).
pub(super) fn send_committed(
    reply: &Reply,
    world: &World,
    envelopes: &[Envelope],
) -> std::io::Result<()> {
    for e in envelopes {
        reply.send(Item::Committed {
            text: crate::describe::event(world, &e.event),
            envelope: e.clone(),
        })?;
    }
    Ok(())
}

/// Carries out one request; its items go to `ctx.reply` as they are made.
pub fn run(request: Request, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    match request {
        Request::Init => history::init(ctx),
        Request::CreateTeam { name } => people::create_team(name, ctx),
        Request::Teams => people::teams(ctx),
        Request::Hire(h) => people::hire(h, ctx),
        Request::Agents { team, all } => people::agents(team, all, ctx),
        Request::Retire { agent, by } => people::retire(&agent, by.as_ref(), ctx),
        Request::Grant {
            agent,
            capability,
            from,
            by,
        } => grants::grant(&agent, capability, from.as_ref(), by.as_ref(), ctx),
        Request::Revoke { grant, by } => grants::revoke(&grant, by.as_ref(), ctx),
        Request::Grants { agent } => grants::list(agent, ctx),
        Request::Check {
            agent,
            action,
            resource,
            amount,
        } => grants::check(&agent, action, resource, amount, ctx),
        Request::Act {
            agent,
            params,
            approval,
        } => grants::act(&agent, params, approval.as_ref(), ctx),
        Request::Approvals { all } => grants::approvals(all, ctx),
        Request::Decide {
            approval,
            approved,
            note,
        } => grants::decide(&approval, approved, note, ctx),
        Request::DenyWaiting { agent, note } => grants::deny_waiting(agent.as_ref(), note, ctx),
        Request::Log { team, from, follow } => history::log(team, from, follow, ctx),
        Request::Replay { at, team } => history::replay(at, team, ctx),
        Request::Verify { head, key } => signed::verify(head.as_deref(), key, ctx),
        Request::Export { file } => history::export(file, ctx),
        Request::Import { file, key } => history::import(&file, key, ctx),
        Request::Head { out } => signed::head(out.as_deref(), ctx),
        Request::Status => containers::status(ctx),
        Request::Stop { agent } => containers::stop(&agent, ctx),
        Request::Start { agent } => containers::start(&agent, ctx),
        Request::Purge { agent } => containers::purge(&agent, ctx),
        Request::Logs {
            agent,
            follow,
            tail,
        } => containers::logs(&agent, follow, tail, ctx),
        Request::Exec { agent, command } => containers::exec(&agent, command, ctx),
        Request::ProposeShare {
            from,
            to,
            topics,
            by,
        } => shares::propose(&from, &to, topics, by.as_ref(), ctx),
        Request::AcceptShare { share, by } => shares::accept(&share, by.as_ref(), ctx),
        Request::CloseShare { share, by } => shares::close(&share, by.as_ref(), ctx),
        Request::Shares { team } => shares::list(team, ctx),
        Request::Subscribe(s) => subscribe::run(s, ctx),
    }
}
