//! Bad input, fuzzed, through the gateway itself: `read_line` over a reader that yields
//! arbitrary chunks, and streams of fuzzed lines through a real socket to a backend over a real
//! log. Each line gets exactly one answer, in order, with the id it had; only the lines that
//! decode reach the backend, so a refused line changes nothing. The decoder and the framing on
//! their own are fuzzed in `tests/tests/fuzz.rs`.
//!
//! Cases: `ROSTER_FUZZ_CASES`, else 1,000,000 in the long form (`ROSTER_LONG=1`), else a
//! short run for CI.

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};

use proptest::collection::vec;
use proptest::prelude::*;
use roster_core::gateway::answer::Subscribed;
use roster_core::gateway::frame::Frame;
use roster_core::gateway::{
    decode_request, ActParams, Call, ErrorCode, GatewayError, SubscribeParams, MAX_LINE, METHODS,
};
use roster_core::id::AgentId;
use roster_core::port::LogRead;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::UnixStream;

use roster_tests::fuzz::{config, reference_lines};

use super::conn::read_line;
use super::testing::{Team, TeamBackend};
use super::{answer, serve_agent, ActAnswer, AgentGateway, Backend, HungUp, Limits, Pushes, Reply};

/// A reader that yields its bytes in the chunks given (cycled), and sometimes nothing yet.
struct Chunked {
    rest: Vec<u8>,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        if size == 0 {
            // Not ready yet: wake at once (a reader that is slow, not stuck).
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = size.min(self.rest.len()).min(buf.remaining());
        let chunk: Vec<u8> = self.rest.drain(..n).collect();
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    runtime().block_on(f)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn read_line_cuts_any_chunked_stream_like_the_reference(
        bytes in vec(prop_oneof![3 => Just(b'\n'), 1 => Just(b'\r'), 4 => any::<u8>()], 0..120),
        sizes in vec(0usize..20, 1..6).prop_filter("some progress", |s| s.iter().any(|&n| n > 0)),
        buf_size in 1usize..16,
        cap in 0usize..20,
    ) {
        let reader = Chunked { rest: bytes.clone(), sizes, turn: 0 };
        let mut r = BufReader::with_capacity(buf_size, reader);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        block_on(async {
            loop {
                let frame = read_line(&mut r, &mut buf, cap, None).await.unwrap();
                if frame == Frame::Eof {
                    break;
                }
                assert!(buf.len() <= cap && buf.capacity() <= cap.max(1) * 2);
                got.push((frame, buf.clone()));
            }
        });
        prop_assert_eq!(got, reference_lines(&bytes, cap));
    }
}

/// The test team's backend, which also takes the calls the read-only one does not answer: it
/// records each as a refusal of the lead (one `AccessDenied` appended to the real log), and it
/// keeps every call it is given, so the test can tell which lines reached it.
#[derive(Debug)]
struct Recording {
    team: TeamBackend,
    got: Mutex<Vec<Call>>,
    /// Events this backend appended.
    recorded: Mutex<u64>,
}

impl Recording {
    fn take(&self, call: Call) -> Option<Reply> {
        let mut team = self.team.0.lock().unwrap_or_else(PoisonError::into_inner);
        let lead = team.lead;
        self.got.lock().unwrap().push(call.clone());
        let read = answer::read_only(team.log(), team.world(), lead, &call, roster_store::now());
        if read.is_none() {
            team.act_as_lead(true);
            *self.recorded.lock().unwrap() += 1;
        }
        read
    }
}

fn refused() -> GatewayError {
    GatewayError::new(ErrorCode::Denied, "this test backend refuses it, recorded")
}

impl Backend for Recording {
    fn call(&self, _agent: AgentId, call: Call) -> Reply {
        self.take(call).unwrap_or_else(|| Err(refused()))
    }

    fn act(&self, _agent: AgentId, params: ActParams, _hung_up: HungUp) -> ActAnswer {
        self.take(Call::Act(params));
        Box::pin(std::future::ready(Err(refused())))
    }

    fn subscribe(
        &self,
        _agent: AgentId,
        params: SubscribeParams,
    ) -> Result<(Subscribed, Pushes), GatewayError> {
        self.take(Call::Subscribe(params));
        Err(refused())
    }
}

/// One gateway for all the cases of a run, as the lead, with a rate limit no test reaches.
fn gateway() -> &'static (tempfile::TempDir, Arc<Recording>, AgentGateway) {
    static GW: OnceLock<(tempfile::TempDir, Arc<Recording>, AgentGateway)> = OnceLock::new();
    GW.get_or_init(|| {
        let team = Team::new();
        let lead = team.lead;
        let backend = Arc::new(Recording {
            team: TeamBackend(Mutex::new(team)),
            got: Mutex::new(Vec::new()),
            recorded: Mutex::new(0),
        });
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            per_sec: u32::MAX,
            burst: u32::MAX,
            max_connections: 16,
            ..Limits::default()
        };
        let gw = block_on(serve_agent(
            &dir.path().join("gw"),
            lead,
            backend.clone(),
            limits,
            super::Access::Open,
        ))
        .unwrap();
        (dir, backend, gw)
    })
}

