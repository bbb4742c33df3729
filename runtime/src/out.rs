//! Where a command's text goes: this process's standard streams, or a client of the admin
//! socket (the daemon forwards it, a frame at a time). Commands write through [`Out`] and never
//! know which.

use std::io::Write;

use serde::Serialize;

/// Which of a command's streams a piece of text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Results (standard output).
    Out,
    /// Notes and warnings (standard error).
    Err,
}

/// Where a command's text goes when it runs inside `roster serve` for a client of the admin
/// socket: the daemon forwards it to that client.
pub trait Remote: Send + Sync + std::fmt::Debug {
    /// Sends `text` on `stream`; fails once the client has gone.
    fn send(&self, stream: Stream, text: &str) -> std::io::Result<()>;
    /// True once the client has gone (a `--follow` stops then).
    fn gone(&self) -> bool;
}

/// Output mode chosen by `--json`, and where the text goes (this process's standard streams,
/// or a client of the admin socket).
#[derive(Debug, Clone)]
pub struct Out {
    /// One JSON object per line instead of text for people.
    pub json: bool,
    remote: Option<std::sync::Arc<dyn Remote>>,
}

impl Out {
    /// Output to this process's standard streams.
    pub fn local(json: bool) -> Self {
        Self { json, remote: None }
    }

    /// Output forwarded to a client of the admin socket.
    pub fn remote(json: bool, remote: std::sync::Arc<dyn Remote>) -> Self {
        Self {
            json,
            remote: Some(remote),
        }
    }

    /// Writes `text` to `stream`, flushed at once (for `--follow` readers).
    pub fn write(&self, stream: Stream, text: &str) -> std::io::Result<()> {
        match (&self.remote, stream) {
            (Some(r), _) => r.send(stream, text),
            (None, Stream::Out) => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(text.as_bytes())?;
                stdout.flush()
            }
            (None, Stream::Err) => std::io::stderr().lock().write_all(text.as_bytes()),
        }
    }

    /// True once nobody reads this output any more (a client of the admin socket left).
    pub fn gone(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| r.gone())
    }

    /// Prints one JSON object on its own line.
    pub fn json_line<T: Serialize>(&self, value: &T) -> std::io::Result<()> {
        let mut text = serde_json::to_string(value).map_err(std::io::Error::other)?;
        text.push('\n');
        self.write(Stream::Out, &text)
    }

    /// Prints a line for people.
    pub fn line(&self, text: impl AsRef<str>) -> std::io::Result<()> {
        self.write(Stream::Out, &format!("{}\n", text.as_ref()))
    }

    /// Prints a note for people on standard error (`roster: ` is prefixed).
    pub fn note(&self, text: impl AsRef<str>) -> std::io::Result<()> {
        self.write(Stream::Err, &format!("roster: {}\n", text.as_ref()))
    }

    /// A writer onto standard output, for bulk output (`export`); buffered, flush it at the end.
    pub fn writer(&self) -> std::io::BufWriter<OutWriter> {
        std::io::BufWriter::with_capacity(64 * 1024, OutWriter(self.clone()))
    }
}

/// See [`Out::writer`].
#[derive(Debug)]
pub struct OutWriter(Out);

impl Write for OutWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0.remote {
            Some(r) => {
                // Bulk output is UTF-8 text; a buffer may end inside a character, so only
                // whole characters are sent and the caller writes the rest again.
                let cut = match std::str::from_utf8(buf) {
                    Ok(_) => buf.len(),
                    Err(e) if e.error_len().is_none() && e.valid_up_to() > 0 => e.valid_up_to(),
                    Err(e) => {
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
                    }
                };
                let text = std::str::from_utf8(&buf[..cut])
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                r.send(Stream::Out, text)?;
                Ok(cut)
            }
            None => std::io::stdout().lock().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &self.0.remote {
            Some(_) => Ok(()),
            None => std::io::stdout().lock().flush(),
        }
    }
}
