//! Calls over the gateway socket: connect, write one request line, read lines until the answer
//! to it, under a deadline; after a `subscribe`, read the pushed messages. Synchronous std only:
//! this binary must stay small and static.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use roster_core::gateway::{ErrorCode, MAX_LINE};
use serde_json::Value;

/// The id of our request. Each run makes one call on a fresh connection.
const ID: u64 = 1;

/// The longest answer read, far above the largest page of history: a runtime gone wrong cannot
/// make the agent's tool eat its memory.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Why a call did not give an `ok` value. Each has a stable code (printed as JSON on stderr)
/// and an exit code, so that an agent's program can branch on either.
#[derive(Debug)]
pub enum Failure {
    /// The command line or the parameters given are wrong (exit 2).
    Usage(String),
    /// No gateway answers at this path: the socket is missing, refused or not ours (exit 5).
    Unreachable {
        /// Where we looked.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// No answer within the deadline (exit 1).
    Timeout(Duration),
    /// The gateway answered something that is not an answer to our request (exit 1).
    Protocol(String),
    /// Reading or writing the socket failed after connecting (exit 1).
    Io(io::Error),
    /// The gateway refused, with its code and message (exit code by code).
    Gateway {
        /// The gateway's code, as it sent it (kept as text: a newer runtime may have more).
        code: String,
        /// Its sentence.
        message: String,
    },
}

impl Failure {
    /// The code printed in the JSON on stderr.
    pub fn code(&self) -> &str {
        match self {
            Failure::Usage(_) => "bad_usage",
            Failure::Unreachable { .. } => "unreachable",
            Failure::Timeout(_) => "timeout",
            Failure::Protocol(_) => "protocol",
            Failure::Io(_) => "io",
            Failure::Gateway { code, .. } => code,
        }
    }

    /// 2 bad usage or input, 3 denied, 4 rate-limited, 5 gateway unreachable, 6 an approval
    /// still pending, 7 no tool provider (nothing recorded), 8 the tool provider failed after
    /// the action was recorded, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Unreachable { .. } => 5,
            Failure::Timeout(_) | Failure::Protocol(_) | Failure::Io(_) => 1,
            Failure::Gateway { code, .. } => {
                serde_json::from_value(Value::String(code.clone())).map_or(1, ErrorCode::exit_code)
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Protocol(m) => f.write_str(m),
            Failure::Unreachable { path, error } => write!(
                f,
                "cannot reach the gateway at {}: {error} (is this running in a roster container? \
                 set ROSTER_GATEWAY or --socket)",
                path.display()
            ),
            Failure::Timeout(d) => write!(
                f,
                "no answer from the gateway within {}s (raise --timeout; 0 waits without limit)",
                d.as_secs()
            ),
            Failure::Io(e) => write!(f, "the connection to the gateway failed: {e}"),
            Failure::Gateway { message, .. } => f.write_str(message),
        }
    }
}

/// Sends `request` (an object with `method` and maybe `params`; the id is ours to add) to the
/// gateway at `path` and returns the `ok` value of its answer. `timeout` bounds the whole call;
/// `None` waits as long as it takes.
pub fn call(
    path: &Path,
    request: serde_json::Map<String, Value>,
    timeout: Option<Duration>,
) -> Result<Value, Failure> {
    Session::connect(path)?.call(request, timeout)
}

/// One connection to the gateway: a call, then (after `subscribe`) the pushed messages.
#[derive(Debug)]
pub struct Session {
    stream: UnixStream,
    pending: Vec<u8>,
    chunk: Vec<u8>,
}

impl Session {
    /// Connects to the gateway at `path`.
    pub fn connect(path: &Path) -> Result<Session, Failure> {
        let stream = UnixStream::connect(path).map_err(|error| Failure::Unreachable {
            path: path.to_owned(),
            error,
        })?;
        Ok(Session {
            stream,
            pending: Vec::new(),
            chunk: vec![0u8; 64 * 1024],
        })
    }

