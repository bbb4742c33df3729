//! The admin socket: how every other `roster` command reaches a running `roster serve`.
//!
//! `DATA/admin.sock`, mode 0600 in a 0700 data directory: only its owner can connect, and the
//! connection is the operator's authority. The protocol is JSON lines: the client sends one
//! [`AdminRequest`] (its arguments as typed, plus what it resolved from its own environment),
//! the daemon runs the same command code a local run would, against its own store and world,
//! and streams back [`Frame`]s — output, notes, and finally the exit code.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roster_core::name::Name;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream as AsyncUnixStream};
use tokio::sync::mpsc;

use crate::out::{Remote, Stream};

/// The admin socket of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// The longest request line the daemon reads.
const MAX_REQUEST: u64 = 1024 * 1024;

/// One command, as a client asks it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdminRequest {
    /// The arguments after `roster`, as typed.
    pub argv: Vec<String>,
    /// The operator, resolved from the client's `--as`, `$ROSTER_OPERATOR` or `$USER`.
    pub operator: Name,
    /// `--json`, resolved from the client's flags and environment.
    pub json: bool,
    /// The client's working directory, for relative file arguments.
    pub cwd: PathBuf,
}

/// One piece of a command's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frame {
    /// Text for standard output.
    Out(String),
    /// Text for standard error.
    Err(String),
    /// The command ended with this exit code; nothing follows.
    Exit(u8),
}

/// Output of a command run for a client: frames on a bounded channel, so a slow client slows
/// its own command and nothing else.
#[derive(Debug)]
pub struct ChannelOut(pub mpsc::Sender<Frame>);

impl Remote for ChannelOut {
    fn send(&self, stream: Stream, text: &str) -> std::io::Result<()> {
        let frame = match stream {
            Stream::Out => Frame::Out(text.to_owned()),
            Stream::Err => Frame::Err(text.to_owned()),
        };
        self.0
            .blocking_send(frame)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    fn gone(&self) -> bool {
        self.0.is_closed()
    }
}

/// What runs one client's command on a blocking thread: it gets the request and the output,
/// and returns the exit code.
pub type Handler = Arc<dyn Fn(AdminRequest, crate::out::Out) -> u8 + Send + Sync>;

/// Accepts clients until the task is dropped.
pub async fn serve(listener: UnixListener, handler: Handler) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client(stream, handler.clone()));
            }
            Err(e) => {
                tracing::warn!("admin socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn client(stream: AsyncUnixStream, handler: Handler) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST));
    let mut line = String::new();
    let request = match reader.read_line(&mut line).await {
        Ok(_) => serde_json::from_str::<AdminRequest>(&line),
        Err(e) => {
            tracing::debug!("admin client: {e}");
            return;
        }
    };
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            let frames = [
                Frame::Err(format!("roster: not an admin request: {e}\n")),
                Frame::Exit(2),
            ];
            for f in frames {
                if write_frame(&mut write, &f).await.is_err() {
                    return;
                }
            }
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Frame>(256);
    let out = crate::out::Out::remote(request.json, Arc::new(ChannelOut(tx.clone())));
    let job = tokio::task::spawn_blocking(move || {
        let code = handler(request, out);
        // The receiver may be gone (the client left): nothing to tell then.
        let _ = tx.blocking_send(Frame::Exit(code));
    });
    let mut rest = reader.into_inner().into_inner();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(f) => {
                    let last = matches!(f, Frame::Exit(_));
                    if write_frame(&mut write, &f).await.is_err() || last {
                        break;
                    }
                }
                None => break,
            },
            // The client sends nothing after its request: a read that ends means it left.
            _ = rest.read(&mut probe) => break,
        }
    }
    // Dropping the receiver makes the command's next output fail, which ends it.
    drop(rx);
    let _ = job.await;
}

async fn write_frame(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    frame: &Frame,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(frame).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

/// Connects to the daemon of `data_dir`, if one runs.
pub fn connect(data_dir: &Path) -> Option<UnixStream> {
    UnixStream::connect(socket_path(data_dir)).ok()
}

/// Sends `request` over `stream`, prints what comes back, and returns the exit code.
pub fn forward(stream: UnixStream, request: &AdminRequest) -> std::io::Result<u8> {
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let reader = BufReader::new(&stream);
    let mut stdout = std::io::stdout().lock();
    for line in reader.lines() {
        let frame: Frame = serde_json::from_str(&line?).map_err(std::io::Error::other)?;
        match frame {
            Frame::Out(text) => {
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
            Frame::Err(text) => std::io::stderr().write_all(text.as_bytes())?,
            Frame::Exit(code) => return Ok(code),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "`roster serve` went away before the command finished",
    ))
}
