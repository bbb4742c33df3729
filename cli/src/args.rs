//! The command line, as clap sees it. Every value an operator types is parsed into a validated
//! type here (`value_parser`), so a malformed name or capability is refused before anything runs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use roster_core::capability::{Action, Amount, Capability, Resource};
use roster_core::event::RuntimeKind;
use roster_core::gateway::MAX_ACT_WAIT_SECS;
use roster_core::id::{ApprovalId, GrantId, ShareId};
use roster_core::name::{ImageRef, Label, Name};
use roster_core::signed::PublicKey;
use roster_core::topic::TopicPattern;

use roster_core::limits::{CpuMillis, DiskMib, MemoryMib, Pids, TimeoutSecs, TmpfsMib};
use roster_core::refs::{AgentRef, IdRef, TeamRef};

/// roster: an event-sourced runtime for teams of AI agents that must not be trusted.
#[derive(Debug, Parser)]
#[command(name = "roster", version, max_term_width = 100)]
pub struct Cli {
    /// Where the event log and configuration live [default: $XDG_DATA_HOME/roster].
    #[arg(long, global = true, env = "ROSTER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Print one JSON object per line instead of text for people.
    #[arg(long, global = true, env = "ROSTER_JSON")]
    pub json: bool,

    /// The operator's name recorded as the actor of what you do [default: $USER].
    #[arg(long = "as", global = true, env = "ROSTER_OPERATOR", value_name = "NAME", value_parser = typed::<Name>)]
    pub operator: Option<Name>,

    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create the data directory and an empty event log.
    Init,
    /// Create or list teams.
    #[command(subcommand)]
    Team(TeamCmd),
    /// Hire an agent into a team, with capabilities (containers come with the sandbox).
    Hire(HireArgs),
    /// List agents.
    Agents {
        /// Only this team.
        #[arg(long, value_parser = parse_team)]
        team: Option<TeamRef>,
        /// Include retired agents.
        #[arg(long)]
        all: bool,
    },
    /// Retire an agent: its grants and everything derived from them stop working.
    Retire {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
        /// Ask as this agent instead of as an operator (its grants are checked).
        #[arg(long, value_parser = parse_agent, value_name = "AGENT")]
        by: Option<AgentRef>,
    },
    /// Grant a capability to an agent (a root grant, or derived --from a grant).
    Grant {
        /// The agent receiving it.
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
        /// The capability, like `email.send@mailbox:alice,approval`.
        #[arg(value_parser = typed::<Capability>)]
        capability: Capability,
        /// Derive from this grant (which must cover the capability): its id, or a unique run of
        /// 4 or more of its hex digits from the start or end (as printed: `grt_` and the last 8).
        #[arg(long, value_parser = typed::<IdRef<GrantId>>, value_name = "GRANT")]
        from: Option<IdRef<GrantId>>,
        /// Delegate as this agent instead of as an operator.
        #[arg(long, value_parser = parse_agent, value_name = "AGENT")]
        by: Option<AgentRef>,
    },
    /// Revoke a grant and, by cascade, every grant derived from it.
    Revoke {
        /// The grant: its id, or a unique run of 4 or more of its hex digits from the start or
        /// end (as printed: `grt_` and the last 8).
        #[arg(value_parser = typed::<IdRef<GrantId>>)]
        grant: IdRef<GrantId>,
        /// Revoke as this agent (only grants derived from its own).
        #[arg(long, value_parser = parse_agent, value_name = "AGENT")]
        by: Option<AgentRef>,
    },
    /// List grants, of one agent or of all.
    Grants {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: Option<AgentRef>,
    },
    /// Show the event log.
    Log {
        /// Only this team.
        #[arg(long, value_parser = parse_team)]
        team: Option<TeamRef>,
        /// Start at this position.
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        from: u64,
        /// Keep printing events as they are committed.
        #[arg(long)]
        follow: bool,
    },
    /// Show the world as it stood right after position SEQ.
    Replay {
        /// The position.
        #[arg(long, value_name = "SEQ")]
        at: u64,
        /// Only this team.
        #[arg(long, value_parser = parse_team)]
        team: Option<TeamRef>,
    },
    /// Recompute the whole hash chain, check every signed head against it, and say whether the
    /// log was altered and how far it is signed.
    #[command(after_help = VERIFY_HELP)]
    Verify {
        /// A witness's file of signed heads (lines of `roster head --json`) to check the log
        /// against: what detects a rewrite by whoever can write the data directory.
        #[arg(long, value_name = "FILE")]
        head: Option<PathBuf>,
        /// Count signed events for this public key (64 hex digits, as `roster head` prints
        /// it), and refuse a witness's head signed by another.
        #[arg(long, value_parser = typed::<PublicKey>, value_name = "KEY")]
        key: Option<PublicKey>,
    },
    /// Write the log as JSON lines (to FILE, or standard output), with its signed heads,
    /// signed to its end first when the signing key is at hand.
    Export {
        /// Where to write.
        file: Option<PathBuf>,
    },
    /// Load a JSON-lines export into an empty data directory, re-verifying every hash and
    /// every signed head it carries.
    Import {
        /// The export.
        file: PathBuf,
        /// Take the export only if heads signed by this public key cover it to its last event.
        #[arg(long, value_parser = typed::<PublicKey>, value_name = "KEY")]
        key: Option<PublicKey>,
    },
    /// Sign the log's head now and print it — position, hash, time, public key, signature —
    /// for a witness or a timestamping service to keep (`--json`: the line `verify --head`
    /// reads back).
    Head {
        /// Also write it to FILE, one JSON line.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Ask whether an agent may do an action on a resource now, and through which grants.
    Check {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
        /// The action, like `email.send`.
        #[arg(value_parser = typed::<Action>)]
        action: Action,
        /// The resource, like `mailbox:alice`.
        #[arg(value_parser = typed::<Resource>)]
        resource: Resource,
        /// The amount it would spend.
        #[arg(long, value_parser = parse_amount, value_name = "N")]
        amount: Option<Amount>,
    },
    /// Have an agent do an action now, exactly as its own `roster-agent act` would: its grants
    /// decide, the use is recorded, its tool provider carries it out; prints what was done,
    /// through which grants, and the provider's answer.
    #[command(after_help = ACT_HELP)]
    Act(ActArgs),
    /// List approval requests that wait for a human.
    Approvals {
        /// Include decided ones.
        #[arg(long)]
        all: bool,
    },
    /// Approve a waiting request (for one use).
    Approve(DecideArgs),
    /// Refuse a waiting request; or, with `--agent` or `--all`, every request waiting now.
    Deny(DenyArgs),
    /// Run the daemon: the store, the agents' containers and their gateway sockets. Other
    /// commands reach it through the admin socket in the data directory while it runs.
    Serve(ServeArgs),
    /// Say whether `roster serve` runs on the data directory, and how its bus is doing (with
    /// NATS: how many events have reached JetStream).
    Status,
    /// Stop an agent's container (SIGTERM, a grace period, then SIGKILL); it stays stopped
    /// until `roster start`.
    Stop {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
    },
    /// Start a stopped agent's container again.
    Start {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
    },
    /// Show what an agent's container printed.
    Logs {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
        /// Keep printing as it prints.
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<u32>,
        /// Print what it printed byte for byte. Without it, control characters other than
        /// newline and tab (terminal escape sequences among them) are shown escaped: an
        /// agent's output never drives the operator's terminal.
        #[arg(long)]
        raw: bool,
    },
    /// Delete a retired agent's container and home volume (its history stays in the log).
    Purge {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
    },
    /// Run a command inside an agent's container, for an operator's debugging.
    Exec {
        /// The agent (id or team/name).
        #[arg(value_parser = parse_agent)]
        agent: AgentRef,
        /// Print its output byte for byte (see `logs --raw`).
        #[arg(long)]
        raw: bool,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// The sandbox: `roster sandbox verify` runs the escape suite in a real agent container.
    #[command(subcommand)]
    Sandbox(SandboxCmd),
    /// Open, accept or close a share: context on matching topics flows from one team to another
    /// only while both sides consent.
    #[command(subcommand)]
    Share(ShareCmd),
    /// List shares, with their state and how many messages crossed each.
    Shares {
        /// Only shares involving this team.
        #[arg(long, value_parser = parse_team)]
        team: Option<TeamRef>,
    },
    /// Print committed events as JSON lines, as an outside subscriber sees them (from NATS
    /// JetStream with a NATS bus; from the log with the in-process one).
    Subscribe(SubscribeArgs),
    /// Measure the log and the authorizer against raw baselines from the same run.
    Bench(BenchArgs),
    /// A story told with the real runtime in a temporary data directory: two teams hire, act,
    /// share and ask for approval, the power fails, and everything is there the morning after.
    Demo {
        /// The bus of the tour's daemon: `memory` (default) or `nats://HOST:PORT` (then the tour
        /// also reads its events back from JetStream, as an outside subscriber).
        #[arg(long, value_parser = typed::<roster_bus::BusUrl>, value_name = "URL")]
        bus: Option<roster_bus::BusUrl>,
        /// Also show every command the demo runs and what it answered.
        #[arg(long, short)]
        verbose: bool,
    },
}

/// `team …`
#[derive(Debug, Subcommand)]
pub enum TeamCmd {
    /// Create a team.
    Create {
        /// Its name: lowercase letters, digits and `-`.
        #[arg(value_parser = typed::<Name>)]
        name: Name,
    },
    /// List teams.
    List,
}

/// `serve` (each also settable in `[serve]` of DATA/roster.toml)
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The static `roster-agent` binary mounted into every agent container [default: next to
    /// this executable, or where scripts/build-agent puts it].
    #[arg(long, env = "ROSTER_AGENT_BINARY", value_name = "FILE")]
    pub agent_binary: Option<PathBuf>,
    /// The static busybox the base image is built with [default: /bin/busybox].
    #[arg(long, env = "ROSTER_BUSYBOX", value_name = "FILE")]
    pub busybox: Option<PathBuf>,
    /// The namespace of this runtime's containers and volumes (`roster-NS-AGENT`) [default:
    /// roster].
    #[arg(long, env = "ROSTER_NS", value_parser = typed::<Name>)]
    pub ns: Option<Name>,
    /// The bus: `memory` (in-process) or `nats://HOST:PORT` / `tls://HOST:PORT` (events to
    /// JetStream, context over NATS), with credentials and TLS files as options
    /// (`?user=NAME&password_file=PATH&ca_file=PATH…`, docs/nats.md) [default: memory].
    #[arg(long, env = "ROSTER_BUS", value_parser = typed::<roster_bus::BusUrl>, value_name = "URL")]
    pub bus: Option<roster_bus::BusUrl>,
    /// Take the namespace over from the data directory that holds it (one imported or copied
    /// from, or one gone for good); refused while that one's daemon runs on this host.
    #[arg(long)]
    pub take_over: bool,
}

impl From<ServeArgs> for roster_runtime::ServeOptions {
    fn from(a: ServeArgs) -> Self {
        roster_runtime::ServeOptions {
            agent_binary: a.agent_binary,
            busybox: a.busybox,
            ns: a.ns,
            bus: a.bus,
            take_over: a.take_over,
        }
    }
}

/// `share …`
#[derive(Debug, Subcommand)]
pub enum ShareCmd {
    /// Offer another team the context of this team's topics that match PATTERN.
    Propose {
        /// The exporting team (whose topics flow).
        #[arg(long, value_parser = parse_team)]
        from: TeamRef,
        /// The importing team (which receives them once it accepts).
        #[arg(long, value_parser = parse_team)]
        to: TeamRef,
        /// Which topics flow, like `findings/**` (`*` one segment, a final `**` the rest).
        #[arg(long, value_parser = typed::<TopicPattern>, value_name = "PATTERN")]
        topics: TopicPattern,
        /// Propose as this agent (its `share.propose@team:FROM` grant is checked).
        #[arg(long, value_parser = parse_agent, value_name = "AGENT")]
        by: Option<AgentRef>,
    },
    /// Accept a proposed share for the importing team: from now on, context flows.
    Accept {
        /// The share: its id, or a unique run of 4 or more of its hex digits (as printed).
        #[arg(value_parser = typed::<IdRef<ShareId>>)]
        share: IdRef<ShareId>,
        /// Accept as this agent (its `share.accept@team:TO` grant is checked).
        #[arg(long, value_parser = parse_agent, value_name = "AGENT")]
        by: Option<AgentRef>,
    },
    /// Close a share (either side): the next message does not cross.
    Close {
        /// The share: its id, or a unique run of 4 or more of its hex digits (as printed).
        #[arg(value_parser = typed::<IdRef<ShareId>>)]
        share: IdRef<ShareId>,
        /// Close as this agent (its `share.close@team:T` grant for its side is checked).
        #[arg(long, value_parser = parse_agent, value_name = "AGENT")]
        by: Option<AgentRef>,
    },
}

/// `subscribe`
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The bus to read from: `nats://HOST:PORT` or `tls://HOST:PORT` (with options, docs/nats.md),
    /// or `memory` for the data directory's own log [default: `[serve] bus` of
    /// DATA/roster.toml, else memory]. Messages that fail the checks are refused on stderr.
    #[arg(long, env = "ROSTER_BUS", value_parser = typed::<roster_bus::BusUrl>, value_name = "URL")]
    pub bus: Option<roster_bus::BusUrl>,
    /// The namespace whose events to read [default: the data directory's, else roster].
    #[arg(long, env = "ROSTER_NS", value_parser = typed::<Name>)]
    pub ns: Option<Name>,
    /// Only this team's events (its name).
    #[arg(long, value_parser = typed::<Name>)]
    pub team: Option<Name>,
    /// Only events of this kind, like `AgentHired`.
    #[arg(long = "type", value_parser = parse_event_kind, value_name = "KIND")]
    pub kind: Option<&'static str>,
    /// Start at this position of the log (ignored when a durable subscription resumes).
    #[arg(long, value_name = "SEQ")]
    pub from: Option<u64>,
    /// Resume where the subscription of this name stopped; each event is acknowledged only
    /// after it is printed.
    #[arg(long, value_parser = typed::<Name>, value_name = "NAME")]
    pub durable: Option<Name>,
    /// Stop after N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// `sandbox …`
#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// Start a real agent container and try, from inside it, every escape the sandbox must
    /// stop; one line per check, exit 1 if any escape worked.
    Verify {
        /// The container runtime to verify.
        #[arg(long, value_enum, default_value_t = RuntimeArg::Runc)]
        runtime: RuntimeArg,
        /// The static `roster-agent` binary [default: as for `serve`].
        #[arg(long, env = "ROSTER_AGENT_BINARY", value_name = "FILE")]
        agent_binary: Option<PathBuf>,
        /// The static busybox the base image is built with.
        #[arg(
            long,
            env = "ROSTER_BUSYBOX",
            default_value = "/bin/busybox",
            value_name = "FILE"
        )]
        busybox: PathBuf,
    },
}

