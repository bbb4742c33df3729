//! The gateway over real Unix sockets, against a backend over a real in-memory log and a world
//! built with `decide`. Every test asserts what an agent gets back, or that it is cut off.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roster_core::gateway::MAX_LINE;
use roster_core::id::AgentId;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::time::timeout;

use super::server::SOCKET_NAME;
use super::testing::{Team, TeamBackend};
use super::{serve_agent, Access, AgentGateway, Limits};

/// Generous: these bound a hang, they do not measure speed.
const DEADLINE: Duration = Duration::from_secs(20);

struct Client {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Client {
    async fn connect(path: &Path) -> Client {
        let (read, write) = UnixStream::connect(path).await.unwrap().into_split();
        Client {
            read: BufReader::new(read),
            write,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// The next response line, or `None` at the end of the stream.
    async fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = timeout(DEADLINE, self.read.read_line(&mut line))
            .await
            .expect("an answer within the deadline")
            .unwrap();
        (n > 0).then(|| serde_json::from_str(&line).unwrap())
    }

    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        let req = json!({"id": id, "method": method, "params": params});
        self.send(format!("{req}\n").as_bytes()).await;
        let resp = self.recv().await.unwrap();
        assert_eq!(resp["id"], id, "{resp}");
        resp
    }
}

/// The error code of a response.
fn code(resp: &Value) -> &str {
    resp["error"]["code"].as_str().unwrap_or("<none>")
}

struct Setup {
    _dir: tempfile::TempDir,
    team: Arc<TeamBackend>,
    lead: AgentId,
}

impl Setup {
    fn new() -> Setup {
        let t = Team::new();
        let lead = t.lead;
        Setup {
            _dir: tempfile::tempdir().unwrap(),
            team: Arc::new(TeamBackend(Mutex::new(t))),
            lead,
        }
    }

    fn agent(&self, f: impl Fn(&Team) -> AgentId) -> AgentId {
        f(&self.team.0.lock().unwrap())
    }