/// Lines an agent might send: valid requests of every method, the same damaged, garbage, empty
/// lines, now and then one over the cap.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let valid = (proptest::sample::select(TEMPLATES), any::<u64>())
        .prop_map(|(t, id)| t.replace("ID", &id.to_string()).into_bytes());
    let damaged = (
        valid.clone(),
        any::<prop::sample::Index>(),
        prop_oneof![Just(None), any::<u8>().prop_map(Some)],
    )
        .prop_map(|(mut l, at, b)| {
            let i = at.index(l.len());
            match b {
                Some(b) => l[i] = b,
                None => l.truncate(i),
            }
            l
        });
    prop_oneof![
        8 => valid,
        4 => damaged,
        2 => vec(any::<u8>(), 0..40),
        1 => Just(Vec::new()),
        1 => proptest::sample::select(METHODS)
            .prop_map(|m| format!(r#"{{"id":1,"method":"{m}","params":{{"x":[{{}}]}},"as":"operator"}}"#).into_bytes()),
        // Up to 1000 bytes; one in 500 at the cap or one past it.
        1 => (0usize..1000).prop_map(|n| {
            vec![b'x'; match n { 0 => MAX_LINE, 1 => MAX_LINE + 1, n => n }]
        }),
    ]
}

const TEMPLATES: &[&str] = &[
    r#"{"id":ID,"method":"whoami"}"#,
    r#"{"id":ID,"method":"grants","params":{}}"#,
    r#"{"id":ID,"method":"shares","params":null}"#,
    r#"{"id":ID,"method":"history","params":{"from":2,"limit":3}}"#,
    r#"{"id":ID,"method":"history","params":{"from":0}}"#,
    r#"{"id":ID,"method":"hire","params":{"name":"helper","role":"r","grants":["email.send@mailbox:x,budget=1"]}}"#,
    r#"{"id":ID,"method":"retire","params":{"agent":"agt_0192f0c0000070008000000000000001"}}"#,
    r#"{"id":ID,"method":"delegate","params":{"to":"agt_0192f0c0000070008000000000000001","capability":"email.send@mailbox:x"}}"#,
    r#"{"id":ID,"method":"act","params":{"action":"email.send","resource":"mailbox:x","amount":2,"args":{"memo":"hi"},"timeout_secs":0}}"#,
    r#"{"id":ID,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001","approved":true}}"#,
    r#"{"id":ID,"method":"publish","params":{"topic":"a/b","message":"m\u0000"}}"#,
    r#"{"id":ID,"method":"subscribe","params":{"topics":["a/*","**"]}}"#,
    r#"{"id":ID,"method":"share_propose","params":{"to":"ops","topics":"a/**"}}"#,
    r#"{"id":ID,"method":"share_accept","params":{"share":"shr_0192f0c0000070008000000000000001"}}"#,
    r#"{"id":ID,"method":"share_close","params":{"share":"shr_0192f0c0000070008000000000000001"}}"#,
];

/// What the gateway must answer to one line: its id and, when it is refused before the
/// backend, the code; the call the backend must get otherwise.
fn expected(frame: Frame, line: &[u8]) -> (Option<u64>, Result<Call, ErrorCode>) {
    match frame {
        Frame::TooLong { .. } => (None, Err(ErrorCode::LineTooLong)),
        _ => match decode_request(line) {
            Ok(r) => (Some(r.id), Ok(r.call)),
            Err((id, e)) => (id, Err(e.code)),
        },
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn every_line_gets_one_answer_in_order_and_refused_lines_change_nothing(
        lines in vec((line(), proptest::sample::select(&["\n", "\r\n", ""][..])), 1..10),
        sizes in vec(1usize..4096, 1..4),
    ) {
        let (_dir, backend, gw) = gateway();
        let mut stream = Vec::new();
        for (l, end) in &lines {
            stream.extend_from_slice(l);
            stream.extend_from_slice(if end.is_empty() { b" " } else { end.as_bytes() });
        }
        let want: Vec<_> = reference_lines(&stream, MAX_LINE)
            .into_iter()
            .map(|(f, l)| expected(f, &l))
            .collect();
        let log_before = backend.team.0.lock().unwrap().log().len();
        let recorded_before = *backend.recorded.lock().unwrap();
        backend.got.lock().unwrap().clear();
        let answers = block_on(async {
            let (read, mut write) = UnixStream::connect(gw.path()).await.unwrap().into_split();
            let writer = tokio::spawn(async move {
                let mut rest = &stream[..];
                for size in sizes.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (chunk, more) = rest.split_at((*size).min(rest.len()));
                    write.write_all(chunk).await.unwrap();
                    rest = more;
                }
                // The last line may lack its newline: a half-close ends it.
                write.shutdown().await.unwrap();
            });
            let mut answers = Vec::new();
            let mut lines = BufReader::new(read).lines();
            while let Some(l) = lines.next_line().await.unwrap() {
                answers.push(serde_json::from_str::<Value>(&l).unwrap());
            }
            writer.await.unwrap();
            answers
        });
        prop_assert_eq!(answers.len(), want.len(), "{:?}", answers);
        let mut calls = Vec::new();
        for (answer, (id, outcome)) in answers.iter().zip(&want) {
            prop_assert_eq!(&answer["id"], &serde_json::json!(id), "{}", answer);
            match outcome {
                Err(code) => prop_assert_eq!(&answer["error"]["code"], &serde_json::to_value(code).unwrap()),
                Ok(call) => calls.push(call.clone()),
            }
        }
        // Only the lines that decoded reached the backend, in order, and only it wrote.
        prop_assert_eq!(&*backend.got.lock().unwrap(), &calls);
        let recorded = *backend.recorded.lock().unwrap() - recorded_before;
        prop_assert_eq!(backend.team.0.lock().unwrap().log().len(), log_before + recorded);
    }
}
