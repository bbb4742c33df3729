//! # roster-agent
//!
//! The command line an agent uses inside its container to talk to the runtime, through the
//! gateway socket mounted at `/run/roster/gateway.sock`. The socket is the agent's identity: it
//! holds no token, so this program has nothing to configure and nothing to keep secret.
//!
//! It is mounted read-only into images that may have no libc, so it is built statically, as a
//! crate of its own: roster-core's protocol types, clap, serde_json and std, no async runtime.
//!
//! # Layout
//! - `main.rs`: the arguments, and printing: the `ok` value as JSON on stdout, a failure as
//!   `{"code":…,"message":…}` on stderr with an exit code a program can branch on.
//! - `client`: one request over the socket, under a deadline.
#![forbid(unsafe_code)]

mod client;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use roster_core::capability::{Action, Amount, Capability, Resource};
use roster_core::event::RuntimeKind;
use roster_core::gateway::{
    self, arg_map, ActParams, Call, DelegateParams, HireParams, HistoryParams, PublishParams,
    RetireParams, SubscribeParams, DEFAULT_ACT_WAIT_SECS, MAX_ACT_WAIT_SECS, MAX_LINE,
    MAX_TOOL_SECS,
};
use roster_core::id::{AgentId, ApprovalId, GrantId};
use roster_core::limits::DiskMib;
use roster_core::name::{CallKey, ImageRef, Label, Name};
use roster_core::topic::{Topic, TopicPattern};
use serde_json::{json, Value};

use crate::client::Failure;

