//! One agent connection: lines in under a hard cap, the agent's token bucket, answers out in
//! request order.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roster_core::gateway::answer::{Answer, Subscribed};
use roster_core::gateway::frame::{Frame, Framer};
use roster_core::gateway::{
    decode_request, encode_response, Call, ErrorCode, GatewayError, Request, RequestId, MAX_LINE,
};
use roster_core::id::AgentId;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::OwnedSemaphorePermit;

use super::fair::{thread_cpu, Admitted, Fair};
use super::{Backend, Reply};

/// Bytes read from the socket at a time.
const READ_BUF: usize = 64 * 1024;

/// A line buffer that grew past this is given back after its line, so that an idle connection
/// does not keep a megabyte because of one large request.
const KEEP_BUF: usize = 64 * 1024;

/// Reads one line into `buf` (cleared first), never holding more than `cap` bytes of it: past
/// the cap the rest of the line is consumed and dropped as it arrives ([`Framer`]).
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Frame> {
    if buf.capacity() > KEEP_BUF {
        *buf = Vec::new();
    }
    buf.clear();
    let mut framer = Framer::new(cap);
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(framer.end(buf));
        }
        let (used, line) = framer.feed(chunk, buf);
        r.consume(used);
        if let Some(line) = line {
            return Ok(line);
        }
    }
}

/// A token bucket: `burst` requests at once, `per_sec` a second after that. One per agent,
/// shared by all its connections.
#[derive(Debug)]
pub(super) struct Bucket {
    tokens: f64,
    last: Instant,
    per_sec: f64,
    burst: f64,
}

impl Bucket {
    /// A full bucket.
    pub(super) fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            last: Instant::now(),
            per_sec: f64::from(per_sec.max(1)),
            burst: f64::from(burst.max(1)),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub(super) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

/// The agent's bucket, locked for a moment. A poisoned lock only means a thread panicked
/// between two float updates; the bucket is still a bucket.
fn take_token(bucket: &Mutex<Bucket>) -> Result<(), Duration> {
    bucket
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take(Instant::now())
}

/// The shared parts of an agent's gateway that every connection uses.
#[derive(Clone)]
pub(super) struct AgentCtx {
    /// Whose socket this is.
    pub agent: AgentId,
    /// Who answers.
    pub backend: Arc<dyn Backend>,
    /// The agent's rate limit.
    pub bucket: Arc<Mutex<Bucket>>,
}

impl std::fmt::Debug for AgentCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCtx")
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// How long a connection with requests waiting answers them before it lets other connections
/// have their turn: long enough for a few answers to go out in one write, short enough that a
/// quiet agent's request never waits long behind a flood's. (`roster bench scale`, 2 cores: the
/// quiet agent's p99 under the flood 0.78–0.96 ms with 25 µs against 0.97–1.04 ms with 100 µs,
/// interleaved runs, the flood served as much.)
const TURN: Duration = Duration::from_micros(25);

/// The least time a rate-limited connection is not read: its flood is then answered
/// `rate_limited` once for every several lines served (at the rate), not once for each.
const LIMITED_PAUSE: Duration = Duration::from_millis(50);

/// How many lines may wait for the socket; past that, the reader and every subscription wait
/// too (backpressure, not memory).
const OUT_QUEUE: usize = 64;

/// Subscriptions one connection may hold at once.
pub(super) const MAX_SUBSCRIPTIONS: usize = 16;

/// One line waiting for the socket. A push is encoded only when it is written, so a queue of
/// them holds shared messages, not copies.
#[derive(Debug)]
enum Outgoing {
    Line(Vec<u8>),
    Push(Arc<serde_json::Value>),
}

impl Outgoing {
    /// Appends the line, newline included. A push is encoded here, when it is written: the
    /// queue holds the shared message. One that cannot be encoded is left out.
    fn encode_into(self, batch: &mut Vec<u8>) {
        match self {
            Outgoing::Line(line) => batch.extend_from_slice(&line),
            Outgoing::Push(push) => {
                let start = batch.len();
                #[derive(serde::Serialize)]
                struct Line<'a> {
                    push: &'a serde_json::Value,
                }
                if serde_json::to_writer(&mut *batch, &Line { push: &push }).is_ok() {
                    batch.push(b'\n');
                } else {
                    batch.truncate(start);
                }
            }
        }
    }
}

