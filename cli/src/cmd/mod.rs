//! From a parsed command line to what runs: most commands are one typed
//! [`Request`](roster_runtime::admin::Request), carried out by the daemon that owns the data
//! directory (over the admin socket) or, when none runs, here on the data directory; the rest
//! (`serve`, `demo`, `bench`, `sandbox verify`, `subscribe` from NATS) run here.

mod sandbox;
pub(crate) mod subscribe;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use roster_core::gateway::{arg_map, ActParams};
use roster_core::name::Name;
use roster_runtime::admin::{self, socket, Ctx, Item, Reply, Request, Sink};

use crate::args::{BenchArgs, Cmd, SandboxCmd, ServeArgs, ShareCmd, SubscribeArgs, TeamCmd};
use crate::error::CliError;
use crate::output::Out;
use crate::render::{note, Render};

/// What a command line comes to.
#[derive(Debug)]
pub enum Plan {
    /// An operation: the daemon's, or run here on the data directory.
    Operate(Request),
    /// A command that runs here whatever runs on the data directory.
    Here(Local),
}

/// The commands that run here.
#[derive(Debug)]
pub enum Local {
    /// `roster serve`.
    Serve(ServeArgs),
    /// `roster sandbox verify`.
    Sandbox(SandboxCmd),
    /// `roster subscribe` from NATS.
    Subscribe(SubscribeArgs),
    /// `roster bench`.
    Bench(BenchArgs),
    /// `roster demo`.
    Demo {
        /// The bus.
        bus: Option<roster_bus::BusUrl>,
        /// Tell more.
        verbose: bool,
    },
}

/// What `cmd` comes to. `subscribe` is an operation only on the in-process bus, where it reads
/// the data directory's log; with NATS it reads the stream from here (and an unreadable
/// roster.toml is reported here too).
pub fn plan(cmd: Cmd, data_dir: &Path) -> Result<Plan, CliError> {
    let request = match cmd {
        Cmd::Serve(a) => return Ok(Plan::Here(Local::Serve(a))),
        Cmd::Sandbox(c) => return Ok(Plan::Here(Local::Sandbox(c))),
        Cmd::Bench(a) => return Ok(Plan::Here(Local::Bench(a))),
        Cmd::Demo { bus, verbose } => return Ok(Plan::Here(Local::Demo { bus, verbose })),
        Cmd::Subscribe(a) => {
            if !subscribe::bus(&a, data_dir).is_ok_and(|b| b.is_memory()) {
                return Ok(Plan::Here(Local::Subscribe(a)));
            }
            Request::Subscribe(admin::Subscribe {
                team: a.team,
                kind: a.kind.map(str::to_owned),
                from: a.from,
                durable: a.durable,
                count: a.count,
            })
        }
        Cmd::Init => Request::Init,
        Cmd::Team(TeamCmd::Create { name }) => Request::CreateTeam { name },
        Cmd::Team(TeamCmd::List) => Request::Teams,
        Cmd::Hire(a) => Request::Hire(admin::Hire {
            team: a.team,
            name: a.name,
            role: a.role,
            image: a.image,
            runtime: a.runtime.map(Into::into),
            cpus: a.cpus,
            memory: a.memory,
            pids: a.pids,
            tmpfs: a.tmpfs,
            timeout: a.timeout,
            disk: a.disk,
            by: a.by,
            grants: a.grants,
        }),
        Cmd::Agents { team, all } => Request::Agents { team, all },
        Cmd::Retire { agent, by } => Request::Retire { agent, by },
        Cmd::Grant {
            agent,
            capability,
            from,
            by,
        } => Request::Grant {
            agent,
            capability,
            from,
            by,
        },
        Cmd::Revoke { grant, by } => Request::Revoke { grant, by },
        Cmd::Grants { agent } => Request::Grants { agent },
        Cmd::Check {
            agent,
            action,
            resource,
            amount,
        } => Request::Check {
            agent,
            action,
            resource,
            amount,
        },
        Cmd::Act(a) => Request::Act {
            agent: a.agent,
            params: ActParams {
                action: a.action,
                resource: a.resource,
                amount: a.amount,
                args: arg_map(a.args).map_err(CliError::Input)?,
                timeout_secs: Some(a.wait),
                approval: None,
                key: None,
            },
            approval: a.approval,
        },
        Cmd::Approvals { all } => Request::Approvals { all },
        Cmd::Approve(a) => Request::Decide {
            approval: a.approval,
            approved: true,
            note: a.note,
        },
        Cmd::Deny(a) => match a.approval {
            Some(approval) => Request::Decide {
                approval,
                approved: false,
                note: a.note,
            },
            None => Request::DenyWaiting {
                agent: a.agent,
                note: a.note,
            },
        },
        Cmd::Log { team, from, follow } => Request::Log { team, from, follow },
        Cmd::Replay { at, team } => Request::Replay { at, team },
        Cmd::Verify { head, key } => Request::Verify {
            head: head.map(text_path).transpose()?,
            key,
        },
        Cmd::Export { file } => Request::Export {
            file: file.map(text_path).transpose()?,
        },
        Cmd::Import { file, key } => Request::Import {
            file: text_path(file)?,
            key,
        },
        Cmd::Head { out } => Request::Head {
            out: out.map(text_path).transpose()?,
        },
        Cmd::Status => Request::Status,
        Cmd::Stop { agent } => Request::Stop { agent },
        Cmd::Start { agent } => Request::Start { agent },
        Cmd::Logs {
            agent,
            follow,
            tail,
            raw: _,
        } => Request::Logs {
            agent,
            follow,
            tail,
        },
        Cmd::Purge { agent } => Request::Purge { agent },
        Cmd::Exec {
            agent,
            command,
            raw: _,
        } => Request::Exec { agent, command },
        Cmd::Share(ShareCmd::Propose {
            from,
            to,
            topics,
            by,
        }) => Request::ProposeShare {
            from,
            to,
            topics,
            by,
        },
        Cmd::Share(ShareCmd::Accept { share, by }) => Request::AcceptShare { share, by },
        Cmd::Share(ShareCmd::Close { share, by }) => Request::CloseShare { share, by },
        Cmd::Shares { team } => Request::Shares { team },
    };
    Ok(Plan::Operate(request))
}

