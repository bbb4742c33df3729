//! The second half of `roster demo`: the same data directory under `roster serve`, with every
//! agent in its own hardened container, talking to the runtime through its socket only.
//!
//! The daemon runs in a namespace of its own (`demo-PID`); whatever happens, its containers and
//! volumes are removed when the tour ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use roster_core::name::Name;
use roster_sandbox::plan::labels;
use roster_sandbox::sweep::Sweep;

use super::{Expect, Tour};

/// The daemon of the tour; stopped, and its namespace emptied, on drop.
struct Serve {
    child: Child,
    ns: Name,
    /// Removes every container and home of the tour's namespace when dropped (after `child`
    /// is stopped: fields drop after `Drop::drop`). Containers outlive a stopped daemon on
    /// purpose; the tour's must not outlive the tour.
    _sweep: Sweep,
}

impl Serve {
    fn start(data_dir: &Path, bus: &roster_bus::BusUrl) -> anyhow::Result<Self> {
        let agent_binary = agent_binary()?;
        let ns = Name::parse(&format!("demo-{}", std::process::id()))?;
        let exe = std::env::current_exe().context("cannot find the roster binary itself")?;
        let child = Command::new(exe)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--ns", ns.as_str(), "--bus", &bus.to_string()])
            .arg("--agent-binary")
            .arg(&agent_binary)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start roster serve")?;
        let sweep = Sweep::new(format!("{}={ns}", labels::NS));
        let mut serve = Serve {
            child,
            ns,
            _sweep: sweep,
        };
        let socket = data_dir.join("admin.sock");
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = serve.child.try_wait()? {
                bail!("roster serve exited ({status}); run it by hand to see why");
            }
            if Instant::now() > deadline {
                bail!("roster serve did not open its admin socket within 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(serve)
    }

    /// SIGTERM, as an operator would stop it.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The static `roster-agent`: `$ROSTER_AGENT_BINARY` (scripts/demo sets it), or one found next
/// to this executable.
fn agent_binary() -> anyhow::Result<PathBuf> {
    std::env::var_os("ROSTER_AGENT_BINARY")
        .map(PathBuf::from)
        .or_else(crate::daemon::find_agent_binary)
        .context("no static roster-agent: run scripts/demo, or build it with scripts/build-agent and set ROSTER_AGENT_BINARY")
}

/// Waits until every agent that should run has a running container.
fn wait_running(t: &mut Tour<'_>, names: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = t.look_up(&["--json", "agents"])?;
        let up = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|a| a["container"].as_str().is_some_and(|c| c.starts_with("up")))
            .filter_map(|a| a["name"].as_str().map(str::to_owned))
            .collect::<Vec<_>>();
        if names.iter().all(|n| up.iter().any(|u| u == n)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the agents' containers did not start within a minute: {text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Context between agents: free inside a team, across teams only through a share both opened.
fn share_context(t: &mut Tour<'_>) -> anyhow::Result<()> {
    let share = |team: Option<&str>, text: &str| {
        let mut args = vec![
            "exec",
            "research/scout",
            "--",
            "roster-agent",
            "share",
            "findings/daily",
        ];
        args.push(text);
        args.extend(team.map(|t| ["--team", t]).into_iter().flatten());
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |t: &mut Tour<'_>, what: &str, args: &[String], expect: Expect| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        t.run(what, &args, expect)
    };
    run(
        t,
        "Inside its team, the scout shares a finding freely (team members who listen get it).",
        &share(None, "alice prefers mornings"),
        Expect::Ok,
    )?;
    run(
        t,
        "Across teams nothing flows by default: the same finding for product is refused (exit 3) and recorded.",
        &share(Some("product"), "alice prefers mornings"),
        Expect::Refused,
    )?;
    t.run(
        "Research offers product its findings…",
        &[
            "share",
            "propose",
            "--from",
            "research",
            "--to",
            "product",
            "--topics",
            "findings/**",
        ],
        Expect::Ok,
    )?;
    let listed = t.look_up(&["--json", "shares"])?;
    let id = listed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|s| s["id"].as_str().map(str::to_owned))
        .context("the proposed share is not listed")?;
    t.run(
        "…and product accepts: both teams have now opened the share.",
        &["share", "accept", &id],
        Expect::Ok,
    )?;
    // Product's lead listens inside its container; it subscribes as it starts, so the scout
    // waits a moment, and says it again if it was not heard.
    let exe = std::env::current_exe().context("cannot find the roster binary itself")?;
    let mut listener = Command::new(exe)
        .arg("--data-dir")
        .arg(t.data_dir)
        .args([
            "exec",
            "product/lead",
            "--",
            "roster-agent",
            "listen",
            "findings/**",
            "--count",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the listener")?;
    std::thread::sleep(Duration::from_secs(1));
    let mut said = 0;
    let heard = loop {
        said += 1;
        let what = if said == 1 {
            "The scout shares the finding with its team again: now it is also forwarded through the share, and product's lead, listening in its container, receives it."
        } else {
            "(not heard yet: the scout says it again)"
        };
        run(t, what, &share(None, "alice prefers mornings"), Expect::Ok)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && listener.try_wait()?.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if listener.try_wait()?.is_some() {
            break listener.wait_with_output()?;
        }
        if said == 3 {
            let _ = listener.kill();
            bail!("product's lead heard nothing from three crossings");
        }
    };
    if !heard.status.success() {
        bail!(
            "the listener failed: {}",
            String::from_utf8_lossy(&heard.stderr)
        );
    }
    if !t.out.json {
        for l in String::from_utf8_lossy(&heard.stdout).lines() {
            println!("     product/lead heard: {l}");
        }
    }
    t.run(
        "The crossing is recorded (its digest and size, never its text); the share counts it.",
        &["shares"],
        Expect::Ok,
    )?;
    t.run(
        "An operator closes the share (either side may)…",
        &["share", "close", &id],
        Expect::Ok,
    )?;
    run(
        t,
        "…and the very next message is refused.",
        &share(Some("product"), "one more thing"),
        Expect::Refused,
    )?;
    Ok(())
}

pub(super) fn tour(t: &mut Tour<'_>, bus: &roster_bus::BusUrl) -> anyhow::Result<()> {
    println!("\n— The sandbox: the same log, now run by `roster serve` —");
    let mut serve = Serve::start(t.data_dir, bus)?;
    println!(
        "\n   $ roster serve --ns {} --bus {bus} &    (the daemon: it owns the store, the containers and their sockets)",
        serve.ns
    );
    wait_running(t, &["lead", "scout"])?;
    t.run(
        "Every agent the log wants running now has a hardened container of its own (no network, read-only root, no capabilities, not root).",
        &["agents"],
        Expect::Ok,
    )?;
    t.run(
        "Inside its container, the scout asks the runtime who it is — through its own socket; it holds no token or key.",
        &["exec", "research/scout", "--", "roster-agent", "whoami"],
        Expect::Ok,
    )?;
    t.run(
        "It tries to hire a helper with more than it holds: refused (exit 3) and recorded.",
        &[
            "exec",
            "research/scout",
            "--",
            "roster-agent",
            "call",
            "hire",
            r#"{"name":"helper","grants":["email.*@**"]}"#,
        ],
        Expect::Refused,
    )?;
    t.run(
        "It tries to reach the cloud metadata service: there is no network at all.",
        &[
            "exec",
            "research/scout",
            "--",
            "nc",
            "-w",
            "2",
            "169.254.169.254",
            "80",
        ],
        Expect::Refused,
    )?;
    t.run(
        "It writes a note in its home, its persistent memory…",
        &[
            "exec",
            "research/scout",
            "--",
            "sh",
            "-c",
            "echo 'alice prefers mornings' > /home/agent/notes",
        ],
        Expect::Ok,
    )?;
    t.run(
        "…is stopped (SIGTERM, grace, SIGKILL) and started again in a new container…",
        &["stop", "research/scout"],
        Expect::Ok,
    )?;
    t.run("", &["start", "research/scout"], Expect::Ok)?;
    t.run(
        "…and the note is still there.",
        &["exec", "research/scout", "--", "cat", "/home/agent/notes"],
        Expect::Ok,
    )?;
    share_context(t)?;
    t.run(
        "The escape suite, from inside a real agent container: every check must hold.",
        &["sandbox", "verify"],
        Expect::Ok,
    )?;
    t.run(
        "Retiring the scout removes its container (its home is kept until a purge).",
        &["retire", "research/scout"],
        Expect::Ok,
    )?;
    t.run("", &["purge", "research/scout"], Expect::Ok)?;
    t.run(
        "The log recorded every start and stop, by whom and why.",
        &["log", "--from", "20"],
        Expect::Ok,
    )?;
    if !bus.is_memory() {
        let url = bus.to_string();
        t.run(
            "Every event also went to NATS: an outside subscriber reads research's uses of its grants back from JetStream.",
            &[
                "subscribe", "--bus", &url, "--ns", serve.ns.as_str(), "--team", "research",
                "--type", "ActionPerformed", "--count", "2",
            ],
            Expect::Ok,
        )?;
    }
    serve.stop();
    if !bus.is_memory() {
        // The tour's namespace is its own: its stream goes with its containers.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = roster_bus::connect_now(bus, Duration::from_secs(5)).await?;
            roster_bus::delete_events_stream(&client, &serve.ns).await
        })?;
    }
    println!("\n   (roster serve stopped; the tour's containers are removed)");
    Ok(())
}