/// The writing side of a connection: every line the agent receives — responses in request
/// order, and pushed messages between them — goes through one bounded queue to one writer task.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    out: tokio::sync::mpsc::Sender<Outgoing>,
}

impl Conn {
    /// Starts the writer task for `out`; it ends when every sender is gone or a write fails.
    /// Lines queued while a write was under way go out together in the next one: an agent with
    /// many requests in flight is woken once for many answers, not once for each.
    fn start(mut out: OwnedWriteHalf) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Outgoing>(OUT_QUEUE);
        let writer = tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(next) = rx.recv().await {
                if batch.capacity() > KEEP_BUF {
                    batch = Vec::new();
                }
                batch.clear();
                next.encode_into(&mut batch);
                while batch.len() < KEEP_BUF {
                    match rx.try_recv() {
                        Ok(next) => next.encode_into(&mut batch),
                        Err(_) => break,
                    }
                }
                if out.write_all(&batch).await.is_err() {
                    return;
                }
            }
        });
        (Self { out: tx }, writer)
    }

    /// Queues one response line. Waits while the agent does not read (backpressure); an error
    /// means the connection is gone.
    pub(super) async fn send(&self, id: Option<RequestId>, result: &Reply) -> Result<(), Gone> {
        self.send_line(encode_line(id, result)).await
    }

    /// Queues one response line already encoded by [`encode_line`].
    async fn send_line(&self, line: Vec<u8>) -> Result<(), Gone> {
        self.out.send(Outgoing::Line(line)).await.map_err(|_| Gone)
    }

    /// Queues one pushed line (`{"push":…}`).
    pub(super) async fn push(&self, push: Arc<serde_json::Value>) -> Result<(), Gone> {
        self.out.send(Outgoing::Push(push)).await.map_err(|_| Gone)
    }
}

/// The connection is closed.
#[derive(Debug)]
pub(super) struct Gone;

/// The answer to request `id` as the line the agent receives, newline included.
fn encode_line(id: Option<RequestId>, result: &Reply) -> Vec<u8> {
    let mut line = encode_response(id, result).into_bytes();
    line.push(b'\n');
    line
}