/// `hire …` (the limits' defaults can be set in `[agent]` of DATA/roster.toml)
#[derive(Debug, Args)]
pub struct HireArgs {
    /// The team to hire into.
    #[arg(long, value_parser = parse_team)]
    pub team: TeamRef,
    /// The new agent's name within the team.
    #[arg(long, value_parser = typed::<Name>)]
    pub name: Name,
    /// What it is for.
    #[arg(long, default_value = "", value_parser = typed::<Label>)]
    pub role: Label,
    /// The image its container runs [default: the runtime's base image].
    #[arg(long, value_parser = typed::<ImageRef>)]
    pub image: Option<ImageRef>,
    /// The container runtime [default: runc, or `[agent] runtime` of DATA/roster.toml].
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeArg>,
    /// CPU quota in cores (like 0.5) [default: 1].
    #[arg(long, value_parser = typed::<CpuMillis>, value_name = "CORES")]
    pub cpus: Option<CpuMillis>,
    /// Memory limit in MiB, swap included [default: 256].
    #[arg(long, value_parser = typed::<MemoryMib>, value_name = "MIB")]
    pub memory: Option<MemoryMib>,
    /// Most processes at once [default: 128].
    #[arg(long, value_parser = typed::<Pids>, value_name = "N")]
    pub pids: Option<Pids>,
    /// Size of its /tmp in MiB [default: 64].
    #[arg(long, value_parser = typed::<TmpfsMib>, value_name = "MIB")]
    pub tmpfs: Option<TmpfsMib>,
    /// Stop it after this many seconds of running (until `roster start`) [default: never].
    #[arg(long, value_parser = typed::<TimeoutSecs>, value_name = "SECS")]
    pub timeout: Option<TimeoutSecs>,
    /// Its home disk quota in MiB: the size of the filesystem its home lives in [default: 1024].
    #[arg(long, value_parser = typed::<DiskMib>, value_name = "MIB")]
    pub disk: Option<DiskMib>,
    /// Hire as this agent (its `agent.hire` grant and attenuation are checked).
    #[arg(long, value_parser = parse_agent, value_name = "AGENT")]
    pub by: Option<AgentRef>,
    /// A capability for the new agent (repeatable).
    #[arg(long = "grant", value_parser = typed::<Capability>, value_name = "CAP")]
    pub grants: Vec<Capability>,
}