    async fn serve(&self, agent: AgentId, limits: Limits) -> AgentGateway {
        let dir = self._dir.path().join(agent.to_string());
        serve_agent(&dir, agent, self.team.clone(), limits, Access::Open)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn each_method_answers_for_the_sockets_owner() {
    let s = Setup::new();
    let scout = s.agent(|t| t.scout);
    let gw = s.serve(scout, Limits::default()).await;
    let mut c = Client::connect(gw.path()).await;
    let me = c.call(1, "whoami", json!({})).await;
    assert_eq!(me["ok"]["address"], "research/scout", "{me}");
    assert_eq!(me["ok"]["id"], json!(scout));
    let grants = c.call(2, "grants", Value::Null).await;
    let list = grants["ok"]["grants"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{grants}");
    assert_eq!(list[0]["holder"], json!(scout));
    let history = c.call(3, "history", json!({"from": 2, "limit": 3})).await;
    let versions: Vec<_> = history["ok"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].clone())
        .collect();
    assert_eq!(versions, [json!(2), json!(3), json!(4)], "{history}");
    // Calls this backend does not implement still get a typed answer.
    let hire = c.call(4, "hire", json!({"name": "helper"})).await;
    assert_eq!(code(&hire), "internal", "{hire}");
}

#[tokio::test]
async fn a_retired_agents_socket_is_denied_everything() {
    let s = Setup::new();
    let gw = s.serve(s.agent(|t| t.retired), Limits::default()).await;
    let mut c = Client::connect(gw.path()).await;
    for (i, method) in ["whoami", "grants", "history"].into_iter().enumerate() {
        let r = c.call(i as u64, method, json!({})).await;
        assert_eq!(code(&r), "denied", "{r}");
    }
}

#[tokio::test]
async fn bad_lines_get_typed_errors_and_the_connection_survives() {
    let s = Setup::new();
    let gw = s.serve(s.lead, Limits::default()).await;
    let mut c = Client::connect(gw.path()).await;
    let cases: &[(&[u8], Value, &str)] = &[
        (b"\x00\x01garbage\x7f\n", Value::Null, "invalid_json"),
        (b"\xff\xfe{\"id\":1}\n", Value::Null, "invalid_json"),
        (
            b"{\"id\":2,\"method\":\"whoami\"\n",
            Value::Null,
            "invalid_json",
        ),
        (b"[]\n", Value::Null, "invalid_json"),
        (b"\n", Value::Null, "invalid_json"),
        (b"{\"method\":\"whoami\"}\n", Value::Null, "missing_id"),
        (
            b"{\"id\":\"3\",\"method\":\"whoami\"}\n",
            Value::Null,
            "missing_id",
        ),
        (
            b"{\"id\":4,\"method\":\"sudo\"}\n",
            json!(4),
            "unknown_method",
        ),
        (
            b"{\"id\":5,\"method\":\"history\",\"params\":{\"from\":\"x\"}}\n",
            json!(5),
            "bad_params",
        ),
        (
            b"{\"id\":6,\"method\":\"history\",\"params\":{\"limit\":-1}}\n",
            json!(6),
            "bad_params",
        ),
        (
            b"{\"id\":7,\"method\":\"whoami\",\"params\":[1]}\n",
            json!(7),
            "bad_params",
        ),
        (
            b"{\"id\":8,\"method\":\"hire\",\"params\":{\"name\":\"../x\"}}\n",
            json!(8),
            "bad_params",
        ),
        (
            b"{\"id\":9,\"method\":\"history\",\"params\":{\"from\":0}}\n",
            json!(9),
            "bad_params",
        ),
    ];
    for (line, id, want) in cases {
        c.send(line).await;
        let r = c.recv().await.unwrap();
        assert_eq!((&r["id"], code(&r)), (id, *want), "{r}");
        assert!(r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // 2 MiB without a newline, then its newline and a valid request: the long line is
    // answered as too long, the next one normally.
    let mut big = vec![b'{'; 2 * 1024 * 1024];
    big.extend_from_slice(b"\n{\"id\":10,\"method\":\"whoami\"}\n");
    c.send(&big).await;
    let r = c.recv().await.unwrap();
    assert_eq!((&r["id"], code(&r)), (&Value::Null, "line_too_long"), "{r}");
    let r = c.recv().await.unwrap();
    assert_eq!(r["id"], 10);
    assert_eq!(r["ok"]["address"], "research/lead", "{r}");
    // A line of exactly the cap is read (and then refused as JSON, not for its length).
    let mut exact = vec![b' '; MAX_LINE];
    exact.push(b'\n');
    c.send(&exact).await;
    assert_eq!(code(&c.recv().await.unwrap()), "invalid_json");
    let r = c.call(11, "whoami", Value::Null).await;
    assert!(r["ok"].is_object(), "{r}");
}

#[tokio::test]
async fn an_over_long_last_line_is_answered_before_the_connection_ends() {
    let s = Setup::new();
    let gw = s.serve(s.lead, Limits::default()).await;
    let mut c = Client::connect(gw.path()).await;
    c.send(&vec![b'x'; 2 * 1024 * 1024]).await;
    c.write.shutdown().await.unwrap();
    let r = c.recv().await.unwrap();
    assert_eq!(code(&r), "line_too_long", "{r}");
    assert!(c.recv().await.is_none());
}

#[tokio::test]
async fn the_rate_limit_kicks_in_and_recovers() {
    let s = Setup::new();
    let limits = Limits {
        per_sec: 10,
        burst: 5,
        max_connections: 4,
        ..Limits::default()
    };
    let gw = s.serve(s.lead, limits).await;
    let mut a = Client::connect(gw.path()).await;
    let mut b = Client::connect(gw.path()).await;
    // Twenty at once, split over two connections: the bucket is the agent's, not the
    // connection's.
    let mut flood = String::new();
    for id in 0..10 {
        flood.push_str(&format!("{{\"id\":{id},\"method\":\"whoami\"}}\n"));
    }
    a.send(flood.as_bytes()).await;
    b.send(flood.as_bytes()).await;
    let mut answered = Vec::new();
    for c in [&mut a, &mut b] {
        for id in 0..10 {
            let r = c.recv().await.unwrap();
            assert_eq!(r["id"], id, "answers come in request order: {r}");
            answered.push(r);
        }
    }
    let ok = answered.iter().filter(|r| r["ok"].is_object()).count();
    let limited: Vec<_> = answered
        .iter()
        .filter(|r| code(r) == "rate_limited")
        .collect();
    assert_eq!(ok + limited.len(), 20);
    assert!(ok >= 5, "the burst is served: {ok}");
    assert!(
        limited.len() >= 5,
        "the flood is limited: {}",
        limited.len()
    );
    assert!(limited[0]["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("retry")));
    // After a quiet moment the agent is served again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for id in 100..103 {
        let r = a.call(id, "whoami", Value::Null).await;
        assert!(r["ok"].is_object(), "{r}");
    }
}

#[tokio::test]
async fn a_read_waits_for_a_decision_that_holds_the_world_then_is_answered() {
    let s = Setup::new();
    let gw = s.serve(s.lead, Limits::default()).await;
    let mut c = Client::connect(gw.path()).await;
    // Nobody holds the world: answered on the connection's own task.
    assert!(c.call(1, "whoami", Value::Null).await["ok"].is_object());
    // A decision holds it (as an append would while it flushes): the read is not answered
    // from half-changed state, nor refused; it waits on the blocking pool, then is answered.
    let (held, holding) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let team = s.team.clone();
    let decision = std::thread::spawn(move || {
        let _world = team.0.lock().unwrap();
        held.send(()).unwrap();
        let _ = released.recv();
    });
    holding.recv().unwrap();
    c.send(b"{\"id\":2,\"method\":\"whoami\"}\n").await;
    let mut line = String::new();
    let early = timeout(Duration::from_millis(300), c.read.read_line(&mut line)).await;
    assert!(early.is_err(), "answered while the world was held: {line}");
    release.send(()).unwrap();
    decision.join().unwrap();
    let r = c.recv().await.unwrap();
    assert_eq!(r["id"], 2, "{r}");
    assert_eq!(r["ok"]["id"], json!(s.lead), "{r}");
}

#[tokio::test]
async fn connections_over_the_cap_are_told_and_closed() {
    let s = Setup::new();
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let gw = s.serve(s.lead, limits).await;
    let mut one = Client::connect(gw.path()).await;
    let mut two = Client::connect(gw.path()).await;
    assert!(one.call(1, "whoami", Value::Null).await["ok"].is_object());
    assert!(two.call(1, "whoami", Value::Null).await["ok"].is_object());
    let mut three = Client::connect(gw.path()).await;
    let r = three.recv().await.unwrap();
    assert_eq!(code(&r), "rate_limited", "{r}");
    assert!(three.recv().await.is_none(), "closed after the one line");
    // The two still work; closing one frees its slot.
    assert!(one.call(2, "whoami", Value::Null).await["ok"].is_object());
    drop(two);
    let answered = timeout(DEADLINE, async {
        loop {
            let mut again = Client::connect(gw.path()).await;
            let req = b"{\"id\":3,\"method\":\"whoami\"}\n";
            let _ = again.write.write_all(req).await;
            match again.recv().await {
                Some(r) if r["ok"].is_object() => return,
                // The slot is freed when the server sees the close: try again.
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert!(answered.is_ok());
}

#[tokio::test]
async fn close_ends_connections_and_removes_the_socket() {
    let s = Setup::new();
    let gw = s.serve(s.lead, Limits::default()).await;
    let path = gw.path().to_owned();
    assert_eq!(path.file_name().unwrap(), SOCKET_NAME);
    let mut c = Client::connect(&path).await;
    assert!(c.call(1, "whoami", Value::Null).await["ok"].is_object());
    gw.close().await;
    assert!(!path.exists(), "the socket is removed");
    let mut rest = Vec::new();
    let n = timeout(DEADLINE, c.read.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection is ended");
    assert!(UnixStream::connect(&path).await.is_err());
}

#[tokio::test]
async fn an_open_socket_is_open_to_every_uid_and_a_stale_one_is_replaced() {
    let s = Setup::new();
    let first = s.serve(s.lead, Limits::default()).await;
    let path = first.path().to_owned();
    let dir = path.parent().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir), 0o755);
    assert_eq!(mode(&path), 0o666);
    // A second gateway on the same directory (a daemon restarted without cleaning up)
    // replaces the socket; dropping the first must not remove the second's.
    let second = s.serve(s.lead, Limits::default()).await;
    drop(first);
    assert!(path.exists());
    let mut c = Client::connect(second.path()).await;
    assert!(c.call(1, "whoami", Value::Null).await["ok"].is_object());
    drop(second);
    assert!(!path.exists(), "dropping the gateway removes its socket");
    // A symlink where the directory should be is refused.
    let link = s._dir.path().join("link");
    std::os::unix::fs::symlink(s._dir.path(), &link).unwrap();
    let team: Arc<dyn super::Backend> = s.team.clone();
    assert!(
        serve_agent(&link, s.lead, team, Limits::default(), Access::Open)
            .await
            .is_err()
    );
}

/// Given to the agent's own uid (a daemon run by root, as the tests are): root owns the
/// directory and the socket, the agent's uid is their group, nobody else has any access — also
/// on a directory an older daemon left open.
#[tokio::test]
async fn the_socket_given_to_the_agents_uid_is_closed_to_everyone_else() {
    use std::os::unix::fs::MetadataExt;
    assert!(
        rustix::process::geteuid().is_root(),
        "this test gives files to another uid: run it as root (scripts/test does)"
    );
    let s = Setup::new();
    let dir = s._dir.path().join("gw-own");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let uid = roster_sandbox::uid::AgentUid::new(roster_sandbox::uid::FIRST + 42).unwrap();
    let team: Arc<dyn super::Backend> = s.team.clone();
    let gw = serve_agent(&dir, s.lead, team, Limits::default(), Access::Agent(uid))
        .await
        .unwrap();
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    for (p, want) in [(dir.as_path(), 0o710), (gw.path(), 0o660)] {
        let m = meta(p);
        assert_eq!(
            (m.uid(), m.gid(), m.permissions().mode() & 0o777),
            (0, uid.get(), want),
            "{}",
            p.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_agents_flood_does_not_stop_anothers_answers() {
    let s = Setup::new();
    let scout = s.agent(|t| t.scout);
    let limits = Limits {
        per_sec: 50,
        burst: 50,
        max_connections: 8,
        ..Limits::default()
    };
    let noisy = s.serve(s.lead, limits).await;
    let quiet = s.serve(scout, limits).await;
    // The lead floods on every connection it may open: garbage, over-long lines, valid
    // requests far above its rate, and never reads an answer.
    let mut flooders = Vec::new();
    for i in 0..limits.max_connections {
        let path = noisy.path().to_owned();
        flooders.push(tokio::spawn(async move {
            let Ok(mut stream) = UnixStream::connect(&path).await else {
                return;
            };
            let junk: Vec<u8> = match i % 3 {
                0 => b"\xff\x00not json at all\n".repeat(4096),
                1 => {
                    let mut v = vec![b'['; MAX_LINE + 100];
                    v.push(b'\n');
                    v
                }
                _ => b"{\"id\":1,\"method\":\"history\"}\n".repeat(1024),
            };
            while stream.write_all(&junk).await.is_ok() {}
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile the scout's calls are all answered, correctly, within the deadline.
    let mut c = Client::connect(quiet.path()).await;
    timeout(DEADLINE, async {
        for id in 0..40 {
            let r = c.call(id, "whoami", Value::Null).await;
            assert_eq!(r["ok"]["address"], "research/scout", "{r}");
        }
    })
    .await
    .expect("the quiet agent is served while the other floods");
    assert!(
        flooders.iter().any(|f| !f.is_finished()),
        "the flood was still going"
    );
    noisy.close().await;
    for f in flooders {
        let _ = timeout(DEADLINE, f).await;
    }
}

/// A [`TeamBackend`] that counts the answers it was asked for.
#[derive(Debug)]
struct Counting {
    team: TeamBackend,
    asked: std::sync::atomic::AtomicUsize,
}

impl super::Backend for Counting {
    fn call(&self, agent: AgentId, call: roster_core::gateway::Call) -> super::Reply {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.team.call(agent, call)
    }

    fn call_now(&self, agent: AgentId, call: &roster_core::gateway::Call) -> Option<super::Reply> {
        let answer = self.team.call_now(agent, call);
        if answer.is_some() {
            self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        answer
    }
}

/// Limits with no rate limit to speak of, small budgets and short timeouts.
fn tight() -> Limits {
    Limits {
        per_sec: 1_000_000,
        burst: 1_000_000,
        conn_bytes: 16 * 1024,
        agent_bytes: 32 * 1024,
        line_timeout: Duration::from_millis(200),
        write_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_peer_that_does_not_read_is_not_read_and_then_gets_every_answer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut team = Team::new();
    // A page of 100 events is ~57 KB: the socket's buffers hold a few, the budgets one.
    for i in 0..300 {
        team.act_as_lead(i % 2 == 0);
    }
    let lead = team.lead;
    let backend = Arc::new(Counting {
        team: TeamBackend(Mutex::new(team)),
        asked: Default::default(),
    });
    let limits = Limits {
        write_timeout: DEADLINE,
        ..tight()
    };
    let gw = serve_agent(
        &dir.path().join("gw"),
        lead,
        backend.clone(),
        limits,
        Access::Open,
    )
    .await
    .unwrap();
    let mut c = Client::connect(gw.path()).await;
    const N: u64 = 200;
    let mut flood = String::new();
    for id in 0..N {
        flood.push_str(&format!("{{\"id\":{id},\"method\":\"history\"}}\n"));
    }
    c.send(flood.as_bytes()).await;
    let page = c.recv().await.unwrap();
    let page_len = page.to_string().len() as u64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = backend.asked.load(std::sync::atomic::Ordering::SeqCst) as u64;
    // What the socket's buffers took (a few hundred KB), a page queued and one being made: the
    // rest of the requests wait unread. (A queue bounded in lines made 64 more.)
    let bound = 512 * 1024 / page_len + 4;
    println!("{asked} pages of {page_len} bytes made for a peer that reads nothing");
    assert!(
        asked <= bound,
        "{asked} answers made for a peer that reads nothing (pages of {page_len} bytes)"
    );
    // It reads now: every answer, in order, none dropped.
    assert_eq!(page["id"], 0);
    for id in 1..N {
        let r = c.recv().await.unwrap();
        assert_eq!(r["id"], id, "{r}");
        assert!(r["ok"]["events"].is_array(), "{r}");
    }
    assert_eq!(
        backend.asked.load(std::sync::atomic::Ordering::SeqCst) as u64,
        N
    );
}

#[tokio::test]
async fn a_line_that_does_not_end_in_time_is_cut_off_but_a_quiet_connection_stays() {
    let s = Setup::new();
    let gw = s.serve(s.lead, tight()).await;
    let mut quiet = Client::connect(gw.path()).await;
    assert!(quiet.call(1, "whoami", Value::Null).await["ok"].is_object());
    let mut slow = Client::connect(gw.path()).await;
    slow.send(b"{\"id\":2,\"method\":\"who").await;
    let r = slow.recv().await.unwrap();
    assert_eq!((&r["id"], code(&r)), (&Value::Null, "invalid_json"), "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("within 200 ms"), "{message}");
    assert!(slow.recv().await.is_none(), "closed after saying why");
    // A connection between lines is never cut: three line timeouts later it is answered.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(quiet.call(3, "whoami", Value::Null).await["ok"].is_object());
    // A line sent in pieces, each in time, is read whole.
    quiet.send(b"{\"id\":4,").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    quiet.send(b"\"method\":\"whoami\"}\n").await;
    assert_eq!(quiet.recv().await.unwrap()["id"], 4);
}

#[tokio::test]
async fn a_peer_that_reads_nothing_is_hung_up_on_after_the_write_timeout() {
    let s = Setup::new();
    let gw = s.serve(s.lead, tight()).await;
    let mut c = Client::connect(gw.path()).await;
    let mut flood = String::new();
    for id in 0..2_000 {
        flood.push_str(&format!("{{\"id\":{id},\"method\":\"history\"}}\n"));
    }
    // Written by a task of its own: the gateway stops reading it, so the write may block.
    let mut write = c.write;
    let writer = tokio::spawn(async move {
        let _ = write.write_all(flood.as_bytes()).await;
        write
    });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // What was written before the gateway gave up, then the end of the stream.
    let mut rest = Vec::new();
    let read = timeout(DEADLINE, c.read.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was not closed");
    let answered = rest.iter().filter(|&&b| b == b'\n').count();
    assert!(answered < 2_000, "{answered} answered");
    let _ = writer.await;
    // The agent's other connections are served.
    let mut again = Client::connect(gw.path()).await;
    assert!(again.call(1, "whoami", Value::Null).await["ok"].is_object());
}
