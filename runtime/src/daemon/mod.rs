//! `roster serve`: the daemon. It owns the data directory while it runs — the store, the world
//! folded from it, the agents' containers and their gateway sockets — and answers every other
//! command through the admin socket.
//!
//! # Layout
//! - `policy`: what the supervisor should do, a pure function of the world, what it knows of each
//!   container and the time (`converge`).
//! - `supervisor`: carries that out (start, restart with backoff, timeouts, removal at
//!   retirement), and reconciles at start and after an engine outage.
//! - `backend`: the gateway [`Backend`](crate::gateway::Backend) over the daemon's world and log.
//! - `control`: what operator commands ask of the containers (stop, start, logs, exec, purge).
//! - `context`: `publish` and `subscribe` over the bus, with the share checks where a message
//!   leaves and where it arrives.
//! - `act`: `act`, for an agent's gateway and for `roster act` — decide, wait for a human's
//!   approval without holding the lock, record the spend, call the tool provider (also run
//!   without a daemon, on a data directory a command opened). `tools`: the providers (a program
//!   configured in `roster.toml`, or a service on `NS.tool.ACTION`).
//! - `keyed`: a keyed `act` or `delegate` asked again, answered with its recorded outcome.
//!
//! One decision lane: the store and world sit behind one `RwLock`, reached only through
//! [`Daemon::decide`] (exclusive, for one decision), [`Daemon::read`] (a short look) and
//! [`Daemon::snapshot`] (what a reader that writes to a client holds instead).

pub mod act;
mod backend;
pub mod containers;
mod context;
pub mod control;
mod keyed;
pub mod lease;
pub mod policy;
// The supervisor's simulation: a test module (under `tests/`, with the daemon's other tests).
#[cfg(test)]
#[path = "tests/sim.rs"]
mod sim;
// Keyed `act` and `delegate` through the daemon's backend, over the simulated engine.
#[cfg(test)]
#[path = "tests/keyed.rs"]
mod keyed_tests;
pub mod supervisor;
mod tools;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use roster_core::id::AgentId;
use roster_sandbox::Engine;

use crate::app::App;
use crate::error::{RuntimeError, StartError};

/// How a daemon is asked to run; each field left unset falls back to `[serve]` of
/// DATA/roster.toml, then to its default. (`roster serve` fills it from its flags and their
/// `ROSTER_*` variables.)
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The static `roster-agent` mounted into every agent container [default: next to this
    /// executable, or where scripts/build-agent puts it].
    pub agent_binary: Option<PathBuf>,
    /// The static busybox the base image is built with [default: /bin/busybox].
    pub busybox: Option<PathBuf>,
    /// The namespace of the daemon's containers and volumes [default: roster].
    pub ns: Option<roster_core::name::Name>,
    /// The bus [default: in-process].
    pub bus: Option<roster_bus::BusUrl>,
    /// Takes the namespace over from another data directory that holds it and does not run
    /// on this host ([`lease`]).
    pub take_over: bool,
}

/// The running daemon, as commands see it.
#[derive(Debug)]
pub struct Daemon {
    app: RwLock<App>,
    data_dir: PathBuf,
    /// The containers' supervisor.
    sup: Arc<supervisor::Supervisor>,
    /// The async runtime, for commands (on blocking threads) that talk to the engine.
    rt: tokio::runtime::Handle,
    /// Itself, for tasks started from a command (which only has `&Daemon`).
    me: std::sync::Weak<Daemon>,
    /// Set when the daemon must stop: its store failed.
    failed: std::sync::OnceLock<String>,
    /// Wakes `serve` when `failed` is set.
    failing: tokio::sync::Notify,
    /// When each agent's gateway first answered it (for `roster bench hire`).
    first_calls: Mutex<std::collections::HashMap<AgentId, std::time::Instant>>,
    /// Context between agents, over the bus.
    context: context::Context,
    /// The publisher of every committed event to JetStream (with a NATS bus).
    outbox: Mutex<Option<roster_bus::Outbox>>,
    /// The bus it uses.
    bus: roster_bus::BusUrl,
    /// Who carries out the actions agents are allowed (`act`).
    tools: tools::Tools,
    /// Set by the supervisor's simulation (`sim`): its clock, virtual. Its looks at the world
    /// are then made inline (see `supervisor::off_workers`).
    sim_clock: Option<SimClock>,
    /// The data directory's signing key, loaded at start (`None` only in the simulation):
    /// signs the log's head on a cadence, at a clean stop, and for commands that ask.
    signer: Option<Arc<crate::signing::Signer>>,
}