/// What `roster act --help` says after the options.
const ACT_HELP: &str = "\
It acts as the agent: a refusal is recorded as the agent's AccessDenied, an approval is asked \
for in its name. Through a running `roster serve`, its providers carry the action out: the \
[tools.\"ACTION\"] program of roster.toml, else a service on NATS (NS.tool.ACTION, with \
`roster serve --bus`). Without a daemon only the programs of DATA/roster.toml can run (with \
this command's environment), and nothing waits for an approval. When no provider can run, \
nothing is recorded.

Exit codes: 0 done; 2 bad input; 3 refused (recorded); 6 pending: an approval waits for an \
operator (`roster approve ID`, then act again with --approval ID; nothing was spent); 7 \
unavailable: no tool provider can carry the action out (nothing was recorded); 8 tool_failed: \
recorded as performed and the spend stands, but the provider failed; 1 anything else. With \
--json it prints the agent gateway's answer, {\"performed\",\"chain\",\"approval\",\"result\"}, \
and a failure as {\"code\",\"message\"} (and \"approval\" when pending) on stderr.";

/// What `roster verify --help` says after the options.
const VERIFY_HELP: &str = "\
A signed head proves only that the holder of its key signed that hash at that position. \
Whoever can read the key can sign a rewritten history too, and heads checked against the key \
the data directory itself names prove nothing against whoever can write the directory. What \
does: --key with the public key kept elsewhere, and --head with heads a witness kept outside \
the directory (`roster head --json >> witness.jsonl`, or a timestamping service). Events after \
the last head a witness holds are covered by nothing the writer cannot redo.