/// `path`, if it is text: the admin protocol carries text only.
fn text_path(path: PathBuf) -> Result<PathBuf, CliError> {
    match path.to_str() {
        Some(_) => Ok(path),
        None => Err(CliError::Input(format!(
            "{} is not UTF-8: roster takes file names as text only",
            path.display()
        ))),
    }
}

/// Who asks, from where, and how the answer should look.
#[derive(Debug)]
pub struct Caller {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The operator's name.
    pub operator: Name,
    /// The working directory, for relative file arguments.
    pub cwd: PathBuf,
    /// `--json`.
    pub json: bool,
    /// `--raw`: an agent's output as it is, not escaped.
    pub raw: bool,
}

/// Carries out `request` — through the daemon that owns the data directory if one runs, else
/// here — rendering its items as they come; returns the exit code.
pub fn operate(request: Request, caller: Caller) -> u8 {
    let mut render = Render::new(&request, caller.json).raw(caller.raw);
    // While `roster serve` runs on the data directory, it owns the store: it carries this out.
    if let Some(stream) = socket::connect(&caller.data_dir) {
        let call = socket::Call {
            request,
            operator: caller.operator,
            cwd: caller.cwd,
        };
        return match socket::forward(stream, &call, |item| render.item(item)) {
            Ok(ended) => end(&mut render, ended.exit, ended.error),
            // `roster log | head`: the reader left; that is not an error worth a message.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Err(e) => end(&mut render, 1, Some(e.to_string())),
        };
    }
    let render = Arc::new(Here(Mutex::new(render)));
    let ctx = Ctx {
        data_dir: &caller.data_dir,
        operator: caller.operator,
        cwd: caller.cwd,
        daemon: None,
        reply: Reply::new(render.clone()),
    };
    let done = admin::run(request, &ctx);
    let mut render = render.0.lock().unwrap_or_else(PoisonError::into_inner);
    match done {
        Ok(()) => end(&mut render, 0, None),
        Err(e) => end(&mut render, e.exit_code(), e.message()),
    }
}

/// Ends an operation's output: the listing's table if it succeeded, the failure in words.
fn end(render: &mut Render, exit: u8, error: Option<String>) -> u8 {
    if let Err(e) = render.finish(exit == 0) {
        return exit_of_output(&e);
    }
    if let Some(error) = error {
        // If even the error cannot be written, the exit code still says it.
        let _ = note(&error);
    }
    exit
}

/// A failure to print: nothing if the reader left, else 1.
fn exit_of_output(e: &std::io::Error) -> u8 {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        0
    } else {
        let _ = note(&format!("cannot write the answer: {e}"));
        1
    }
}

/// Items rendered as an operation run here makes them.
#[derive(Debug)]
struct Here(Mutex<Render>);

impl Sink for Here {
    fn send(&self, item: Item) -> std::io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .item(item)
    }

    fn gone(&self) -> bool {
        false
    }
}

/// Runs a command that runs here.
pub fn here(cmd: Local, caller: &Caller) -> anyhow::Result<()> {
    let out = Out { json: caller.json };
    match cmd {
        Local::Serve(a) => Ok(roster_runtime::daemon::serve(&caller.data_dir, a.into())?),
        Local::Sandbox(SandboxCmd::Verify {
            runtime,
            agent_binary,
            busybox,
        }) => sandbox::verify(runtime.into(), agent_binary, busybox, out),
        Local::Subscribe(a) => subscribe::run(a, &caller.data_dir, out),
        Local::Bench(a) => crate::bench::run(a, out),
        Local::Demo { bus, verbose } => crate::demo::run(bus.unwrap_or_default(), verbose),
    }
}