/// A virtual wall clock.
#[derive(Clone)]
pub(crate) struct SimClock(pub(crate) Arc<dyn Fn() -> roster_core::time::Timestamp + Send + Sync>);

impl std::fmt::Debug for SimClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimClock")
    }
}

impl Daemon {
    /// Runs `f` with the store and world held exclusively: the one way anything is decided and
    /// recorded here. `f` must not wait on anyone else's speed (a client, the engine, a peer):
    /// everything waits for it.
    pub fn decide<T>(&self, f: impl FnOnce(&mut App) -> T) -> Result<T, RuntimeError> {
        let mut app = self.app.write().map_err(|_| half_changed())?;
        Ok(f(&mut app))
    }

    /// Runs `f` on the store and world for reading: many readers at once, none while a
    /// decision is made. For short looks only; a reader that writes to a client takes a
    /// [`Daemon::snapshot`] instead.
    pub fn read<T>(&self, f: impl FnOnce(&App) -> T) -> Result<T, RuntimeError> {
        let app = self.app.read().map_err(|_| half_changed())?;
        Ok(f(&app))
    }

    /// [`Daemon::read`] if that needs no waiting at this moment (for a read that must not
    /// wait); `None` while a decision is made, or if they were left half-changed (`decide`
    /// says so).
    pub fn try_read<T>(&self, f: impl FnOnce(&App) -> T) -> Option<T> {
        self.app.try_read().ok().map(|app| f(&app))
    }

    /// The world as it stands and the log to read, held without holding anything a decision
    /// waits for: what a reader that writes to a client (however slow) takes.
    pub fn snapshot(&self) -> Result<crate::app::Snapshot, RuntimeError> {
        self.read(App::snapshot)
    }

    /// The wall clock (virtual in the supervisor's simulation).
    pub fn now(&self) -> roster_core::time::Timestamp {
        match &self.sim_clock {
            Some(clock) => (clock.0)(),
            None => crate::app::now(),
        }
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the daemon: something it cannot go on without failed.
    pub fn fail(&self, why: String) {
        let _ = self.failed.set(why);
        self.failing.notify_one();
    }

    /// The containers' supervisor.
    pub fn supervisor(&self) -> &supervisor::Supervisor {
        &self.sup
    }

    /// Puts in force, before they are answered, what `committed` changed of agents' standing:
    /// a retired agent's subscriptions end and its gateway closes at once (its calls are
    /// refused by the log from the retirement on; this ends what was already open). Called
    /// inside the decision, with the ledger held, so that nothing decided after the
    /// retirement (a teammate's publish) reaches a stream of the retired agent. It only takes
    /// the slots' and the subscriptions' locks (each taken after the ledger everywhere) and
    /// waits for nothing. `caller`: the agent whose call this answers
    /// (an agent retiring itself keeps its connection until its answer is out; the supervisor
    /// closes its socket at its next pass).
    pub fn in_force(&self, committed: &[roster_core::envelope::Envelope], caller: Option<AgentId>) {
        for e in committed {
            if let roster_core::event::Event::AgentRetired { agent, .. } = e.event {
                self.context.end_subscriptions(agent);
                if caller == Some(agent) {
                    continue;
                }
                // Dropping it stops its accept loop and ends its connections.
                let gateway = self
                    .sup
                    .slots()
                    .get_mut(&agent)
                    .and_then(|s| s.gateway.take());
                drop(gateway);
            }
        }
    }

    /// The data directory's signing key.
    pub fn signer(&self) -> Option<&Arc<crate::signing::Signer>> {
        self.signer.as_ref()
    }

    /// Tells the supervisor the log moved.
    pub fn poke(&self) {
        self.sup.wake.notify_one();
    }

    /// The gateway backend every agent's socket answers with.
    fn backend(&self) -> Arc<dyn crate::gateway::Backend> {
        Arc::new(backend::DaemonBackend(self.me.clone()))
    }

    /// An owning handle on itself.
    fn arc(&self) -> Result<Arc<Daemon>, RuntimeError> {
        self.me.upgrade().ok_or(RuntimeError::ShuttingDown)
    }

    /// The bus it uses.
    pub fn bus(&self) -> &roster_bus::BusUrl {
        &self.bus
    }

    /// The outbox's progress, with a NATS bus.
    pub fn outbox_status(&self) -> Option<roster_bus::OutboxStatus> {
        let outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        outbox.as_ref().map(roster_bus::Outbox::status)
    }

    /// Notes that `agent`'s gateway has answered it (the first time counts).
    fn answered(&self, agent: AgentId) {
        if let Ok(mut m) = self.first_calls.lock() {
            m.entry(agent).or_insert_with(std::time::Instant::now);
        }
    }

    /// When `agent` first got an answer from its gateway, if it did.
    pub fn first_call(&self, agent: AgentId) -> Option<std::time::Instant> {
        self.first_calls
            .lock()
            .ok()
            .and_then(|m| m.get(&agent).copied())
    }
}

fn half_changed() -> RuntimeError {
    RuntimeError::HalfChanged
}

/// Where roster keeps what it mounts into containers, inside the data directory.
fn gateways_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("gateways")
}

