//! The admin socket: how every other `roster` command reaches a running `roster serve`.
//!
//! `DATA/admin.sock`, mode 0600 in a 0700 data directory: only its owner can connect, and the
//! connection is the operator's authority. The protocol is JSON lines. The client sends one
//! [`Call`] — a typed [`Request`], the operator's name and its working directory — and the
//! daemon parses it (every field into its validated type, or the call is refused with exit code
//! 2 and nothing runs), carries it out with [`super::run`] against its own ledger, and streams
//! back [`Frame`]s: the operation's [`Item`]s as they are made, then [`Frame::End`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use roster_core::name::Name;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream as AsyncUnixStream};
use tokio::sync::mpsc;

use super::{Ctx, Item, Reply, Request, Sink};
use crate::daemon::Daemon;

/// The admin socket of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.sock")
}

/// The longest call line the daemon reads.
const MAX_CALL: u64 = 1024 * 1024;

/// One operation, as a client asks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Call {
    /// What to do.
    pub request: Request,
    /// The operator, resolved from the client's `--as`, `$ROSTER_OPERATOR` or `$USER`.
    pub operator: Name,
    /// The client's working directory, for relative file arguments.
    pub cwd: PathBuf,
}

/// One piece of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// An item of the operation's answer (boxed: most frames are small, some items are not).
    Item(Box<Item>),
    /// The operation ended: its exit code, and what went wrong in words (if anything is left
    /// to say). Nothing follows.
    End {
        /// The exit code.
        exit: u8,
        /// The failure, for people.
        error: Option<String>,
    },
}

/// Items sent to a client of the admin socket: frames on a bounded channel, so a slow client
/// slows its own operation and nothing else.
#[derive(Debug)]
struct ChannelSink(mpsc::Sender<Frame>);

impl Sink for ChannelSink {
    fn send(&self, item: Item) -> std::io::Result<()> {
        self.0
            .blocking_send(Frame::Item(Box::new(item)))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    fn gone(&self) -> bool {
        self.0.is_closed()
    }
}

/// Accepts clients until the task is dropped; each runs its operation on a blocking thread.
pub async fn serve(listener: UnixListener, daemon: Arc<Daemon>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client(stream, Arc::clone(&daemon)));
            }
            Err(e) => {
                tracing::warn!("admin socket: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn client(stream: AsyncUnixStream, daemon: Arc<Daemon>) {
    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_CALL));
    let mut line = String::new();
    if let Err(e) = reader.read_line(&mut line).await {
        tracing::debug!("admin client: {e}");
        return;
    }
    let call = match serde_json::from_str::<Call>(&line) {
        Ok(c) => c,
        Err(e) => {
            let end = Frame::End {
                exit: 2,
                error: Some(format!("not an admin call: {e}")),
            };
            // The client may be gone; there is nothing else to tell it.
            let _ = write_frame(&mut write, &end).await;
            return;
        }
    };
    let (tx, mut rx) = mpsc::channel::<Frame>(256);
    let reply = Reply::new(Arc::new(ChannelSink(tx.clone())));
    let job = tokio::task::spawn_blocking(move || {
        let ctx = Ctx {
            data_dir: daemon.data_dir(),
            operator: call.operator,
            cwd: call.cwd,
            daemon: Some(&daemon),
            reply,
        };
        let end = match super::run(call.request, &ctx) {
            Ok(()) => Frame::End {
                exit: 0,
                error: None,
            },
            Err(e) => Frame::End {
                exit: e.exit_code(),
                error: e.message(),
            },
        };
        // The receiver may be gone (the client left): nothing to tell then.
        let _ = tx.blocking_send(end);
    });
    let mut rest = reader.into_inner().into_inner();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            frame = rx.recv() => match frame {
                Some(f) => {
                    let last = matches!(f, Frame::End { .. });
                    if write_frame(&mut write, &f).await.is_err() || last {
                        break;
                    }
                }
                None => break,
            },
            // The client sends nothing after its call: a read that ends means it left.
            _ = rest.read(&mut probe) => break,
        }
    }
    // Dropping the receiver makes the operation's next item fail, which ends it.
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

/// How a forwarded operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The exit code.
    pub exit: u8,
    /// The failure, for people.
    pub error: Option<String>,
}

/// Sends `call` over `stream`, hands each item that comes back to `item`, and returns how the
/// operation ended.
pub fn forward(
    stream: UnixStream,
    call: &Call,
    mut item: impl FnMut(Item) -> std::io::Result<()>,
) -> std::io::Result<Ended> {
    let mut line = serde_json::to_vec(call).map_err(std::io::Error::other)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let reader = BufReader::new(&stream);
    for line in reader.lines() {
        let frame: Frame = serde_json::from_str(&line?).map_err(std::io::Error::other)?;
        match frame {
            Frame::Item(i) => item(*i)?,
            Frame::End { exit, error } => return Ok(Ended { exit, error }),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "`roster serve` went away before the command finished",
    ))
}
