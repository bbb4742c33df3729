//! The demo's runtime: `roster serve` as a child process in a namespace of its own (`demo-PID`).
//! Whatever happens, the namespace's containers and home volumes are removed when the demo ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use roster_core::name::Name;
use roster_sandbox::plan::labels;
use roster_sandbox::sweep::Sweep;

/// The demo's daemon; stopped, and its namespace emptied, on drop.
pub(super) struct Serve {
    child: Option<Child>,
    data_dir: PathBuf,
    bus: roster_bus::BusUrl,
    agent_binary: PathBuf,
    pub(super) ns: Name,
    /// Removes every container and home of the namespace when dropped (after the daemon is
    /// stopped: fields drop after `Drop::drop`). Containers outlive a stopped daemon on purpose;
    /// the demo's must not outlive the demo.
    _sweep: Sweep,
}

impl Serve {
    /// Starts `roster serve` on `data_dir` and waits for its admin socket.
    pub(super) fn start(data_dir: &Path, bus: &roster_bus::BusUrl) -> anyhow::Result<Self> {
        let ns = Name::parse(&format!("demo-{}", std::process::id()))?;
        let mut sweep = Sweep::new(format!("{}={ns}", labels::NS));
        // The agents' home disks, detached once deleted.
        sweep.dir(data_dir.join("homes"));
        let mut serve = Serve {
            child: None,
            data_dir: data_dir.to_owned(),
            bus: bus.clone(),
            agent_binary: agent_binary()?,
            _sweep: sweep,
            ns,
        };
        serve.restart()?;
        Ok(serve)
    }

    /// Starts the daemon again (after [`Serve::kill`]).
    pub(super) fn restart(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("cannot find the roster binary itself")?;
        let child = Command::new(exe)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args([
                "serve",
                "--ns",
                self.ns.as_str(),
                "--bus",
                &self.bus.to_string(),
            ])
            .arg("--agent-binary")
            .arg(&self.agent_binary)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start roster serve")?;
        let child = self.child.insert(child);
        let socket = self.data_dir.join("admin.sock");
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("roster serve exited ({status}); run it by hand to see why");
            }
            if Instant::now() > deadline {
                bail!("roster serve did not open its admin socket within 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The night: the daemon is killed (SIGKILL, no goodbye) and every container of the
    /// namespace removed, as after a power cut. The data directory and the home volumes stay.
    pub(super) fn power_cut(&mut self) -> anyhow::Result<usize> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("cannot kill roster serve")?;
            child.wait()?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let engine = roster_sandbox::Engine::connect(self.ns.clone()).await?;
            let found = engine.list().await?;
            for c in &found {
                engine.remove_container(&c.name).await?;
            }
            Ok::<_, anyhow::Error>(found.len())
        })
    }

    /// SIGTERM, as an operator would stop it.
    pub(super) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// With NATS: removes the demo's event stream (its namespace is its own).
    pub(super) fn remove_stream(&self) -> anyhow::Result<()> {
        if self.bus.is_memory() {
            return Ok(());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = roster_bus::connect_now(&self.bus, Duration::from_secs(5)).await?;
            roster_bus::delete_events_stream(&client, &self.ns).await
        })?;
        Ok(())
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
        .or_else(roster_runtime::daemon::find_agent_binary)
        .context("no static roster-agent: run scripts/demo, or build it with scripts/build-agent and set ROSTER_AGENT_BINARY")
}
