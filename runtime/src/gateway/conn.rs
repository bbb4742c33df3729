//! One agent connection: lines in under a hard cap and a time limit, the agent's token bucket,
//! answers out in request order under a byte budget.
//!
//! # What a connection may hold
//! - In: one line, at most [`MAX_LINE`] bytes, and it must arrive whole within the line timeout
//!   of its first byte (`Limits::line_timeout`), else the connection is closed. A connection
//!   waiting between lines has no timeout: agents listen on subscriptions, and `act` may wait an
//!   hour.
//! - Out: answers and pushes waiting for the peer are charged, in bytes, to a [`Budget`] of the
//!   connection and to one of its agent (`out`), and released once written. Room for an answer
//!   is reserved before it is made (a whole page for `history`), so a connection whose peer
//!   does not read stops there — not reading its next request, not asking the runtime for
//!   anything — until the peer reads: nothing is dropped. A peer that reads nothing for the
//!   write timeout (`Limits::write_timeout`) is hung up on, and everything queued for it freed.
//!
//! So what the gateway holds for an agent is its budget (answers queued or being made; only an
//! answer larger than its reservation, made before it is charged, is outside it) and, per
//! connection, a read buffer and a line.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use roster_core::gateway::answer::{Answer, Subscribed};
use roster_core::gateway::frame::{Frame, Framer};
use roster_core::gateway::{
    decode_request, encode_response, encode_response_into, Call, ErrorCode, GatewayError, Request,
    RequestId, MAX_LINE,
};
use roster_core::id::AgentId;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::OwnedSemaphorePermit;

use super::answer::HISTORY_MAX_BYTES;
use super::fair::{thread_cpu, Admitted, Fair};
use super::out::{encode_line, release_freed_memory, Budget, Conn};
use super::{Backend, Limits, Reply};

/// Bytes read from the socket at a time.
const READ_BUF: usize = 64 * 1024;

/// A line buffer that grew past this is given back after its line, so that an idle connection
/// does not keep a megabyte because of one large request.
const KEEP_BUF: usize = 64 * 1024;

