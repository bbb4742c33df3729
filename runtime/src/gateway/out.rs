//! The writing side of a connection: every line its agent receives goes through one bounded
//! queue to one writer task, charged in bytes to the connection's budget and to its agent's.
//!
//! A line is charged when it is queued (or, for an answer, reserved before it is made: see
//! `conn`) and given back once written. A sender that finds no room waits, so a peer that does
//! not read makes its connection stop asking for work instead of making the daemon hold more;
//! nothing is dropped. The writer gives up on a peer that takes nothing for the write timeout,
//! and what was queued for it is freed with the queue.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roster_core::gateway::{encode_response, RequestId};
use roster_core::id::AgentId;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Reply;

/// Short lines queued together are written together, up to this many bytes.
const BATCH: usize = 64 * 1024;

/// How many lines may wait for the socket, whatever their size (the budgets bound their
/// bytes); past that, the reader and every subscription wait too (backpressure, not memory).
const OUT_QUEUE: usize = 64;

/// Bytes that may wait for a peer: a semaphore of one permit a byte, taken by each line queued
/// and given back once the line is written (or dropped with its connection).
#[derive(Debug, Clone)]
pub(super) struct Budget {
    bytes: Arc<Semaphore>,
    /// The permits there are: a longer line is charged this much, so that it waits for the
    /// whole budget instead of forever.
    total: u32,
}

impl Budget {
    /// A budget of `bytes` (at least 1; at most what a semaphore holds).
    pub(super) fn new(bytes: usize) -> Self {
        let total = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        Self {
            bytes: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// What `len` bytes cost: themselves, or the whole budget for a line longer than it.
    fn cost(&self, len: usize) -> usize {
        len.min(self.total as usize)
    }

    /// Waits until `len` bytes (at most the whole budget) are free, and takes them until the
    /// permit is dropped.
    async fn charge(&self, len: usize) -> Result<OwnedSemaphorePermit, Gone> {
        let n = u32::try_from(len).unwrap_or(u32::MAX).min(self.total);
        Arc::clone(&self.bytes)
            .acquire_many_owned(n)
            .await
            .map_err(|_| Gone)
    }
}

/// Bytes taken from a connection's budget and its agent's; given back when dropped.
#[derive(Debug)]
pub(super) struct Charge([OwnedSemaphorePermit; 2]);

/// One line waiting for the socket, newline included, and what it holds of the budgets.
#[derive(Debug)]
struct Queued {
    line: Vec<u8>,
    charged: [OwnedSemaphorePermit; 2],
}

/// The writing side of a connection: every line the agent receives — responses in request
/// order, and pushed messages between them — goes through one bounded queue to one writer task.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    out: tokio::sync::mpsc::Sender<Queued>,
    /// The connection's own budget, then its agent's.
    budgets: [Budget; 2],
}

impl Conn {
    /// Starts the writer task for `out`; it ends when every sender is gone, a write fails, or
    /// the peer has read nothing for `stall`. Lines queued while a write was under way go out
    /// together in the next one: an agent with many requests in flight is woken once for many
    /// answers, not once for each.
    pub(super) fn start(
        mut out: OwnedWriteHalf,
        agent: AgentId,
        budgets: [Budget; 2],
        stall: Duration,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Queued>(OUT_QUEUE);
        let writer = tokio::spawn(async move {
            let mut batch = Vec::new();
            // What the lines being written hold of the budgets: given back once written.
            let mut charged = Vec::new();
            while let Some(Queued {
                line,
                charged: first,
            }) = rx.recv().await
            {
                charged.push(first);
                // A long line is written as it is; short ones are gathered into one write.
                // Either way no line is held twice while the peer makes us wait.
                let long;
                let bytes: &[u8] = if line.len() >= BATCH {
                    long = line;
                    &long
                } else {
                    if batch.capacity() > BATCH {
                        batch = Vec::new();
                    }
                    batch.clear();
                    batch.extend_from_slice(&line);
                    drop(line);
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(next) => {
                                batch.extend_from_slice(&next.line);
                                charged.push(next.charged);
                            }
                            Err(_) => break,
                        }
                    }
                    &batch
                };
                match write_all_within(&mut out, bytes, stall).await {
                    Ok(()) => charged.clear(),
                    Err(Stalled::Gone) => return,
                    Err(Stalled::Stalled) => {
                        tracing::info!(
                            %agent,
                            "closing a gateway connection whose peer read nothing for {stall:?}"
                        );
                        return;
                    }
                }
            }
        });
        (Self { out: tx, budgets }, writer)
    }

    /// Queues one response line. Waits while the agent does not read (backpressure); an error
    /// means the connection is gone.
    pub(super) async fn send(&self, id: Option<RequestId>, result: &Reply) -> Result<(), Gone> {
        self.send_line(encode_line(id, result)).await
    }

    /// Queues one line already encoded (by [`encode_line`]), once the connection's budget and
    /// its agent's have room for it: while they have not, the caller waits (the peer is not
    /// reading).
    async fn send_line(&self, line: Vec<u8>) -> Result<(), Gone> {
        let charged = self.reserve(line.len()).await?;
        self.queue(line, charged).await
    }

    /// Takes `len` bytes of the connection's budget, then of its agent's, waiting for room;
    /// held until the returned [`Charge`] is dropped. Fails once the writer has stopped.
    pub(super) async fn reserve(&self, len: usize) -> Result<Charge, Gone> {
        let take = async {
            let own = self.budgets[0].charge(len).await?;
            let agent = self.budgets[1].charge(len).await?;
            Ok([own, agent])
        };
        tokio::select! {
            charged = take => charged.map(Charge),
            // The writer gave up on the peer: nothing queued will be written.
            () = self.out.closed() => Err(Gone),
        }
    }

    /// Queues `line` with the room reserved for it: the excess is given back, or, when the
    /// line is larger, the whole of it is taken again. Never waits for more while holding
    /// some, so two connections of an agent cannot each hold what the other waits for.
    pub(super) async fn send_reserved(&self, line: Vec<u8>, mut room: Charge) -> Result<(), Gone> {
        let cost = self.budgets.each_ref().map(|b| b.cost(line.len()));
        let held = room.0.each_ref().map(OwnedSemaphorePermit::num_permits);
        if held.iter().zip(&cost).all(|(held, cost)| held >= cost) {
            for ((permit, held), cost) in room.0.iter_mut().zip(held).zip(cost) {
                drop(permit.split(held - cost));
            }
        } else {
            drop(room);
            room = self.reserve(line.len()).await?;
        }
        self.queue(line, room).await
    }

    /// Hands `line` to the writer with what it holds of the budgets.
    async fn queue(&self, line: Vec<u8>, charged: Charge) -> Result<(), Gone> {
        self.out
            .send(Queued {
                line,
                charged: charged.0,
            })
            .await
            .map_err(|_| Gone)
    }

    /// Queues one pushed line (`{"push":…}`), encoded here: what waits for the peer is charged
    /// by its bytes. One that cannot be encoded is left out.
    pub(super) async fn push(&self, push: Arc<serde_json::Value>) -> Result<(), Gone> {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            push: &'a serde_json::Value,
        }
        let Ok(mut line) = serde_json::to_vec(&Line { push: &push }) else {
            return Ok(());
        };
        drop(push);
        line.push(b'\n');
        self.send_line(line).await
    }

    /// Resolves once the writer has stopped (the peer hung up, or read nothing for too long).
    pub(super) async fn closed(&self) {
        self.out.closed().await;
    }
}