/// Where agents' home disks are kept (see `roster_sandbox::disk`).
fn homes_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("homes")
}

/// A daemon started in this process (by `roster serve`, or by `roster bench hire`).
#[derive(Debug)]
pub struct Running {
    /// The daemon.
    pub daemon: Arc<Daemon>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket: PathBuf,
    /// The namespace of its containers.
    pub ns: roster_core::name::Name,
    /// Why agents' homes get no disks of their own, if they do not.
    pub no_disks: Option<String>,
    /// The data directory's lock, held while it runs.
    _lock: lease::ServeLock,
}

impl Running {
    /// Stops accepting clients and supervising; containers keep running (a next `roster serve`
    /// adopts them).
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        self.daemon.sup.close_gateways().await;
        self.daemon.context.stop();
        let outbox = self
            .daemon
            .outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(outbox) = outbox {
            // In-flight publishes are awaited and the checkpoint written; what is still in the
            // log goes out at the next start.
            outbox.stop().await;
        }
        // Every refusal left out is accounted for before the log's last head.
        let daemon = self.daemon.clone();
        let left =
            tokio::task::spawn_blocking(move || daemon.decide(|app| app.record_left_out(true)))
                .await;
        if let Ok(Ok(Err(e))) = left {
            tracing::warn!("cannot record the refusals left out: {e}");
        }
        // A daemon that stops cleanly leaves its log signed to the end.
        if let (Some(signer), Ok(log)) = (
            self.daemon.signer.clone(),
            self.daemon.read(|app| Arc::clone(app.log())),
        ) {
            crate::signing::at_stop(signer, log).await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Records the refusals left out by the agents' budgets (`crate::refusals`) every two
/// seconds, as the budgets allow: an agent that stops asking is accounted for too.
async fn record_left_out(d: Arc<Daemon>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let daemon = d.clone();
        let done =
            tokio::task::spawn_blocking(move || daemon.decide(|app| app.record_left_out(false)))
                .await;
        if let Ok(Ok(Err(e))) = done {
            tracing::warn!("cannot record the refusals left out: {e}");
        }
    }
}

/// Runs `roster serve` on `data_dir` until SIGINT or SIGTERM.
pub fn serve(data_dir: &Path, args: ServeOptions) -> Result<(), StartError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(StartError::AsyncRuntime)?;
    rt.block_on(async {
        let running = start(data_dir, &args).await?;
        eprintln!(
            "roster serve: running on {} (admin socket {}; namespace {}; bus {})",
            data_dir.display(),
            running.socket.display(),
            running.ns,
            running.daemon.bus()
        );
        if !supervisor::open_to_agents_only() {
            eprintln!(
                "roster serve: WARNING: not run by root, so agents' gateway sockets cannot be \
                 given to each agent's own uid: they are open to any host user that can enter \
                 {} (keep it 0700, as roster makes it)",
                data_dir.display()
            );
        }
        if let Some(why) = &running.no_disks {
            eprintln!(
                "roster serve: WARNING: agents' homes get no disks of their own, so nothing \
                 bounds what an agent writes there but the host's disk: {why}"
            );
        }
        // What the bus URL leaves open (no credentials, plain TCP to another machine): loud,
        // since the server's own configuration decides whether it matters.
        for warning in running
            .daemon
            .bus()
            .nats()
            .map(roster_bus::NatsUrl::warnings)
            .unwrap_or_default()
        {
            eprintln!("roster serve: {warning}");
        }
        if let Some(signer) = running.daemon.signer() {
            eprintln!(
                "roster serve: signing heads of the log with {} (public key {}{})",
                signer.path().display(),
                signer.public_key(),
                if signer.made() { "; made just now" } else { "" }
            );
        }
        let d = running.daemon.clone();
        tokio::select! {
            () = wait_for_signal() => {}
            () = d.failing.notified() => {}
        }
        running.shutdown().await;
        if let Some(why) = d.failed.get() {
            return Err(StartError::Stopped(why.clone()));
        }
        eprintln!("roster serve: stopped; agents' containers keep running until the next start");
        Ok(())
    })
}