/// Serves one connection until the agent closes it, a write fails, or the gateway stops (the
/// task is aborted). Requests are answered one after the other, in order; a `subscribe` adds a
/// task that pushes the subscription's messages into the same output. `_slot` is held for as
/// long as the connection lives: it is what the connection cap counts.
pub(super) async fn serve(stream: UnixStream, cx: AgentCtx, _slot: OwnedSemaphorePermit) {
    let (read, write) = stream.into_split();
    let mut read = BufReader::with_capacity(READ_BUF, read);
    let (conn, writer) = Conn::start(write);
    // Dropped (and so aborted) when the connection ends.
    let mut subscriptions = tokio::task::JoinSet::new();
    let mut buf = Vec::new();
    // When this connection's turn on its worker began (see the end of the loop).
    let mut turn = Instant::now();
    loop {
        let line = match read_line(&mut read, &mut buf, MAX_LINE).await {
            Ok(Frame::Eof) | Err(_) => break,
            Ok(line) => line,
        };
        if let Err(wait) = take_token(&cx.bucket) {
            // Not read again before several tokens are back, so that a flood is answered
            // `rate_limited` once every few lines it is served, not once for each.
            let wait = wait.max(LIMITED_PAUSE);
            let id = match line {
                Frame::Line => match decode_request(&buf) {
                    Ok(r) => Some(r.id),
                    Err((id, _)) => id,
                },
                _ => None,
            };
            let e = GatewayError::new(
                ErrorCode::RateLimited,
                format!("too many requests: retry in {} ms", wait.as_millis().max(1)),
            );
            if conn.send(id, &Err(e)).await.is_err() {
                break;
            }
            // Backpressure: a flooding client is read no faster than its bucket refills, so
            // its own writes block instead of our memory filling.
            tokio::time::sleep(wait).await;
            continue;
        }
        let line = match line {
            Frame::TooLong { len } => encode_line(
                None,
                &Err(GatewayError::new(
                    ErrorCode::LineTooLong,
                    format!("a request line is at most {MAX_LINE} bytes; this one is {len}"),
                )),
            ),
            _ => match decode_request(&buf) {
                Err((id, e)) => encode_line(id, &Err(e)),
                Ok(Request {
                    id,
                    call: Call::Subscribe(params),
                }) => {
                    // Reap finished subscriptions before counting.
                    while subscriptions.try_join_next().is_some() {}
                    if subscriptions.len() >= MAX_SUBSCRIPTIONS {
                        let e = GatewayError::new(
                            ErrorCode::BadParams,
                            format!(
                                "at most {MAX_SUBSCRIPTIONS} subscriptions per connection: \
                                 subscribe once with several patterns"
                            ),
                        );
                        encode_line(Some(id), &Err(e))
                    } else {
                        match subscribe(&cx, params).await {
                            Ok((answer, mut pushes)) => {
                                // The answer goes out before the first message.
                                if conn.send(Some(id), &Ok(answer.into())).await.is_err() {
                                    break;
                                }
                                let conn = conn.clone();
                                subscriptions.spawn(async move {
                                    while let Some(push) = pushes.recv().await {
                                        if conn.push(push).await.is_err() {
                                            return;
                                        }
                                    }
                                });
                                continue;
                            }
                            Err(e) => encode_line(Some(id), &Err(e)),
                        }
                    }
                }
                // Awaited here, not on the blocking pool: it may wait for a human. An agent
                // that hangs up while it waits has given up: its act is dropped (nothing is
                // carried out for nobody when the approval comes later).
                Ok(Request {
                    id,
                    call: Call::Act(params),
                }) => {
                    let (hang_up, hung_up) = tokio::sync::oneshot::channel();
                    let act = cx.backend.act(cx.agent, params, hung_up);
                    encode_line(
                        Some(id),
                        &watching_for_hang_up(&mut read, act, hang_up)
                            .await
                            .map(Answer::from),
                    )
                }
                Ok(Request { id, call: c }) => call(&cx, id, c).await,
            },
        };
        if conn.send_line(line).await.is_err() {
            break;
        }
        // An agent with more requests already here lets every other connection's turn come
        // once this one's has lasted long enough (its answers so far then go out together).
        if read.buffer().is_empty() {
            turn = Instant::now();
        } else if turn.elapsed() >= TURN {
            tokio::task::yield_now().await;
            turn = Instant::now();
        }
    }
    subscriptions.abort_all();
    drop(conn);
    // Whatever was queued still goes out (the agent may have half-closed only its side).
    let _ = writer.await;
}

/// Awaits `work`, telling it through `hang_up` if the client hangs up meanwhile (`work` then
/// ends by itself: an `act` stops waiting for an approval, but one already decided is still
/// carried out and recorded). Looks at the connection only through `fill_buf`, which consumes
/// nothing: once the client has sent its next request (it is still there), `work` is simply
/// awaited.
async fn watching_for_hang_up<R: AsyncBufRead + Unpin, T>(
    read: &mut R,
    work: impl std::future::Future<Output = T>,
    hang_up: tokio::sync::oneshot::Sender<()>,
) -> T {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        filled = read.fill_buf() => {
            if matches!(filled, Ok([]) | Err(_)) {
                let _ = hang_up.send(());
                return work.await;
            }
        }
    }
    let done = work.await;
    drop(hang_up);
    done
}

/// Asks the backend for a subscription, on the blocking pool like every other call.
async fn subscribe(
    cx: &AgentCtx,
    params: roster_core::gateway::SubscribeParams,
) -> Result<(Subscribed, super::Pushes), GatewayError> {
    let admitted = Fair::global().admit(cx.agent).await;
    on_blocking_pool(cx, admitted, move |backend, agent| {
        backend.subscribe(agent, params)
    })
    .await
}