/// Why a write did not finish.
#[derive(Debug)]
enum Stalled {
    /// The connection failed (the peer hung up).
    Gone,
    /// The peer read nothing for the whole time allowed.
    Stalled,
}

/// Writes all of `bytes`, giving up when the peer takes none of them for `stall`: a peer that
/// reads slowly is waited for as long as it reads, one that stopped is not.
async fn write_all_within(
    out: &mut OwnedWriteHalf,
    mut bytes: &[u8],
    stall: Duration,
) -> Result<(), Stalled> {
    while !bytes.is_empty() {
        match tokio::time::timeout(stall, out.write(bytes)).await {
            Ok(Ok(n)) if n > 0 => bytes = bytes.get(n..).unwrap_or_default(),
            Ok(_) => return Err(Stalled::Gone),
            Err(_) => return Err(Stalled::Stalled),
        }
    }
    Ok(())
}

/// The connection is closed.
#[derive(Debug)]
pub(super) struct Gone;

/// The answer to request `id` as the line the agent receives, newline included.
pub(super) fn encode_line(id: Option<RequestId>, result: &Reply) -> Vec<u8> {
    let mut line = encode_response(id, result).into_bytes();
    line.push(b'\n');
    line
}

/// How long after the last connection closed the memory it freed is handed back: past the
/// allocator's purge delay (mimalloc's is 1 s).
const RELEASE_AFTER: Duration = Duration::from_secs(2);

/// Makes the allocator give back, soon, what closed connections freed.
///
/// The daemon's allocator (mimalloc) returns freed memory to the system lazily: a second after
/// the free, at the next moment it looks — a page freed by some thread, or a thread that ends.
/// A daemon that goes quiet when its peers hang up keeps its high-water mark (measured,
/// `cli/tests/gateway_memory.rs`: once 16 unfinished lines of a mebibyte were cut off, RSS
/// stayed where it was while they were held; with this, it came back 17 MiB within 3 s).
/// `mi_collect` would say it directly, but it is `unsafe` FFI (forbidden here); ending a
/// thread is the safe way to the same purge. So: [`RELEASE_AFTER`] the last close, one
/// short-lived thread. At most one is pending at a time, whatever the rate of closes; with
/// another allocator it costs a thread.
pub(super) fn release_freed_memory() {
    static LAST_CLOSE: Mutex<Option<Instant>> = Mutex::new(None);
    let last = || LAST_CLOSE.lock().unwrap_or_else(PoisonError::into_inner);
    if last().replace(Instant::now()).is_some() {
        return; // Already pending: it waits for this close too.
    }
    tokio::spawn(async move {
        loop {
            let due = last().map_or_else(Instant::now, |t| t + RELEASE_AFTER);
            tokio::time::sleep_until(due.into()).await;
            let mut pending = last();
            if pending.is_none_or(|t| t + RELEASE_AFTER <= Instant::now()) {
                *pending = None;
                break;
            }
        }
        let ended = std::thread::Builder::new()
            .name("roster-release".into())
            // Allocates, so that the allocator knows the thread, and collects when it ends.
            .spawn(|| drop(std::hint::black_box(vec![0u8; 64])));
        if let Err(e) = ended {
            tracing::debug!("cannot start a thread to release freed memory: {e}");
        }
    });
}