/// Starts the daemon inside the current tokio runtime: opens the store, connects to the engine,
/// builds the base image if needed, reconciles, then supervises and serves the admin socket.
pub async fn start(data_dir: &Path, args: &ServeOptions) -> Result<Running, StartError> {
    let lock = lease::lock_data_dir(data_dir)?;
    let app = App::open(data_dir)?;
    // A flag (or its ROSTER_* variable), then DATA/roster.toml, then the default.
    let config = crate::config::Config::load(data_dir).map_err(RuntimeError::from)?;
    // A daemon does not run unsigned: a key configured elsewhere and missing stops the start.
    let signer = Arc::new(crate::signing::Signer::require(
        data_dir,
        crate::signing::Make::AtDefault,
    )?);
    let signing = crate::signing::run(
        Arc::clone(&signer),
        Arc::clone(app.log()),
        crate::signing::Cadence::of(&config.signing),
    );
    let exec_tools = config.tools;
    let config = config.serve;
    let ns = args
        .ns
        .clone()
        .or(config.namespace)
        .unwrap_or_else(default_namespace);
    let busybox = args
        .busybox
        .clone()
        .or(config.busybox)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"));
    let mut engine = Engine::connect(ns.clone()).await?;
    // New homes get disks of their own; `serve` says at start when they cannot, and why.
    let disks = roster_sandbox::disk::Disks::new(
        config.homes.clone().unwrap_or_else(|| homes_dir(data_dir)),
    );
    let no_disks = roster_sandbox::disk::Disks::usable()
        .and_then(|()| disks.check())
        .err();
    if no_disks.is_none() {
        engine = engine.with_disks(disks);
    }
    let me = lease::me(data_dir)?;
    lease::check(&engine, &me, args.take_over).await?;
    claim_namespace(data_dir, &ns, &engine, &app).await?;
    lease::claim(&engine, &me, args.take_over).await?;
    let leased = engine.clone();
    let given = args.agent_binary.clone().or(config.agent_binary);
    let agent_binary = install_agent_binary(data_dir, given.as_deref())?;
    engine
        .ensure_base_image(&busybox, &agent_binary)
        .await
        .map_err(StartError::BaseImage)?;
    let gateways = gateways_dir(data_dir);
    make_private_dir(&gateways)?;
    let bus_url = args.bus.clone().or(config.bus).unwrap_or_default();
    let bus = Bus::connect(&bus_url, &ns).await?;
    // The outbox tails the store from its checkpoint: events committed while NATS is down wait
    // in the log and go out when it is back.
    let outbox = bus
        .client
        .clone()
        .map(|client| roster_bus::Outbox::spawn(app.tail(), client, ns.clone()));
    let sup = Arc::new(supervisor::Supervisor::new(
        Arc::new(engine),
        gateways,
        agent_binary,
    ));
    let daemon = Arc::new_cyclic(|me| Daemon {
        app: RwLock::new(app),
        data_dir: data_dir.to_owned(),
        sup: sup.clone(),
        rt: tokio::runtime::Handle::current(),
        me: me.clone(),
        failed: std::sync::OnceLock::new(),
        failing: tokio::sync::Notify::new(),
        first_calls: Mutex::new(std::collections::HashMap::new()),
        context: context::Context::new(bus.ctx.clone(), bus.client.clone()),
        outbox: Mutex::new(None),
        bus: bus_url.clone(),
        tools: tools::Tools::new(exec_tools, bus.client.clone().map(|c| (c, ns.clone()))),
        sim_clock: None,
        signer: Some(signer),
    });
    *daemon.outbox.lock().unwrap_or_else(PoisonError::into_inner) = outbox;
    // Engine events are followed from before the reconcile, so no death falls in between.
    let since = crate::app::now();
    let unreconciled = !supervisor::reconcile(&daemon, &sup)
        .await
        .map_err(StartError::Reconcile)?
        .is_empty();
    let socket = crate::admin::socket::socket_path(data_dir);
    // The store's lock (sled's) already proved that no other daemon or command holds this data
    // directory, so a socket file left here is stale.
    if socket.exists() {
        std::fs::remove_file(&socket).map_err(StartError::io("remove the stale", &socket))?;
    }
    let listener = bind_owner_only(&socket)?;
    let tasks = vec![
        tokio::spawn(crate::admin::socket::serve(listener, daemon.clone())),
        tokio::spawn(supervisor::converge_loop(daemon.clone(), sup.clone())),
        tokio::spawn(supervisor::watch_engine(
            daemon.clone(),
            sup.clone(),
            since,
            unreconciled,
        )),
        tokio::spawn(signing),
        tokio::spawn(record_left_out(daemon.clone())),
        tokio::spawn({
            let d = daemon.clone();
            async move { d.fail(lease::watch(leased, me).await) }
        }),
    ];
    Ok(Running {
        daemon,
        tasks,
        socket,
        ns,
        no_disks,
        _lock: lock,
    })
}

