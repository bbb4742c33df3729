//! Tool providers: who carries out an action once the runtime has authorized and recorded it.
//!
//! For an action with a `[tools."ACTION"]` table in `roster.toml`, a program on this machine:
//! it gets the [`ToolCall`] as one JSON object on stdin and answers one JSON value on stdout (at
//! most [`MAX_ANSWER`] bytes); a non-zero exit or an answer that is not JSON is an error that
//! quotes the end of its stderr; past its timeout its whole process group is killed. Otherwise,
//! with a NATS bus, whatever answers on `NS.tool.ACTION` (`roster_bus::tool`). Otherwise there
//! is no provider, which [`Tools::check`] says before anything is decided.
//!
//! A provider gets exactly the call (the action, resource, amount and arguments the decision
//! covered, the agent, the grant chain, the approval, the `ActionPerformed` id): no other grant,
//! no secret. It runs with the daemon's environment, outside every agent's container — or,
//! for a `roster act` run while no daemon does ([`Tools::without_daemon`]), with that
//! command's, which reaches the programs only: services on NATS need `roster serve --bus`.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use roster_core::capability::Action;
use roster_core::name::Name;
use roster_core::tool::{ToolCall, MAX_ANSWER};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::config::{ExecTool, DEFAULT_TOOL_SECS};

/// How much of a failed program's stderr an error quotes, in bytes (its end).
const STDERR_TAIL: usize = 2048;

/// The tool providers of a running daemon, or of a command run without one.
#[derive(Debug)]
pub(crate) struct Tools {
    /// Programs, by action.
    exec: HashMap<Action, ExecTool>,
    /// Where services are.
    services: Services,
}

/// Where the services answering on `NS.tool.ACTION` are.
#[derive(Debug)]
enum Services {
    /// On the daemon's NATS bus, in its namespace.
    Nats(roster_bus::Client, Name),
    /// Nowhere: the daemon runs on the in-process bus.
    None,
    /// Out of reach: no daemon runs (only `roster serve --bus` talks to them).
    NoDaemon,
}

impl Tools {
    /// The providers: `exec` from `roster.toml` (checked when it was read), and NATS when the
    /// daemon has a NATS client.
    pub(crate) fn new(
        exec: HashMap<Action, ExecTool>,
        nats: Option<(roster_bus::Client, Name)>,
    ) -> Self {
        let services = match nats {
            Some((client, ns)) => Services::Nats(client, ns),
            None => Services::None,
        };
        Self { exec, services }
    }

    /// The providers a command can run while no daemon does: the programs of `roster.toml`.
    pub(crate) fn without_daemon(exec: HashMap<Action, ExecTool>) -> Self {
        Self {
            exec,
            services: Services::NoDaemon,
        }
    }

    /// Whether a provider could carry out `action` now; the sentence to answer when not.
    /// Asked before deciding, so that an action nobody can carry out is never recorded.
    pub(crate) fn check(&self, action: &Action) -> Result<(), String> {
        if self.exec.contains_key(action) {
            return Ok(());
        }
        match &self.services {
            Services::Nats(client, _) if roster_bus::is_connected(client) => Ok(()),
            Services::Nats(_, ns) => Err(format!(
                "no tool provider can be reached for {action}: the NATS bus is unreachable (its \
                 providers answer on {}); nothing was recorded, try again later",
                roster_bus::subject::tool(ns, action)
            )),
            Services::None => Err(format!(
                "no tool provider for {action}: the operator must configure one, either a \
                 program in roster.toml ([tools.\"{action}\"] exec = [...]) or a service on a \
                 NATS bus (roster serve --bus nats://…) answering on NS.tool.{action}; nothing \
                 was recorded"
            )),
            Services::NoDaemon => Err(format!(
                "no tool provider for {action} can run here: roster.toml has no program for it \
                 ([tools.\"{action}\"] exec = [...]), and a service on NATS (NS.tool.{action}) \
                 is reached only through a running `roster serve --bus nats://…` — start it, or \
                 configure a program; nothing was recorded"
            )),
        }
    }

    /// Carries out `call` with its action's provider; its answer, or why there is none.
    pub(crate) async fn call(&self, call: &ToolCall) -> Result<serde_json::Value, String> {
        if let Some(tool) = self.exec.get(&call.action) {
            let input = serde_json::to_vec(call).map_err(|e| format!("cannot encode: {e}"))?;
            return run(tool, &input).await;
        }
        match &self.services {
            Services::Nats(client, ns) => {
                let timeout = Duration::from_secs(u64::from(DEFAULT_TOOL_SECS));
                roster_bus::tool::request(client, ns, call, timeout)
                    .await
                    .map_err(|e| e.to_string())
            }
            Services::None | Services::NoDaemon => {
                Err(format!("no tool provider for {}", call.action))
            }
        }
    }
}

