//! A blocking client of a gateway socket, for the benchmarks that speak to agents through their
//! own sockets (`share`, `scale`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use roster_core::id::AgentId;
use serde_json::Value;

use roster_runtime::daemon::Daemon;

/// How long a read waits for one answer before the bench gives up.
pub(crate) const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// One connection to a gateway socket (an agent's, seen from the host side of its bind mount, or a
/// raw baseline's), line by line.
pub(crate) struct Socket {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    line: String,
}

impl Socket {
    /// The socket `agent`'s own process uses.
    pub(crate) fn path(d: &Daemon, agent: AgentId) -> PathBuf {
        d.supervisor()
            .gateway_dir(agent)
            .join(roster_runtime::gateway::SOCKET_NAME)
    }

    /// Connects to `agent`'s socket.
    pub(crate) fn open(d: &Daemon, agent: AgentId) -> anyhow::Result<Socket> {
        Self::connect(&Self::path(d, agent))
    }

    /// Connects to the socket at `path`; a read waits at most [`ANSWER_LIMIT`].
    pub(crate) fn connect(path: &Path) -> anyhow::Result<Socket> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("cannot connect to {}", path.display()))?;
        stream.set_read_timeout(Some(ANSWER_LIMIT))?;
        Ok(Socket {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            line: String::new(),
        })
    }

    pub(crate) fn send(&mut self, request: &Value) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec(request)?;
        bytes.push(b'\n');
        self.writer.write_all(&bytes)?;
        Ok(())
    }

    /// The next line, decoded.
    pub(crate) fn line(&mut self) -> anyhow::Result<Value> {
        self.line.clear();
        if self.reader.read_line(&mut self.line)? == 0 {
            anyhow::bail!("the gateway closed the connection");
        }
        Ok(serde_json::from_str(&self.line)?)
    }

    /// The length in bytes of the last line read, newline included.
    pub(crate) fn line_len(&self) -> usize {
        self.line.len()
    }

    /// One round trip that must succeed: its answer.
    pub(crate) fn call(&mut self, request: &Value) -> anyhow::Result<Value> {
        self.send(request)?;
        let answer = self.line()?;
        if answer.get("ok").is_none() {
            anyhow::bail!("the gateway refused {request}: {answer}");
        }
        Ok(answer)
    }
}
