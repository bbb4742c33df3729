//! `roster demo`: a day in the life of two teams of agents, and the night after, in a temporary
//! data directory with the real sandbox and the embedded bus (or NATS).
//!
//! The story is in `story.rs`; this module is how it runs. Every step runs this very binary as a
//! child process with real arguments (`roster exec AGENT -- …` for what an agent does inside its
//! container), checks that it worked or was refused as the story says, and prints one line a
//! person understands. `--verbose` also shows each command and what it answered. The demo fails
//! loudly, naming the step, the moment the product stops behaving as shown.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

mod serve;
mod story;

/// How the tour runs `roster` and prints its steps.
struct Tour {
    data_dir: PathBuf,
    verbose: bool,
    step: usize,
    started: Instant,
    /// The commands run (and their output) since the last printed step, for `--verbose`.
    transcript: Vec<String>,
}

impl Tour {
    fn new(data_dir: PathBuf, verbose: bool) -> Self {
        Self {
            data_dir,
            verbose,
            step: 0,
            started: Instant::now(),
            transcript: Vec::new(),
        }
    }

    /// Prints the next step: one line, then (with `--verbose`) the commands behind it.
    fn say(&mut self, line: impl std::fmt::Display) {
        self.step += 1;
        println!("{:>3}  {line}", self.step);
        for l in self.transcript.drain(..) {
            if self.verbose {
                println!("       {l}");
            }
        }
    }

    /// A note under the current step (progress, or what an agent saw).
    fn note(&self, line: impl std::fmt::Display) {
        println!("       {line}");
    }

    /// `roster ARGS` as a command line for this data directory.
    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let exe = std::env::current_exe().context("cannot find the roster binary itself")?;
        let mut c = Command::new(exe);
        c.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--as")
            .arg("ada")
            .args(args)
            .env_remove("ROSTER_JSON")
            .stdin(Stdio::null());
        Ok(c)
    }

    /// Runs `roster ARGS` to the end; its output, written down for `--verbose`.
    fn roster(&mut self, args: &[&str]) -> anyhow::Result<Output> {
        let output = self.command(args)?.output().context("cannot run roster")?;
        self.transcript.push(command_line(args));
        self.write_down(&output);
        Ok(output)
    }

    /// Writes down what a command printed, for `--verbose`.
    fn write_down(&mut self, output: &Output) {
        let text = [&output.stdout, &output.stderr]
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .join("");
        self.transcript
            .extend(text.lines().map(|l| format!("  {l}")));
    }

    /// Runs `roster ARGS`, which must succeed; its stdout.
    fn ok(&mut self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.roster(args)?;
        if !out.status.success() {
            bail!(
                "step {}: `roster {}` failed but should have worked: {}",
                self.step + 1,
                args.join(" "),
                reason(&out)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `roster ARGS`, which must be refused; the reason it gave.
    fn refused(&mut self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.roster(args)?;
        if out.status.success() {
            bail!(
                "step {}: `roster {}` worked but should have been refused",
                self.step + 1,
                args.join(" ")
            );
        }
        Ok(reason(&out))
    }

    /// What `agent` runs inside its container: `roster exec AGENT -- sh -c SCRIPT`.
    fn agent_args<'a>(agent: &'a str, script: &'a str) -> [&'a str; 6] {
        ["exec", agent, "--", "sh", "-c", script]
    }

    /// `agent` runs the shell script `script` in its container, which must succeed; its stdout.
    fn agent_ok(&mut self, agent: &str, script: &str) -> anyhow::Result<String> {
        self.ok(&Self::agent_args(agent, script))
    }

    /// `agent` runs `script` in its container, which must be refused; the reason.
    fn agent_refused(&mut self, agent: &str, script: &str) -> anyhow::Result<String> {
        self.refused(&Self::agent_args(agent, script))
    }

    /// Starts `agent` running `script` in its container, without waiting for it.
    fn agent_spawn(&mut self, agent: &str, script: &str) -> anyhow::Result<Child> {
        let args = Self::agent_args(agent, script);
        self.transcript.push(format!("{} &", command_line(&args)));
        self.command(&args)?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run roster exec")
    }

    /// Waits for a child started by [`Tour::agent_spawn`], at most `limit`; its output, which
    /// must be a success.
    fn finish(&mut self, mut child: Child, limit: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "step {}: an agent's command did not finish within {limit:?}",
                    self.step + 1
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output()?;
        self.transcript
            .push("(the command in the background finished)".into());
        self.write_down(&out);
        if !out.status.success() {
            bail!(
                "step {}: an agent's command failed: {}",
                self.step + 1,
                reason(&out)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `roster --json ARGS`, one JSON value per line (behind the scenes).
    fn json_lines(&mut self, args: &[&str]) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.command(&all)?.output().context("cannot run roster")?;
        if !out.status.success() {
            bail!("`roster {}` failed: {}", all.join(" "), reason(&out));
        }
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).context("roster printed something that is not JSON"))
            .collect()
    }

    /// Waits until each of `agents` (`team/name`) has a running container; how long it took.
    /// Says what it waits for when that takes more than a moment.
    fn wait_running(&mut self, agents: &[&str]) -> anyhow::Result<Duration> {
        let since = Instant::now();
        let deadline = since + Duration::from_secs(90);
        let mut told = Duration::ZERO;
        loop {
            let up = self
                .json_lines(&["agents"])?
                .into_iter()
                .filter(|a| a["container"].as_str().is_some_and(|c| c.starts_with("up")))
                .filter_map(|a| Some(format!("{}/{}", a["team"].as_str()?, a["name"].as_str()?)))
                .collect::<Vec<_>>();
            let waiting = agents
                .iter()
                .filter(|a| !up.iter().any(|u| u == *a))
                .copied()
                .collect::<Vec<_>>();
            if waiting.is_empty() {
                return Ok(since.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "the containers of {} did not start within 90 s",
                    waiting.join(", ")
                );
            }
            if since.elapsed() >= told + Duration::from_secs(2) {
                told = since.elapsed();
                self.note(format_args!(
                    "… waiting for the container of {} ({} s)",
                    waiting.join(", "),
                    told.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What a refused command said: the `message` of a JSON error, else its first line of text.
fn reason(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let text = if err.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        err
    };
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| line.trim_start_matches("error: ").to_owned())
}

/// `$ roster ARGS`, quoted for a shell.
fn command_line(args: &[&str]) -> String {
    format!(
        "$ roster {}",
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    )
}

fn quote(a: &str) -> String {
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=,*".contains(c))
    {
        a.to_string()
    } else if a.contains('\'') {
        format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("'{a}'")
    }
}

/// The first string value of `key` anywhere in `text`'s JSON (one value, or one per line).
fn json_field(text: &str, key: &str) -> anyhow::Result<String> {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let Some(found) = find(&v, key) {
            return Ok(found);
        }
    }
    bail!("no `{key}` in {text}")
}

fn find(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_str().map(str::to_owned))
            .or_else(|| m.values().find_map(|x| find(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// Runs the demo: `verbose` also shows every command and its output.
pub fn run(bus: roster_bus::BusUrl, verbose: bool) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("roster-demo-").tempdir()?;
    let mut t = Tour::new(tmp.path().join("data"), verbose);
    story::tell(&mut t, tmp.path(), &bus)?;
    println!(
        "\nroster demo: all {} steps behaved as the story says ({:.1} s).",
        t.step,
        t.started.elapsed().as_secs_f64()
    );
    Ok(())
}