/// Runs `tool` with `input` on stdin; its stdout as one JSON value.
pub(crate) async fn run(tool: &ExecTool, input: &[u8]) -> Result<serde_json::Value, String> {
    let Some((program, args)) = tool.exec.split_first() else {
        return Err("its exec is empty".into());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    let group = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    let kill = move || {
        if let Some(g) = group {
            let _ = rustix::process::kill_process_group(g, rustix::process::Signal::KILL);
        }
    };
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let work = async {
        let write = async {
            if let Some(mut s) = stdin {
                // A program that does not read its input (or exits early) is its own business.
                let _ = s.write_all(input).await;
            }
        };
        let out = async {
            let out = read_capped(stdout, MAX_ANSWER).await;
            if out.is_none() {
                // Over the cap: stop it now rather than read on until the timeout.
                kill();
            }
            out
        };
        let (_, out, err) = tokio::join!(write, out, read_tail(stderr, STDERR_TAIL));
        (child.wait().await, out, err)
    };
    let timeout = tool.timeout();
    let (status, out, err) = match tokio::time::timeout(timeout, work).await {
        Ok(done) => done,
        Err(_) => {
            kill();
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(format!(
                "`{program}` did not answer within {} s and was killed",
                timeout.as_secs()
            ));
        }
    };
    let stderr = if err.is_empty() {
        String::new()
    } else {
        format!("; its stderr ends: {}", err.trim_end())
    };
    let status = status.map_err(|e| format!("cannot wait for `{program}`: {e}"))?;
    let Some(out) = out else {
        return Err(format!(
            "`{program}` wrote more than {MAX_ANSWER} bytes and was killed{stderr}"
        ));
    };
    if !status.success() {
        return Err(format!("`{program}` failed ({status}){stderr}"));
    }
    serde_json::from_slice(&out)
        .map_err(|e| format!("`{program}` did not answer one JSON value on stdout ({e}){stderr}"))
}

/// Everything `r` gives, or `None` past `cap` bytes.
async fn read_capped(r: Option<impl AsyncRead + Unpin>, cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let Some(r) = r else { return Some(out) };
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let _ = r.take(limit).read_to_end(&mut out).await;
    (out.len() <= cap).then_some(out)
}

/// The last `keep` bytes `r` gives (read to its end), as text.
async fn read_tail(r: Option<impl AsyncRead + Unpin>, keep: usize) -> String {
    let mut tail: Vec<u8> = Vec::new();
    let Some(mut r) = r else {
        return String::new();
    };
    let mut chunk = vec![0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > keep {
                    tail.drain(..tail.len() - keep);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_secs: Option<u32>) -> ExecTool {
        ExecTool {
            exec: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout_secs,
        }
    }

    #[tokio::test]
    async fn a_program_answers_one_json_value_from_its_input() {
        let echo = sh("cat", None);
        let v = run(&echo, br#"{"a":[1,2]}"#).await.unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, 2]}));
    }

    #[tokio::test]
    async fn failures_say_why_with_the_end_of_stderr() {
        let cases = [
            ("echo boom >&2; exit 3", "failed", "boom"),
            (
                "echo 'not json'; echo warned >&2",
                "did not answer one JSON",
                "warned",
            ),
            ("true", "did not answer one JSON", ""),
            ("head -c 1048577 /dev/zero", "more than 1048576 bytes", ""),
        ];
        for (script, says, quotes) in cases {
            let e = run(&sh(script, None), b"{}").await.unwrap_err();
            assert!(e.contains(says) && e.contains(quotes), "{script}: {e}");
        }
        let e = run(&sh("sleep 30 & sleep 30", Some(1)), b"{}")
            .await
            .unwrap_err();
        assert!(e.contains("within 1 s and was killed"), "{e}");
        let missing = ExecTool {
            exec: vec!["/nonexistent/provider".into()],
            timeout_secs: None,
        };
        let e = run(&missing, b"{}").await.unwrap_err();
        assert!(e.contains("cannot start `/nonexistent/provider`"), "{e}");
    }

    #[test]
    fn without_a_provider_the_check_names_both_ways() {
        let tools = Tools::new(HashMap::new(), None);
        let why = tools
            .check(&Action::parse("email.send").unwrap())
            .unwrap_err();
        assert!(
            why.contains("[tools.\"email.send\"]") && why.contains("NS.tool.email.send"),
            "{why}"
        );
        let exec = HashMap::from([(Action::parse("email.send").unwrap(), sh("cat", None))]);
        let tools = Tools::new(exec.clone(), None);
        assert!(tools.check(&Action::parse("email.send").unwrap()).is_ok());
        assert!(tools.check(&Action::parse("email.read").unwrap()).is_err());
        // Without a daemon, the programs still run; NATS needs `roster serve --bus`.
        let here = Tools::without_daemon(exec);
        assert!(here.check(&Action::parse("email.send").unwrap()).is_ok());
        let why = here
            .check(&Action::parse("email.read").unwrap())
            .unwrap_err();
        assert!(
            why.contains("roster serve --bus") && why.contains("[tools.\"email.read\"]"),
            "{why}"
        );
    }
}