Exit codes: 0 the chain holds and so does every signed head; 4 the chain itself is broken or \
unreadable; 9 a signed head (kept, or the witness's) contradicts the log or does not verify: \
the history was rewritten or cut short after it was signed; 2 bad input (an unreadable or \
malformed witness file, a key that is not one); 1 anything else.";

/// `act`
#[derive(Debug, Args)]
pub struct ActArgs {
    /// The agent (id or team/name).
    #[arg(value_parser = parse_agent)]
    pub agent: AgentRef,
    /// The action, like `spend.usd`.
    #[arg(value_parser = typed::<Action>)]
    pub action: Action,
    /// The resource, like `vendor:acme`.
    #[arg(value_parser = typed::<Resource>)]
    pub resource: Resource,
    /// How much it spends against budgets [default: 1].
    #[arg(long, value_parser = parse_amount, value_name = "N")]
    pub amount: Option<Amount>,
    /// An argument for the tool provider (repeatable; names are `[a-z0-9-]`).
    #[arg(long = "arg", value_parser = roster_core::gateway::parse_arg, value_name = "KEY=VALUE")]
    pub args: Vec<(Name, String)>,
    /// Seconds to wait for an operator's decision when a grant asks for approval (at most
    /// 3600; needs `roster serve`); 0 prints the pending approval at once.
    #[arg(long, default_value_t = 0, value_name = "SECS",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_ACT_WAIT_SECS)))]
    pub wait: u32,
    /// An approval asked for earlier (from a pending answer; its id, or a unique run of 4 or
    /// more of its hex digits): use it once granted, or wait for it again.
    #[arg(long, value_parser = typed::<IdRef<ApprovalId>>, value_name = "ID")]
    pub approval: Option<IdRef<ApprovalId>>,
}

/// `approve` / `deny`
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The approval request: its id, or a unique run of 4 or more of its hex digits (as
    /// printed).
    #[arg(value_parser = typed::<IdRef<ApprovalId>>)]
    pub approval: IdRef<ApprovalId>,
    /// Why.
    #[arg(long, value_parser = typed::<Label>)]
    pub note: Option<Label>,
}

/// `roster deny`: one request, or every one waiting (of an agent, or of all).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["approval", "agent", "all"])))]
pub struct DenyArgs {
    /// The approval request: its id, or a unique run of 4 or more of its hex digits (as
    /// printed).
    #[arg(value_parser = typed::<IdRef<ApprovalId>>)]
    pub approval: Option<IdRef<ApprovalId>>,
    /// Every request this agent has waiting (id or team/name).
    #[arg(long, value_parser = parse_agent)]
    pub agent: Option<AgentRef>,
    /// Every request waiting, whoever asked.
    #[arg(long)]
    pub all: bool,
    /// Why.
    #[arg(long, value_parser = typed::<Label>)]
    pub note: Option<Label>,
}

/// A container runtime, as typed on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    /// The engine's default runtime.
    Runc,
    /// gVisor.
    Runsc,
}