/// Answers call `id`, as the line the agent receives: on this task if the backend can answer
/// without waiting (a read of the world: microseconds, no thread hand-off), else in its turn on
/// the blocking pool.
///
/// A call answered here needs no place in [`Fair`]: it runs on a worker thread, and there are
/// only as many of those as cores. It is charged to its agent all the same, so an agent that
/// floods reads waits longer for its next call that does need a place.
async fn call(cx: &AgentCtx, id: RequestId, call: roster_core::gateway::Call) -> Vec<u8> {
    let fair = Fair::global();
    let started = Instant::now();
    if let Some(answer) = cx.backend.call_now(cx.agent, &call) {
        let line = encode_line(Some(id), &answer);
        fair.charge(cx.agent, started.elapsed());
        return line;
    }
    // Its turn among every agent's calls (a flood cannot starve a quiet agent); the place is
    // held until the backend has answered, and the agent charged the CPU time it took. The
    // answer is encoded there too: a page of history is more work to encode than to read, and
    // this way it is the asking agent's work, done in its turn, not the connections' workers'.
    let admitted = fair.admit(cx.agent).await;
    let line = on_blocking_pool(cx, admitted, move |backend, agent| {
        Ok(encode_line(Some(id), &backend.call(agent, call)))
    })
    .await;
    line.unwrap_or_else(|e| encode_line(Some(id), &Err(e)))
}

/// Runs `f` on the blocking pool (a backend may block on the log or the engine), holding the
/// place `admitted` until it has answered; a backend that panics answers `internal`.
async fn on_blocking_pool<T: Send + 'static>(
    cx: &AgentCtx,
    admitted: Admitted<'static>,
    f: impl FnOnce(&dyn Backend, AgentId) -> Result<T, GatewayError> + Send + 'static,
) -> Result<T, GatewayError> {
    let backend = Arc::clone(&cx.backend);
    let agent = cx.agent;
    match tokio::task::spawn_blocking(move || {
        let cpu = thread_cpu();
        let answer = f(&*backend, agent);
        admitted.done(thread_cpu().saturating_sub(cpu));
        answer
    })
    .await
    {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(%agent, "gateway backend failed: {e}");
            Err(GatewayError::new(
                ErrorCode::Internal,
                "the runtime failed to answer; the request may be retried",
            ))
        }
    }
}

/// Refuses a connection over the cap: one error line, then close.
pub(super) async fn refuse(mut stream: UnixStream, max: usize) {
    let e = GatewayError::new(
        ErrorCode::RateLimited,
        format!("too many connections: at most {max} per agent; close one first"),
    );
    let mut line = encode_response(None, &Reply::Err(e));
    line.push('\n');
    // The line fits in any socket buffer; the timeout is for a peer that is somehow not there.
    let write = stream.write_all(line.as_bytes());
    if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), write).await {
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], cap: usize) -> Vec<(Frame, Vec<u8>)> {
        // A tiny read buffer, so that lines straddle reads.
        let mut r = BufReader::with_capacity(3, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let l = read_line(&mut r, &mut buf, cap).await.unwrap();
            if l == Frame::Eof {
                return out;
            }
            assert!(buf.len() <= cap);
            out.push((l, buf.clone()));
        }
    }

    #[tokio::test]
    async fn lines_are_cut_at_newlines_and_capped() {
        let got = lines(b"ab\ncd\r\n\n0123456789\nxy", 5).await;
        assert_eq!(
            got,
            vec![
                (Frame::Line, b"ab".to_vec()),
                (Frame::Line, b"cd".to_vec()),
                (Frame::Line, b"".to_vec()),
                (Frame::TooLong { len: 10 }, Vec::new()),
                (Frame::Line, b"xy".to_vec()),
            ]
        );
        assert_eq!(
            lines(b"12345\n123456", 5).await[1].0,
            Frame::TooLong { len: 6 }
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10, 3);
        assert!((0..3).all(|_| b.take(t0).is_ok()));
        let wait = b.take(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(b.take(t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take(t0 + Duration::from_millis(100)).is_err());
        // Refills to the burst, no further.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(later).is_ok()));
        assert!(b.take(later).is_err());
    }
}
