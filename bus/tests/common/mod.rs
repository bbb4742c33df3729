//! Helpers of the bus tests: a real `nats-server`, a real `SledLog` in a temporary directory,
//! reading the stream back message by message, and a valve that holds back what a client sends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream::Stream};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use roster_bus::{wire, BusUrl, EventSubscription, NatsServer, Outbox};
use roster_core::actor::Actor;
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::name::Name;
use roster_core::port::{AppendRequest, EventLog, LogRead};
use roster_core::time::Timestamp;
use roster_store::SledLog;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A real server; a missing `nats-server` fails the test with the install hint, never skips it.
pub fn server() -> NatsServer {
    NatsServer::start().unwrap_or_else(|e| panic!("these tests need a real NATS server: {e}"))
}

/// The bus URL of `server`.
pub fn url(server: &NatsServer) -> BusUrl {
    BusUrl::parse(&server.url()).unwrap()
}

/// A connected client.
pub async fn client(server: &NatsServer) -> Client {
    roster_bus::connect_now(&url(server), Duration::from_secs(5))
        .await
        .unwrap()
}

pub fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

/// A fresh log in a temporary directory (kept alive by the returned guard).
pub fn log() -> (tempfile::TempDir, Arc<SledLog>) {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(&dir.path().join("log")).unwrap());
    (dir, log)
}

/// Creates team `name` (its `TeamCreated` at version 1); the id comes from `seed`.
pub fn team(log: &SledLog, name_: &str, seed: u64) -> TeamId {
    let team = TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(seed));
    append(log, team, vec![Event::TeamCreated { name: name(name_) }]);
    team
}

/// Appends `events` to `team`'s stream.
pub fn append(log: &SledLog, team: TeamId, events: Vec<Event>) -> Vec<Envelope> {
    log.append(AppendRequest {
        at: None,
        team,
        expected_version: log.team_version(team).unwrap(),
        events,
        actor: Actor::Runtime,
        causation: None,
    })
    .unwrap()
}

/// `n` events of kind `AgentRetired` for `team`, in batches of up to 100.
pub fn retire_many(log: &SledLog, team: TeamId, n: usize) {
    let agent = AgentId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(77));
    let mut left = n;
    while left > 0 {
        let k = left.min(100);
        append(log, team, vec![Event::AgentRetired { agent }; k]);
        left -= k;
    }
}

/// `n` `AgentStarted` events for `team`.
pub fn start_many(log: &SledLog, team: TeamId, n: usize) {
    let agent = AgentId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(78));
    let events = (0..n)
        .map(|i| Event::AgentStarted {
            agent,
            container: format!("c{i}"),
        })
        .collect();
    append(log, team, events);
}

/// Every envelope of the log.
pub fn all(log: &SledLog) -> Vec<Envelope> {
    log.read(0, usize::MAX).unwrap()
}

/// One message of the stream, as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub stream_seq: u64,
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

impl Stored {
    pub fn roster_seq(&self) -> u64 {
        wire::roster_seq(Some(&self.headers)).expect("a Roster-Seq header")
    }

    pub fn msg_id(&self) -> String {
        wire::msg_id(Some(&self.headers))
            .expect("a Nats-Msg-Id header")
            .to_owned()
    }
}

/// The events stream of `ns`.
pub async fn stream(client: &Client, ns: &str) -> Stream {
    jetstream::new(client.clone())
        .get_stream(format!("{ns}_events"))
        .await
        .unwrap()
}

/// Every message the stream holds, in stream order.
pub async fn stored(client: &Client, ns: &str) -> Vec<Stored> {
    let stream = stream(client, ns).await;
    let state = stream.get_info().await.unwrap().state;
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        match stream.get_raw_message(seq).await {
            Ok(m) => out.push(Stored {
                stream_seq: m.sequence,
                subject: m.subject.to_string(),
                headers: m.headers,
                payload: m.payload,
            }),
            Err(e) => assert!(
                e.to_string().contains("no message found"),
                "reading message {seq}: {e}"
            ),
        }
    }
    out
}

/// The Roster-Seq of every stored message, in stream order.
pub async fn stored_seqs(client: &Client, ns: &str) -> Vec<u64> {
    stored(client, ns)
        .await
        .iter()
        .map(Stored::roster_seq)
        .collect()
}

/// Waits for `cond` (a hang guard: the test fails after a minute, it never passes by waiting).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits `fut` with a hang guard.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

/// A TCP proxy in front of a server whose client-to-server direction can be held shut: what a
/// client behind it sends while the valve is held reaches the server, in order, once it is
/// released (so a test can make another client's publish arrive first).
pub struct Valve {
    port: u16,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Valve {
    /// An open valve in front of `server`.
    pub async fn start(server: &NatsServer) -> Valve {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = server.port();
        let (open, gate) = watch::channel(true);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut gate = gate.clone();
                tokio::spawn(async move {
                    let outbound = tokio::net::TcpStream::connect(("127.0.0.1", target))
                        .await
                        .unwrap();
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    let up = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match from_client.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if gate.wait_for(|open| *open).await.is_err()
                                || to_server.write_all(&buf[..n]).await.is_err()
                            {
                                break;
                            }
                        }
                        let _ = to_server.shutdown().await;
                    };
                    let down = async move {
                        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                        let _ = to_client.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Valve { port, open, task }
    }

    /// The bus URL that leads through the valve.
    pub fn url(&self) -> BusUrl {
        BusUrl::parse(&format!("nats://127.0.0.1:{}", self.port)).unwrap()
    }

    /// From now on, what clients send waits in the valve.
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    /// What waited goes on to the server, and so does everything after it.
    pub fn release(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Valve {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Publishes everything `log` holds and stops the outbox.
pub async fn publish_all(log: &Arc<SledLog>, client: &async_nats::Client) {
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    within("the outbox", outbox.published(log.len()))
        .await
        .unwrap();
    outbox.stop().await;
}

/// Reads `n` events, acknowledging each; returns their positions.
pub async fn take(sub: &mut EventSubscription, n: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < n {
        let d = within("an event", sub.next()).await.unwrap().unwrap();
        let env: serde_json::Value = serde_json::from_slice(&d.json).unwrap();
        assert_eq!(env["seq"], d.seq, "Roster-Seq is the envelope's seq");
        seqs.push(d.seq);
        d.ack().await.unwrap();
    }
    seqs
}

/// A tool call of `action` on `mailbox:alice`, as the runtime would send it to a provider.
pub fn tool_call(action: &str) -> roster_core::tool::ToolCall {
    use roster_core::capability::{Action, Amount, Resource};
    use roster_core::id::{EventId, GrantId};
    let id = "0192f0c0000070008000000000000001";
    roster_core::tool::ToolCall {
        performed: format!("evt_{id}").parse::<EventId>().unwrap(),
        action: Action::parse(action).unwrap(),
        resource: Resource::parse("mailbox:alice").unwrap(),
        amount: Amount::new(2).unwrap(),
        args: std::collections::BTreeMap::from([(
            Name::parse("subject").unwrap(),
            "hi".to_owned(),
        )]),
        agent: roster_core::tool::ToolAgent {
            id: format!("agt_{id}").parse::<AgentId>().unwrap(),
            name: Name::parse("scout").unwrap(),
            team: Name::parse("research").unwrap(),
        },
        chain: vec![format!("grt_{id}").parse::<GrantId>().unwrap()],
        approval: None,
    }
}