/// The bus, connected.
struct Bus {
    ctx: roster_bus::CtxBus,
    /// The NATS connection, with a NATS bus.
    client: Option<roster_bus::Client>,
}

impl Bus {
    async fn connect(
        url: &roster_bus::BusUrl,
        ns: &roster_core::name::Name,
    ) -> Result<Bus, StartError> {
        Ok(match url {
            roster_bus::BusUrl::Memory => Bus {
                ctx: roster_bus::CtxBus::memory(),
                client: None,
            },
            roster_bus::BusUrl::Nats { .. } => {
                // Returns soon even while NATS is down: the client connects (and reconnects)
                // in the background, and the runtime works meanwhile. Refused credentials,
                // a failed TLS handshake or a too-open secret file fail the start instead.
                let client = roster_bus::connect(url).await?;
                Bus {
                    ctx: roster_bus::CtxBus::nats(client.clone(), ns.clone()),
                    client: Some(client),
                }
            }
        })
    }
}

/// Makes sure the namespace is this data directory's: a reconcile removes every container of
/// the namespace that the log does not know, so two data directories must never share one.
/// The first start records it in `DATA/namespace`; later starts must use the same.
async fn claim_namespace(
    data_dir: &Path,
    ns: &roster_core::name::Name,
    engine: &Engine,
    app: &App,
) -> Result<(), StartError> {
    let file = data_dir.join("namespace");
    match std::fs::read_to_string(&file) {
        Ok(recorded) if recorded.trim() == ns.as_str() => return Ok(()),
        Ok(recorded) => {
            return Err(StartError::OtherNamespace {
                recorded: recorded.trim().to_owned(),
                asked: ns.clone(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StartError::io("read", &file)(e)),
    }
    let count = engine
        .list()
        .await?
        .into_iter()
        .filter(|f| {
            f.agent
                .as_ref()
                .ok()
                .is_none_or(|a| app.world().agent(*a).is_none())
        })
        .count();
    if count > 0 {
        return Err(StartError::NamespaceTaken {
            ns: ns.clone(),
            count,
        });
    }
    std::fs::write(&file, format!("{ns}\n")).map_err(StartError::io("write", &file))?;
    Ok(())
}

/// The namespace when none is configured.
fn default_namespace() -> roster_core::name::Name {
    #[allow(clippy::expect_used)] // a provable invariant: the literal is a valid name
    roster_core::name::Name::parse("roster").expect("`roster` is a valid name")
}

/// Copies the static `roster-agent` into `DATA/bin` (so rebuilding it never changes what
/// running agents have mounted) after checking it is static: it runs in images with no libc.
fn install_agent_binary(data_dir: &Path, given: Option<&Path>) -> Result<PathBuf, StartError> {
    use std::os::unix::fs::PermissionsExt;
    let source = match given {
        Some(p) => p.to_owned(),
        None => find_agent_binary().ok_or(StartError::NoAgentBinary)?,
    };
    let bytes = std::fs::read(&source).map_err(StartError::io("read the agent binary", &source))?;
    if let Some(why) = roster_sandbox::not_static(&bytes) {
        return Err(StartError::AgentBinaryNotStatic { path: source, why });
    }
    let dir = data_dir.join("bin");
    make_private_dir(&dir)?;
    let target = dir.join("roster-agent");
    let tmp = dir.join("roster-agent.new");
    let installing = StartError::io("install the agent binary as", &target);
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)))
        .and_then(|()| std::fs::rename(&tmp, &target))
        .map_err(installing)?;
    Ok(target)
}