    /// Sends `request` and returns the `ok` value of its answer; lines before the answer that
    /// are not answers (pushes) are skipped.
    pub fn call(
        &mut self,
        mut request: serde_json::Map<String, Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, Failure> {
        request.insert("id".into(), Value::from(ID));
        let mut line = Value::Object(request).to_string().into_bytes();
        if line.len() > MAX_LINE {
            return Err(Failure::Usage(format!(
                "the request is {} bytes; the gateway takes at most {MAX_LINE}",
                line.len()
            )));
        }
        line.push(b'\n');
        let deadline = timeout.map(|t| (Instant::now() + t, t));
        self.stream
            .set_write_timeout(remaining(deadline)?)
            .map_err(Failure::Io)?;
        self.stream
            .write_all(&line)
            .map_err(|e| io_failure(e, deadline))?;
        loop {
            let line = self.line(deadline)?.ok_or_else(|| {
                Failure::Protocol("the gateway closed the connection without answering".into())
            })?;
            if let Some(result) = ours(&line)? {
                return result;
            }
        }
    }

    /// The next pushed message (the value of a `{"push":…}` line), waiting as long as it takes;
    /// `None` when the gateway closed the connection.
    pub fn next_push(&mut self) -> Result<Option<Value>, Failure> {
        loop {
            let Some(line) = self.line(None)? else {
                return Ok(None);
            };
            let value: Value = serde_json::from_slice(&line).map_err(|e| {
                Failure::Protocol(format!("the gateway sent a line that is not JSON: {e}"))
            })?;
            if let Value::Object(mut m) = value {
                if let Some(push) = m.remove("push") {
                    return Ok(Some(push));
                }
            }
        }
    }

    /// The next whole line (without its newline), or `None` at the end of the stream.
    fn line(&mut self, deadline: Option<(Instant, Duration)>) -> Result<Option<Vec<u8>>, Failure> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.pending.len() > MAX_ANSWER {
                return Err(Failure::Protocol(format!(
                    "the gateway sent a line over {MAX_ANSWER} bytes"
                )));
            }
            self.stream
                .set_read_timeout(remaining(deadline)?)
                .map_err(Failure::Io)?;
            let n = self
                .stream
                .read(&mut self.chunk)
                .map_err(|e| io_failure(e, deadline))?;
            if n == 0 {
                return Ok(None);
            }
            self.pending.extend_from_slice(&self.chunk[..n]);
        }
    }
}

fn io_failure(e: io::Error, deadline: Option<(Instant, Duration)>) -> Failure {
    match (e.kind(), deadline) {
        (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some((_, t))) => Failure::Timeout(t),
        _ => Failure::Io(e),
    }
}

/// Time left before the deadline, as a socket timeout; an expired deadline is a timeout.
fn remaining(deadline: Option<(Instant, Duration)>) -> Result<Option<Duration>, Failure> {
    match deadline {
        None => Ok(None),
        Some((at, total)) => match at.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(Some(left)),
            _ => Err(Failure::Timeout(total)),
        },
    }
}

/// The result carried by `line` if it answers our request, `None` if it is some other line.
/// An error with no id answers us too: the gateway could not read our id (or refused the
/// connection), and we sent nothing else.
fn ours(line: &[u8]) -> Result<Option<Result<Value, Failure>>, Failure> {
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| Failure::Protocol(format!("the gateway sent a line that is not JSON: {e}")))?;
    let Value::Object(mut answer) = value else {
        return Err(Failure::Protocol(
            "the gateway sent a line that is not an object".into(),
        ));
    };
    let id = answer.get("id").cloned().unwrap_or(Value::Null);
    if let Some(ok) = answer.remove("ok") {
        return Ok((id == ID).then_some(Ok(ok)));
    }
    let Some(error) = answer.remove("error") else {
        return Ok(None);
    };
    if id != ID && !id.is_null() {
        return Ok(None);
    }
    let text = |k: &str| error.get(k).and_then(Value::as_str).map(str::to_owned);
    match (text("code"), text("message")) {
        (Some(code), Some(message)) => Ok(Some(Err(Failure::Gateway { code, message }))),
        _ => Err(Failure::Protocol(format!(
            "the gateway sent an error without a code and a message: {error}"
        ))),
    }
}