/// Talk to the roster runtime from inside an agent's container.
#[derive(Debug, Parser)]
#[command(
    name = "roster-agent",
    version,
    after_help = "Prints the answer as JSON on stdout. On failure, prints {\"code\":…,\"message\":…} \
on stderr and exits with 2 (bad usage or a request the gateway could not read: bad_params, \
unknown_method, invalid_json, line_too_long, missing_id), 3 (denied), 4 (rate_limited: slow \
down and retry), 5 (the gateway cannot be reached), 6 (pending: an approval still waits for an \
operator; act again with --approval ID), 7 (unavailable: no tool provider for the action; \
nothing was recorded), 8 (tool_failed: the action was recorded as performed but its provider \
failed), 10 (disk_full), 11 (key_reused: the --key was used for another call), 1 (anything \
else: internal, timeout)."
)]
struct Cli {
    /// The gateway socket.
    #[arg(
        long,
        global = true,
        env = "ROSTER_GATEWAY",
        default_value = "/run/roster/gateway.sock"
    )]
    socket: PathBuf,
    /// Seconds to wait for the answer; 0 waits as long as it takes (an `act` may wait for a
    /// human's approval).
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
    timeout: u64,
    /// Indent the JSON for people.
    #[arg(long, global = true)]
    pretty: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Who am I: id, name, team, role, who hired me, my container's spec and state.
    Whoami,
    /// My grants: each capability, whether it is active (or why not), its budget spent and left.
    Grants,
    /// My team's events, oldest first (`next` in the answer is where the following page starts).
    History {
        /// The team version to start at (1 is the team's first event).
        #[arg(long)]
        from: Option<u64>,
        /// At most this many events (the gateway caps a page at 1000).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Publish MESSAGE on TOPIC to my team, or with --team to another team through a share
    /// both teams opened (the crossing is recorded, the message is not).
    Share {
        /// The topic, like `findings/daily`.
        #[arg(value_parser = typed::<Topic>)]
        topic: Topic,
        /// The text (at most 64 KiB); `-` reads it from stdin.
        message: String,
        /// Another team to send it to.
        #[arg(long, value_parser = parse_name)]
        team: Option<Name>,
    },
    /// Print the messages on my team's topics matching the patterns (default: all), one JSON
    /// line each, as they arrive — including those other teams share with mine.
    Listen {
        /// Topic patterns: `*` is one segment, a final `**` the rest.
        #[arg(value_parser = typed::<TopicPattern>, value_name = "PATTERN")]
        topics: Vec<TopicPattern>,
        /// Stop after N messages.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Do ACTION on RESOURCE through my grants; its tool provider carries it out and its answer
    /// is printed. When a grant asks for a human's approval, waits for an operator's decision
    /// (`--wait`); if none comes in time, exits 6 with the approval id to pass to `--approval`.
    Act {
        /// The action, like `email.send`.
        #[arg(value_parser = typed::<Action>)]
        action: Action,
        /// The resource, like `mailbox:alice`.
        #[arg(value_parser = typed::<Resource>)]
        resource: Resource,
        /// How much it spends against budgets (default 1).
        #[arg(long, value_parser = parse_amount, value_name = "N")]
        amount: Option<Amount>,
        /// An argument for the tool provider (repeat for more; names are `[a-z0-9-]`).
        #[arg(long = "arg", value_parser = gateway::parse_arg, value_name = "KEY=VALUE")]
        args: Vec<(Name, String)>,
        /// Seconds to wait for a human's approval (default 300, at most 3600; 0: do not wait).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_ACT_WAIT_SECS)))]
        wait: Option<u32>,
        /// An approval asked for earlier (from a `pending` answer): wait for it again, or use
        /// it once granted.
        #[arg(long, value_parser = typed::<ApprovalId>, value_name = "ID")]
        approval: Option<ApprovalId>,
        /// An idempotency key (1-64 of A-Z a-z 0-9 . _ : -): asked again with the same key, the
        /// same act is answered with the use recorded the first time (`"replayed":true`, the
        /// provider not run again), so an act whose answer was lost can be retried safely.
        #[arg(long, value_parser = typed::<CallKey>, value_name = "KEY")]
        key: Option<CallKey>,
    },
    /// Hire a teammate into my team, with grants each covered by one of mine (they derive from
    /// mine, so revoking mine revokes theirs); prints `agent`, the new agent's id, and the
    /// events. It is confined like me (runtime, limits, timeout, home disk) unless it asks for
    /// tighter.
    Hire {
        /// Its name in my team.
        #[arg(value_parser = typed::<Name>)]
        name: Name,
        /// What it is for.
        #[arg(long, value_parser = typed::<Label>)]
        role: Option<Label>,
        /// Its image (default: the runtime's base image).
        #[arg(long, value_parser = typed::<ImageRef>)]
        image: Option<ImageRef>,
        /// Its container runtime, runc or runsc (default: mine; never weaker than mine).
        #[arg(long, value_parser = parse_runtime)]
        runtime: Option<RuntimeKind>,
        /// Its home disk quota in MiB (default: mine; never more than mine).
        #[arg(long, value_parser = typed::<DiskMib>, value_name = "MIB")]
        disk: Option<DiskMib>,
        /// A capability for it, like `email.send@mailbox:alice,budget=5` (repeat for more).
        #[arg(long = "grant", value_parser = typed::<Capability>, value_name = "CAP")]
        grants: Vec<Capability>,
    },
    /// Pass a teammate a grant attenuated from one of mine.
    Delegate {
        /// The teammate (`agt_…`).
        #[arg(value_parser = typed::<AgentId>)]
        to: AgentId,
        /// The capability, covered by the grant it derives from.
        #[arg(value_parser = typed::<Capability>)]
        capability: Capability,
        /// The grant of mine to derive from (default: the first that covers it).
        #[arg(long, value_parser = typed::<GrantId>, value_name = "GRANT")]
        from: Option<GrantId>,
        /// An idempotency key (1-64 of A-Z a-z 0-9 . _ : -): asked again with the same key, the
        /// same delegation is answered with the events recorded the first time.
        #[arg(long, value_parser = typed::<CallKey>, value_name = "KEY")]
        key: Option<CallKey>,
    },
    /// Retire an agent I hired (directly or through my hires): its grants stop working.
    Retire {
        /// The agent (`agt_…`).
        #[arg(value_parser = typed::<AgentId>)]
        agent: AgentId,
    },
    /// The base image's default program: greet the runtime (`whoami`, retried until the
    /// gateway answers), print who I am, then wait until the container is stopped.
    Idle,
    /// Any method, with its parameters as one JSON object (for example
    /// `call hire '{"name":"scout","grants":["email.send@mailbox:team"]}'`).
    Call {
        /// The method: whoami, grants, history, hire, retire, delegate, act, decide_approval
        /// (always refused: only operators decide approvals), publish, subscribe,
        /// share_propose, share_accept, share_close, shares.
        method: String,
        /// Its parameters, a JSON object; `-` reads them from stdin (for long messages).
        params: Option<String>,
    },
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
fn parse_runtime(s: &str) -> Result<RuntimeKind, String> {
    match s {
        "runc" => Ok(RuntimeKind::Runc),
        "runsc" => Ok(RuntimeKind::Runsc),
        _ => Err(format!(
            "`{}` is not a runtime: runc or runsc",
            s.chars().take(32).collect::<String>()
        )),
    }
}
/// A team name (the message names it so).
fn parse_name(s: &str) -> Result<Name, String> {
    Name::parse_as(s, "team name").map_err(|e| e.to_string())
}
fn parse_amount(s: &str) -> Result<Amount, String> {
    match s.parse::<u64>() {
        Ok(n) => Amount::new(n).ok_or_else(|| "an amount must be at least 1".to_string()),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// The request object (without id) for a command.
fn request(command: Command) -> Result<serde_json::Map<String, Value>, Failure> {
    let typed = |call: Call| match serde_json::to_value(call) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Failure::Usage("cannot encode the request".into())),
    };
    match command {
        Command::Whoami | Command::Idle => typed(Call::Whoami),
        Command::Grants => typed(Call::Grants),
        Command::History { from, limit } => typed(Call::History(HistoryParams { from, limit })),
        Command::Share {
            topic,
            message,
            team,
        } => {
            let message = if message == "-" { stdin()? } else { message };
            typed(Call::Publish(PublishParams {
                topic,
                message,
                team,
            }))
        }
        Command::Hire {
            name,
            role,
            image,
            runtime,
            disk,
            grants,
        } => typed(Call::Hire(HireParams {
            name,
            role,
            image,
            runtime,
            disk_mib: disk,
            grants,
        })),
        Command::Delegate {
            to,
            capability,
            from,
            key,
        } => typed(Call::Delegate(DelegateParams {
            to,
            capability,
            from,
            key,
        })),
        Command::Retire { agent } => typed(Call::Retire(RetireParams { agent })),
        Command::Listen { topics, .. } => {
            let topics = if topics.is_empty() {
                vec![TopicPattern::parse("**").map_err(|e| Failure::Usage(e.to_string()))?]
            } else {
                topics
            };
            typed(Call::Subscribe(SubscribeParams { topics }))
        }
        Command::Act {
            action,
            resource,
            amount,
            args,
            wait,
            approval,
            key,
        } => typed(Call::Act(ActParams {
            action,
            resource,
            amount,
            args: arg_map(args).map_err(Failure::Usage)?,
            timeout_secs: wait,
            approval,
            key,
        })),
        Command::Call { method, params } => {
            let mut m = serde_json::Map::new();
            m.insert("method".into(), Value::String(method));
            if let Some(text) = params {
                let text = if text == "-" { stdin()? } else { text };
                let p: Value = serde_json::from_str(&text)
                    .map_err(|e| Failure::Usage(format!("the parameters are not JSON: {e}")))?;
                m.insert("params".into(), p);
            }
            Ok(m)
        }
    }
}

/// Parameters from stdin, read no further than what the gateway could take.
fn stdin() -> Result<String, Failure> {
    let mut text = String::new();
    let limit = u64::try_from(MAX_LINE)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    std::io::stdin()
        .lock()
        .take(limit)
        .read_to_string(&mut text)
        .map_err(|e| Failure::Usage(format!("cannot read the parameters from stdin: {e}")))?;
    if text.len() > MAX_LINE {
        return Err(Failure::Usage(format!(
            "the parameters are over {MAX_LINE} bytes, more than the gateway takes"
        )));
    }
    Ok(text)
}

/// The deadline for a request: `--timeout`, stretched for an `act` to its approval wait (the
/// default when it does not say) plus the longest a tool provider may take and a margin, so
/// that the gateway's answer, not ours, ends the wait.
fn deadline(secs: u64, request: &serde_json::Map<String, Value>) -> Option<Duration> {
    if secs == 0 {
        return None;
    }
    let act = if request.get("method") == Some(&json!("act")) {
        let wait = request
            .get("params")
            .and_then(|p| p.get("timeout_secs"))
            .and_then(Value::as_u64)
            .unwrap_or(u64::from(DEFAULT_ACT_WAIT_SECS));
        wait.saturating_add(u64::from(MAX_TOOL_SECS))
            .saturating_add(10)
    } else {
        0
    };
    Some(Duration::from_secs(secs.max(act)))
}

/// Writes one line, ignoring a reader that left (`roster-agent history | head`).
fn print(mut to: impl Write, text: &str) {
    let _ = writeln!(to, "{text}").and_then(|()| to.flush());
}

fn fail(f: &Failure) -> ExitCode {
    let body = json!({ "code": f.code(), "message": f.to_string() });
    print(std::io::stderr().lock(), &body.to_string());
    ExitCode::from(f.exit_code())
}

/// `roster-agent idle`: one greeting, then nothing until SIGTERM ends the process (it is not
/// PID 1 — the container's init is — so the default action of SIGTERM applies).
fn idle(socket: &std::path::Path) -> ExitCode {
    let started = std::time::Instant::now();
    loop {
        let answer = request(Command::Whoami)
            .and_then(|req| client::call(socket, req, Some(Duration::from_secs(10))));
        match answer {
            Ok(me) => {
                print(std::io::stdout().lock(), &me.to_string());
                break;
            }
            // The socket is there before the container starts; a refusal or a dead socket
            // after a while is worth saying, but an idle agent stays up either way.
            Err(f) if started.elapsed() > Duration::from_secs(30) => {
                print(std::io::stderr().lock(), &format!("roster-agent idle: {f}"));
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    loop {
        std::thread::park();
    }
}

/// `roster-agent listen`: subscribe, then print each pushed message as it arrives (a `dropped`
/// notice too, when the runtime had to drop messages because we read too slowly).
fn listen(
    socket: &std::path::Path,
    req: serde_json::Map<String, Value>,
    count: Option<u64>,
    timeout: u64,
) -> Result<(), Failure> {
    let mut session = client::Session::connect(socket)?;
    let timeout = (timeout > 0).then(|| Duration::from_secs(timeout));
    session.call(req, timeout)?;
    let mut seen = 0u64;
    while count.is_none_or(|n| seen < n) {
        let Some(push) = session.next_push()? else {
            return Err(Failure::Protocol(
                "the gateway closed the connection".into(),
            ));
        };
        print(std::io::stdout().lock(), &push.to_string());
        if push.get("kind") == Some(&json!("message")) {
            seen += 1;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let message = e.render().to_string();
            return fail(&Failure::Usage(message.trim_end().to_owned()));
        }
    };
    if matches!(cli.command, Command::Idle) {
        return idle(&cli.socket);
    }
    if let Command::Listen { count, .. } = cli.command {
        return match request(cli.command)
            .and_then(|req| listen(&cli.socket, req, count, cli.timeout))
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(f) => fail(&f),
        };
    }
    let result = request(cli.command).and_then(|req| {
        let timeout = deadline(cli.timeout, &req);
        client::call(&cli.socket, req, timeout)
    });
    match result {
        Ok(value) => {
            let text = if cli.pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            print(std::io::stdout().lock(), &text.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(f) => fail(&f),
    }
}