/// `roster-agent` next to this executable, or where scripts/build-agent puts it relative to a
/// cargo target directory; the first that is static.
pub fn find_agent_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let mut candidates = vec![dir.join("roster-agent")];
    // target/{debug,release}/roster → target/<host>/release/roster-agent
    if let Some(target) = dir.parent() {
        if let Ok(entries) = std::fs::read_dir(target) {
            for e in entries.flatten() {
                candidates.push(e.path().join("release/roster-agent"));
                candidates.push(e.path().join("debug/roster-agent"));
            }
        }
    }
    candidates.into_iter().find(|p| {
        std::fs::read(p)
            .ok()
            .is_some_and(|b| roster_sandbox::not_static(&b).is_none())
    })
}

/// Creates `dir` readable by its owner only (or tightens it).
fn make_private_dir(dir: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(StartError::io("create", dir))
}

/// Binds a Unix socket that only its owner can connect to (0600).
fn bind_owner_only(path: &Path) -> Result<tokio::net::UnixListener, StartError> {
    use std::os::unix::fs::PermissionsExt;
    // Bound inside a fresh 0700 directory, restricted, then moved into place: even in a data
    // directory that others can enter, nobody can connect in between.
    let parent = path.parent().unwrap_or(Path::new("."));
    let private = tempfile::Builder::new()
        .prefix(".admin-")
        .tempdir_in(parent)
        .map_err(StartError::io("create a directory in", parent))?;
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(StartError::io("restrict", private.path()))?;
    let staged = private.path().join("admin.sock");
    let listener =
        tokio::net::UnixListener::bind(&staged).map_err(StartError::io("listen on", &staged))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .map_err(StartError::io("restrict", &staged))?;
    std::fs::rename(&staged, path).map_err(StartError::io("move the admin socket to", path))?;
    Ok(listener)
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