impl From<RuntimeArg> for RuntimeKind {
    fn from(r: RuntimeArg) -> Self {
        match r {
            RuntimeArg::Runc => RuntimeKind::Runc,
            RuntimeArg::Runsc => RuntimeKind::Runsc,
        }
    }
}

/// `bench …`
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[arg(value_enum, default_value_t = BenchWhich::All)]
    pub which: BenchWhich,
    /// Events to write (append) or replay.
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Concurrent writers (append).
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Events per append call (append).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Grants in the world (authorize).
    #[arg(long, default_value_t = 10_000)]
    pub grants: usize,
    /// Hires to time (hire).
    #[arg(long, default_value_t = 20)]
    pub hires: usize,
    /// Agents running at once for the memory figure (hire).
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    /// Agents in the fleet (scale).
    #[arg(long, default_value_t = 200)]
    pub fleet: usize,
    /// `whoami` round trips each agent makes at once with all the others (scale).
    #[arg(long, default_value_t = 50)]
    pub calls: usize,
    /// Agents flooding their gateways while a quiet one is timed (scale).
    #[arg(long, default_value_t = 100)]
    pub flooders: usize,
    /// Messages to time (share).
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Events to fan out to JetStream (share).
    #[arg(long, default_value_t = 100_000)]
    pub fanout: u64,
    /// The NATS server to measure on (share) [default: a `nats-server -js` started for the
    /// run on a free port].
    #[arg(long, value_parser = typed::<roster_bus::BusUrl>, value_name = "nats://HOST:PORT")]
    pub nats: Option<roster_bus::BusUrl>,
    /// The static `roster-agent` (hire) [default: as for `serve`].
    #[arg(long, env = "ROSTER_AGENT_BINARY", value_name = "FILE")]
    pub agent_binary: Option<PathBuf>,
    /// The static busybox the base image is built with (hire).
    #[arg(
        long,
        env = "ROSTER_BUSYBOX",
        default_value = "/bin/busybox",
        value_name = "FILE"
    )]
    pub busybox: PathBuf,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Which benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchWhich {
    /// Durable appends with concurrent writers vs raw sled batch insert + flush.
    Append,
    /// Read + verify + decode + fold vs raw sled iterate + decode.
    Replay,
    /// authorize() latency with many grants vs a bare pattern scan.
    Authorize,
    /// An agent's message reaching another team's agent through a share over NATS, vs a raw
    /// NATS request/reply; event fan-out to JetStream vs raw pipelined publishing (needs
    /// Docker and nats-server).
    Share,
    /// hire → first gateway call of the agent, vs docker create + start of the same container;
    /// and the daemon's memory per running agent (needs Docker).
    Hire,
    /// A fleet (`--fleet`, 200) in 4 teams: time until all run vs raw create + start of as
    /// many, memory per agent, gateway round trips from all at once vs bare sockets, and a quiet
    /// agent's round trips while 100 others flood vs idle (needs Docker).
    Scale,
    /// All of them.
    All,
}

/// A command-line value parsed into its validated type: every core type parses with `FromStr`,
/// and its error says what is wrong.
fn typed<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| e.to_string())
}
fn parse_agent(s: &str) -> Result<AgentRef, String> {
    AgentRef::parse(s).map_err(|e| e.to_string())
}
fn parse_team(s: &str) -> Result<TeamRef, String> {
    TeamRef::parse(s).map_err(|e| e.to_string())
}
fn parse_event_kind(s: &str) -> Result<&'static str, String> {
    roster_core::event::Event::KINDS
        .iter()
        .copied()
        .find(|k| *k == s)
        .ok_or_else(|| {
            format!(
                "`{}` is not an event kind; the kinds are {}",
                s.chars().take(64).collect::<String>(),
                roster_core::event::Event::KINDS.join(", ")
            )
        })
}
/// Cores as a decimal (`0.5`, `2`) into thousandths, between 0.01 and 1024.
fn parse_amount(s: &str) -> Result<Amount, String> {
    match s.parse::<u64>() {
        Ok(n) => Amount::new(n).ok_or_else(|| "an amount must be at least 1".to_string()),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}
