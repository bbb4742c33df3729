//! How results reach people (aligned tables, relative times) and programs (`--json`: one JSON
//! object per line).

use std::io::Write;

use roster_core::time::Timestamp;
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
    pub fn json_line<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let mut text = serde_json::to_string(value)?;
        text.push('\n');
        Ok(self.write(Stream::Out, &text)?)
    }

    /// Prints a line for people.
    pub fn line(&self, text: impl AsRef<str>) -> anyhow::Result<()> {
        Ok(self.write(Stream::Out, &format!("{}\n", text.as_ref()))?)
    }

    /// Prints a note for people on standard error (`roster: ` is prefixed).
    pub fn note(&self, text: impl AsRef<str>) -> anyhow::Result<()> {
        Ok(self.write(Stream::Err, &format!("roster: {}\n", text.as_ref()))?)
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

/// A table whose columns are padded to their widest cell.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| h.to_uppercase()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// True when only the header is there.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// Renders with two spaces between columns; the last column is not padded.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; cols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    let pad = widths[i] - c.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.pop();
        out
    }
}

/// "just now", "42s ago", "3m ago", "5h ago", "2d ago", or "in 4d" for the future.
pub fn relative(t: Timestamp, now: Timestamp) -> String {
    let delta = now.as_micros().saturating_sub(t.as_micros()) / 1_000_000;
    let (future, secs) = if delta < 0 {
        (true, -delta)
    } else {
        (false, delta)
    };
    let span = match secs {
        0..=1 => return "just now".into(),
        2..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["name", "id"]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "2".into()]);
        assert_eq!(t.render(), "NAME    ID\na       1\nlonger  2");
    }

    #[test]
    fn relative_times() {
        let now = Timestamp::from_millis(10_000_000);
        assert_eq!(relative(now, now), "just now");
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 - 42_000), now),
            "42s ago"
        );
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 - 180_000), now),
            "3m ago"
        );
        assert_eq!(
            relative(Timestamp::from_millis(10_000_000 + 4 * 86_400_000), now),
            "in 4d"
        );
    }
}