/// Reads one line into `buf` (cleared first), never holding more than `cap` bytes of it: past
/// the cap the rest of the line is consumed and dropped as it arrives ([`Framer`]). With
/// `within`, a line that has begun must end within that time of its first byte, else the read
/// fails with [`io::ErrorKind::TimedOut`]; the wait for a line's first byte is not limited.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
    within: Option<Duration>,
) -> io::Result<Frame> {
    if buf.capacity() > KEEP_BUF {
        *buf = Vec::new();
    }
    buf.clear();
    let mut framer = Framer::new(cap);
    // Set when the line's first byte is seen.
    let mut deadline = None;
    loop {
        let chunk = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, r.fill_buf())
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??,
            None => r.fill_buf().await?,
        };
        if chunk.is_empty() {
            return Ok(framer.end(buf));
        }
        if let (None, Some(within)) = (deadline, within) {
            deadline = Some(tokio::time::Instant::now() + within);
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
    /// What all the agent's connections may hold for it.
    pub budget: Budget,
    /// The agent's limits (the connection's budget and timeouts among them).
    pub limits: Limits,
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

/// How long the answer to a line cut off for its time has to go out before the connection is
/// closed anyway.
const CUT_OFF_GRACE: Duration = Duration::from_secs(1);

/// Subscriptions one connection may hold at once.
pub(super) const MAX_SUBSCRIPTIONS: usize = 16;

/// What the answer to `request` is reckoned to weigh before it is made: a whole page for
/// `history` (the events, their commas and the fields around them), a few KiB for anything
/// else. A larger answer is charged its size once it is made.
fn answer_room(request: &Result<Request, (Option<RequestId>, GatewayError)>) -> usize {
    match request {
        Ok(Request {
            call: Call::History(_),
            ..
        }) => HISTORY_MAX_BYTES + PAGE_FRAME,
        _ => SMALL_ANSWER,
    }
}

/// What a `history` answer holds besides its events' bytes: a comma between each two (at most
/// [`HISTORY_MAX`](super::answer::HISTORY_MAX)) and the id, `next` and `version` around them.
const PAGE_FRAME: usize = 4 * 1024;

/// The room reserved for any answer but a page of history: what most answers weigh.
const SMALL_ANSWER: usize = 4 * 1024;

/// Serves one connection until the agent closes it, a write fails, or the gateway stops (the
/// task is aborted). Requests are answered one after the other, in order; a `subscribe` adds a
/// task that pushes the subscription's messages into the same output. `_slot` is held for as
/// long as the connection lives: it is what the connection cap counts.
pub(super) async fn serve(stream: UnixStream, cx: AgentCtx, _slot: OwnedSemaphorePermit) {
    let (read, write) = stream.into_split();
    let mut read = BufReader::with_capacity(READ_BUF, read);
    let budgets = [Budget::new(cx.limits.conn_bytes), cx.budget.clone()];
    let (conn, mut writer) = Conn::start(write, cx.agent, budgets, cx.limits.write_timeout);
    // Dropped (and so aborted) when the connection ends.
    let mut subscriptions = tokio::task::JoinSet::new();
    let mut buf = Vec::new();
    // When this connection's turn on its worker began (see the end of the loop).
    let mut turn = Instant::now();
    let within = cx.limits.line_timeout;
    // Set when the connection is cut off for a line that did not end in time.
    let mut cut_off = false;
    loop {
        let got = tokio::select! {
            got = read_line(&mut read, &mut buf, MAX_LINE, Some(within)) => got,
            // The peer read nothing for too long: the writer gave up, and so does the reader.
            () = conn.closed() => break,
        };
        let line = match got {
            Ok(Frame::Eof) => break,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                tracing::info!(
                    agent = %cx.agent,
                    "closing a gateway connection whose request line did not end within {within:?}"
                );
                let e = GatewayError::new(
                    ErrorCode::InvalidJson,
                    format!(
                        "a request line must arrive whole, up to its newline, within {} of its \
                         first byte; this one did not, so the connection is closed",
                        span(within)
                    ),
                );
                let _ = conn.send(None, &Err(e)).await;
                cut_off = true;
                break;
            }
            Err(_) => break,
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
        let request = match line {
            Frame::TooLong { len } => Err((
                None,
                GatewayError::new(
                    ErrorCode::LineTooLong,
                    format!("a request line is at most {MAX_LINE} bytes; this one is {len}"),
                ),
            )),
            _ => decode_request(&buf),
        };
        // Room for the answer before it is made: an answer being made counts against the
        // budgets like one waiting for the peer, so a connection whose answers are not read
        // asks the runtime for nothing more (not even a place in `Fair`).
        let size = answer_room(&request);
        let Ok(room) = conn.reserve(size).await else {
            break;
        };
        let line = match request {
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
                            let line = encode_line(Some(id), &Ok(answer.into()));
                            if conn.send_reserved(line, room).await.is_err() {
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
            Ok(Request { id, call: c }) => call(&cx, id, c, size).await,
        };
        if conn.send_reserved(line, room).await.is_err() {
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
    // What was read (maybe most of a line) is not kept while the rest goes out.
    drop((read, buf));
    if cut_off {
        // The line saying why has a moment to go out: a peer that sends no newline may well
        // read nothing either.
        if tokio::time::timeout(CUT_OFF_GRACE, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    } else {
        // Whatever was queued still goes out (the agent may have half-closed only its side).
        let _ = writer.await;
    }
    release_freed_memory();
}

/// A duration as an agent reads it in a message: whole seconds when it is, else milliseconds.
fn span(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
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
async fn call(
    cx: &AgentCtx,
    id: RequestId,
    call: roster_core::gateway::Call,
    size: usize,
) -> Vec<u8> {
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
    //
    // The line's buffer (of the `size` reserved for it) is taken here, on a worker thread, not
    // on the blocking one that fills it: it is freed by the writer, on a worker too, and an
    // allocator gives a block back soonest where it was taken (mimalloc leaves a block freed by
    // another thread to its owner, which for a blocking thread may sleep for seconds).
    let admitted = fair.admit(cx.agent).await;
    let mut line = Vec::with_capacity(size);
    let line = on_blocking_pool(cx, admitted, move |backend, agent| {
        encode_response_into(&mut line, Some(id), &backend.call(agent, call));
        line.push(b'\n');
        Ok(line)
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
            let l = read_line(&mut r, &mut buf, cap, None).await.unwrap();
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
