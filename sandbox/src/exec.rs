//! Commands and logs of a running agent container: `roster exec` and `roster logs` for an
//! operator's debugging, and the escape suite, which runs its checks inside a real container.
//!
//! An exec runs inside the container's sandbox — its namespaces, its dropped capabilities,
//! `no-new-privileges`, its cgroup — so it can see no more than the agent can. Its output is
//! captured up to [`EXEC_CAPTURE`] bytes per stream; the rest is drained and dropped, so a noisy
//! command cannot grow the runtime's memory.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use roster_core::id::AgentId;

use bollard::container::{LogOutput, LogsOptions};
use bollard::exec::{CreateExecOptions, StartExecResults};

use crate::engine::Engine;
use crate::error::{is_not_found, status, SandboxError};

/// The most output kept of each of an exec's streams.
pub const EXEC_CAPTURE: usize = 1024 * 1024;

/// What a command run in an agent's container printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOutput {
    /// Its exit code; `None` if the engine did not report one within two seconds of its output
    /// closing.
    pub exit_code: Option<i64>,
    /// Its standard output (at most [`EXEC_CAPTURE`] bytes).
    pub stdout: Vec<u8>,
    /// Its standard error (at most [`EXEC_CAPTURE`] bytes).
    pub stderr: Vec<u8>,
    /// Whether either stream was cut at [`EXEC_CAPTURE`].
    pub truncated: bool,
}

impl ExecOutput {
    /// Standard output as text (invalid UTF-8 replaced), for messages and checks.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Which stream a piece of a container's output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A piece of a container's output, as the engine delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Which stream.
    pub stream: OutputStream,
    /// The bytes.
    pub bytes: Bytes,
}

/// Appends `data` to `buf` up to the capture limit; returns whether something was dropped.
fn capture(buf: &mut Vec<u8>, data: &[u8]) -> bool {
    let room = EXEC_CAPTURE.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..data.len().min(room)]);
    data.len() > room
}

impl Engine {
    /// Runs `cmd` in the agent's running container, as `user` (the container's user, the agent,
    /// by default), and waits for it to end.
    pub async fn exec(
        &self,
        agent: AgentId,
        cmd: Vec<String>,
        user: Option<&str>,
    ) -> Result<ExecOutput, SandboxError> {
        let name = self.container_name(agent);
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(false),
            tty: Some(false),
            privileged: Some(false),
            cmd: Some(cmd),
            user: user.map(str::to_string),
            ..Default::default()
        };
        let created = match self.docker.create_exec(&name, options).await {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => {
                return Err(SandboxError::NoContainer { container: name })
            }
            Err(e) if status(&e) == Some(409) => {
                return Err(SandboxError::NotRunning { container: name })
            }
            Err(e) => {
                return Err(SandboxError::engine(
                    format!("creating an exec in {name}"),
                    e,
                ))
            }
        };
        let doing = || format!("running an exec in {name}");
        let mut out = ExecOutput::default();
        match self.docker.start_exec(&created.id, None).await {
            Ok(StartExecResults::Attached { mut output, .. }) => {
                while let Some(item) = output.next().await {
                    let cut = match item.map_err(|e| SandboxError::engine(doing(), e))? {
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            capture(&mut out.stdout, &message)
                        }
                        LogOutput::StdErr { message } => capture(&mut out.stderr, &message),
                        LogOutput::StdIn { .. } => false,
                    };
                    out.truncated |= cut;
                }
            }
            Ok(StartExecResults::Detached) => {}
            Err(e) => return Err(SandboxError::engine(doing(), e)),
        }
        // The output can close a moment before the engine records the exit: ask until it has.
        for _ in 0..200 {
            let inspected = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(|e| SandboxError::engine(doing(), e))?;
            if inspected.running != Some(true) {
                out.exit_code = inspected.exit_code;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(out)
    }

    /// The agent container's output: the last `tail` lines (all with `None`), then, with
    /// `follow`, what it prints until it stops.
    pub fn logs(
        &self,
        agent: AgentId,
        follow: bool,
        tail: Option<u32>,
    ) -> impl Stream<Item = Result<LogChunk, SandboxError>> + Send + 'static {
        let name = self.container_name(agent);
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        self.docker
            .logs(&name, Some(options))
            .filter_map(move |item| {
                let name = name.clone();
                async move {
                    match item {
                        Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                            Some(Ok(LogChunk {
                                stream: OutputStream::Stdout,
                                bytes: message,
                            }))
                        }
                        Ok(LogOutput::StdErr { message }) => Some(Ok(LogChunk {
                            stream: OutputStream::Stderr,
                            bytes: message,
                        })),
                        Ok(LogOutput::StdIn { .. }) => None,
                        Err(e) if is_not_found(&e) => {
                            Some(Err(SandboxError::NoContainer { container: name }))
                        }
                        Err(e) => Some(Err(SandboxError::engine(
                            format!("reading the logs of {name}"),
                            e,
                        ))),
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_is_bounded() {
        let mut buf = Vec::new();
        assert!(!capture(&mut buf, &[1; 1000]));
        assert!(capture(&mut buf, &vec![2; EXEC_CAPTURE]));
        assert_eq!(buf.len(), EXEC_CAPTURE);
        assert!(capture(&mut buf, &[3]));
        assert_eq!(buf.len(), EXEC_CAPTURE);
    }
}
