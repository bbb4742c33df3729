//! Context between agents: `publish` and `subscribe` through the gateway, over the bus.
//!
//! A message published to the sender's own team goes to the bus addressed to the team (no
//! record: teams talk freely), and is *forwarded* through every open share of the team whose
//! pattern matches its topic. A message for another team (`team` given) goes only there. Each
//! crossing — forwarded or addressed — is a decision first: `ShareContext` as the sending agent
//! finds the open share and records the crossing (`ContextShared`: digest and size, never the
//! payload), or refuses and records `AccessDenied`. Only then is it published, addressed to the
//! importing team.
//!
//! Where it arrives, it is checked again. Each team with listening members has one *inbox*, a
//! task that reads the team's feed from the bus and checks every message against what this
//! runtime sent (kept until it arrives, each taken back once): a team's own message must be
//! one it sent (same sender, time and payload digest: the sender was the owner of the socket it
//! came through); a crossing must be one it recorded (same share, sender, topic and digest), its
//! sender still an agent in service of its team, and its share still open and covering the
//! topic. A message that fails reaches nobody; a crossing whose share closed while it travelled
//! is recorded as `AccessDenied` for its sender. The inbox then fans out to the members'
//! subscriptions, each filtering by its patterns. A team's own messages are checked without the
//! daemon's lock; only crossings consult the world.
//!
//! Delivery is at most once, as on NATS: a subscription whose agent does not read in time loses
//! messages and is told how many (`{"kind":"dropped","count":N}`) before the next one. Memory is
//! bounded per team, not per subscriber: the push of a message is built once and shared.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use roster_bus::ctx::Delivery;
use roster_bus::{ContextMessage, CtxBus};
use roster_core::actor::Actor;
use roster_core::capability::Resource;
use roster_core::command::{builtin, Command};
use roster_core::envelope::Hash;
use roster_core::event::Event;
use roster_core::gateway::answer::{self, Published, Subscribed};
use roster_core::gateway::{ErrorCode, GatewayError, PublishParams, SubscribeParams};
use roster_core::id::{AgentId, EventId, ShareId, TeamId};
use roster_core::name::Name;
use roster_core::time::Timestamp;
use roster_core::topic::{Topic, TopicPattern};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::Daemon;
use crate::app::{App, RuntimeError};
use crate::gateway::Pushes;

/// Messages a team's inbox holds for a member that is behind (shared by all its members).
const INBOX_BACKLOG: usize = 256;

/// Pushes waiting for one subscription's connection (shared messages, not copies).
const PUSH_QUEUE: usize = 256;

/// Patterns one subscription may have.
const MAX_PATTERNS: usize = 32;

/// How long a publish or a subscription may wait for the bus.
const BUS_WAIT: Duration = Duration::from_secs(2);

/// Messages sent here that have not arrived yet, remembered to check them where they arrive
/// (oldest forgotten first: a team with no listener never takes its messages back).
const PENDING: usize = 65_536;

/// What an inbox hands its team's subscriptions: the push, built once.
#[derive(Debug, Clone)]
enum Inbound {
    Message {
        topic: Topic,
        push: Arc<Value>,
    },
    /// The bus lost this many messages for the team.
    Dropped(u64),
}

/// What this runtime recorded of a crossing, to check the message against when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Crossing {
    share: ShareId,
    sender: AgentId,
    topic: Topic,
    digest: Hash,
}

/// The daemon's context service.
#[derive(Debug)]
pub struct Context {
    bus: CtxBus,
    /// The NATS connection under `bus`, if it is NATS.
    client: Option<roster_bus::Client>,
    inboxes: Mutex<HashMap<Name, broadcast::Sender<Inbound>>>,
    /// The inbox tasks, stopped with the daemon.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Crossings decided here whose message has not arrived yet.
    crossings: Pending<EventId, Crossing>,
    /// Messages to a team itself sent here that have not arrived yet: sender, time, digest.
    local: Pending<(AgentId, Timestamp, Hash), ()>,
    /// Each agent's subscriptions (their forwarding tasks), ended when it retires.
    subscriptions: Mutex<HashMap<AgentId, Vec<tokio::task::AbortHandle>>>,
}

/// A bounded map of what was sent, each entry taken back once when its message arrives.
#[derive(Debug)]
struct Pending<K, V>(Mutex<(HashMap<K, V>, VecDeque<K>)>);

impl<K: std::hash::Hash + Eq + Clone, V> Pending<K, V> {
    fn new() -> Self {
        Self(Mutex::new((HashMap::new(), VecDeque::new())))
    }

    fn insert(&self, key: K, value: V) {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *guard;
        while order.len() >= PENDING {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        order.push_back(key.clone());
        map.insert(key, value);
    }

    /// The entry of `key`, once (its place in the order is forgotten lazily).
    fn take(&self, key: &K) -> Option<V> {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, order) = &mut *guard;
        let value = map.remove(key);
        if value.is_some() && order.front() == Some(key) {
            order.pop_front();
        }
        value
    }
}

fn denied(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::Denied, e.to_string())
}

fn internal(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::Internal, e.to_string())
}

fn unavailable() -> GatewayError {
    internal("the bus is not reachable now (NATS is down or reconnecting); try again shortly")
}

impl Context {
    /// Context over `bus` (`client`: its NATS connection, when it is NATS).
    pub fn new(bus: CtxBus, client: Option<roster_bus::Client>) -> Self {
        Self {
            bus,
            client,
            inboxes: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            crossings: Pending::new(),
            local: Pending::new(),
            subscriptions: Mutex::new(HashMap::new()),
        }
    }

    /// Ends `agent`'s subscriptions at once (it retired): nothing fanned out from now on
    /// reaches it, and its streams end.
    pub fn end_subscriptions(&self, agent: AgentId) {
        let ended = self
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&agent);
        for task in ended.into_iter().flatten() {
            task.abort();
        }
    }

    /// Whether messages can go out now.
    fn available(&self) -> bool {
        self.client.as_ref().is_none_or(roster_bus::is_connected)
    }

    /// Stops every inbox (the daemon is stopping).
    pub fn stop(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            t.abort();
        }
    }

    /// `publish`, from a blocking thread: decides each crossing, then sends.
    pub fn publish(
        &self,
        d: &Daemon,
        agent: AgentId,
        p: PublishParams,
    ) -> Result<Published, GatewayError> {
        // Refused before anything is recorded: a crossing on the log did go out.
        if !self.available() {
            return Err(unavailable());
        }
        let at = crate::app::now();
        let digest = Hash::of(p.message.as_bytes());
        // Decided under the ledger; sent after letting go of it.
        let decided = d.decide(|app| -> Result<_, GatewayError> {
            // A retired agent says nothing more: decided under the ledger, so a publish is
            // either before its retirement or refused.
            let (from_id, from) = crate::gateway::answer::in_service(app.world(), agent)
                .ok()
                .and_then(|a| app.world().team(a.team))
                .map(|t| (t.id, t.name.clone()))
                .ok_or_else(|| denied(format!("agent {agent} is not in service")))?;
            // Where it goes: the team itself and every open share whose pattern matches, or the
            // one team named.
            let mut deliveries: Vec<(Name, Option<(ShareId, EventId)>)> = Vec::new();
            let targets: Vec<TeamId> = match &p.team {
                Some(to) if *to != from => {
                    let open =
                        app.world().team_named(to).map(|t| t.id).filter(|to| {
                            app.world().open_share_for(from_id, *to, &p.topic).is_some()
                        });
                    let Some(to_team) = open else {
                        // No open share to it, or no such team: the same refusal, recorded
                        // the same way (by the runtime, in these words), so that an agent
                        // does not learn which teams exist.
                        let why = roster_core::command::Rejection::NoOpenShare {
                            from: from.clone(),
                            to: to.clone(),
                            topic: p.topic.clone(),
                        }
                        .to_string();
                        record_denial(app, agent, to, why.clone())
                            .map_err(super::backend::failure)?;
                        return Err(denied(why));
                    };
                    vec![to_team]
                }
                _ => {
                    deliveries.push((from.clone(), None));
                    let mut to: Vec<TeamId> = app
                        .world()
                        .shares()
                        .filter(|s| {
                            s.from == from_id
                                && s.state == roster_core::world::ShareState::Open
                                && s.topics.matches(&p.topic)
                        })
                        .map(|s| s.to)
                        .collect();
                    to.sort();
                    to.dedup();
                    to
                }
            };
            for to in targets {
                let command = Command::ShareContext {
                    to,
                    topic: p.topic.clone(),
                    digest,
                    size: p.message.len() as u64,
                };
                let committed = match app.execute(command, &Actor::Agent(agent)) {
                    Ok(c) => c,
                    Err(RuntimeError::Refused(r)) => return Err(denied(r)),
                    Err(e) => return Err(super::backend::failure(e)),
                };
                let crossing = committed.iter().find_map(|e| match &e.event {
                    Event::ContextShared { share, .. } => Some((*share, e.id)),
                    _ => None,
                });
                let (Some((share, record)), Some(name)) =
                    (crossing, app.world().team(to).map(|t| t.name.clone()))
                else {
                    return Err(internal("the crossing was not recorded"));
                };
                self.crossings.insert(
                    record,
                    Crossing {
                        share,
                        sender: agent,
                        topic: p.topic.clone(),
                        digest,
                    },
                );
                deliveries.push((name, Some((share, record))));
            }
            Ok((from, deliveries))
        });
        let (from, deliveries) = decided.map_err(internal)??;
        let mut delivered = Vec::with_capacity(deliveries.len());
        for (to, crossing) in deliveries {
            if crossing.is_none() {
                self.local.insert((agent, at, digest), ());
            }
            let msg = ContextMessage {
                to: to.clone(),
                from: from.clone(),
                sender: agent,
                topic: p.topic.clone(),
                message: p.message.clone(),
                share: crossing.map(|c| c.0),
                record: crossing.map(|c| c.1),
                at,
            };
            let sent = d
                .rt
                .block_on(async { tokio::time::timeout(BUS_WAIT, self.bus.publish(msg)).await });
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(internal(e)),
                Err(_) => return Err(unavailable()),
            }
            delivered.push(answer::Delivery {
                record: crossing.map(|c| c.1),
                share: crossing.map(|c| c.0),
                team: to,
            });
        }
        Ok(Published {
            delivered,
            topic: p.topic,
        })
    }

    /// `subscribe`, from a blocking thread: the agent's team's inbox, filtered by `patterns`.
    pub fn subscribe(
        &self,
        d: &Daemon,
        agent: AgentId,
        p: SubscribeParams,
    ) -> Result<(Subscribed, Pushes), GatewayError> {
        if p.topics.is_empty() || p.topics.len() > MAX_PATTERNS {
            return Err(GatewayError::new(
                ErrorCode::BadParams,
                format!("give 1 to {MAX_PATTERNS} topic patterns (`**` is every topic)"),
            ));
        }
        let team = d
            .read(|app| {
                crate::gateway::answer::in_service(app.world(), agent)
                    .ok()
                    .and_then(|a| app.world().team(a.team))
                    .map(|t| t.name.clone())
            })
            .map_err(internal)?
            .ok_or_else(|| denied(format!("agent {agent} is not in service")))?;
        let inbox = self.inbox(d, &team)?;
        let (tx, rx) = mpsc::channel(PUSH_QUEUE);
        // Registered under the ledger (read), which a retirement holds while it ends the
        // agent's subscriptions: a subscription is either ended by the retirement or refused.
        let registered = d
            .read(|app| {
                if crate::gateway::answer::in_service(app.world(), agent).is_err() {
                    return false;
                }
                let task = d.rt.spawn(forward(inbox, p.topics.clone(), tx));
                let mut subs = self
                    .subscriptions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let handles = subs.entry(agent).or_default();
                handles.retain(|h| !h.is_finished());
                handles.push(task.abort_handle());
                true
            })
            .map_err(internal)?;
        if !registered {
            return Err(denied(format!("agent {agent} is not in service")));
        }
        let answer = Subscribed {
            team,
            topics: p.topics,
        };
        Ok((answer, rx))
    }

    /// The team's inbox, started on first use (and again if its feed ended).
    fn inbox(&self, d: &Daemon, team: &Name) -> Result<broadcast::Receiver<Inbound>, GatewayError> {
        // Refused while the bus is down even when a teammate's subscription already holds the
        // team's feed: the answer does not depend on who else listens, and an agent told "ok"
        // would wait for messages that cannot come until the bus is back.
        if !self.available() {
            return Err(unavailable());
        }
        let mut inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = inboxes.get(team) {
            return Ok(tx.subscribe());
        }
        // Bounded: the lock is held for at most BUS_WAIT.
        let feed =
            d.rt.block_on(async { tokio::time::timeout(BUS_WAIT, self.bus.subscribe(team)).await })
                .map_err(|_| unavailable())?
                .map_err(internal)?;
        let (tx, rx) = broadcast::channel(INBOX_BACKLOG);
        let me = d.arc().map_err(internal)?;
        let task = d.rt.spawn(run_inbox(me, team.clone(), feed, tx.clone()));
        inboxes.insert(team.clone(), tx);
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        Ok(rx)
    }
}

fn record_denial(
    app: &mut App,
    agent: AgentId,
    team: &Name,
    reason: String,
) -> Result<(), RuntimeError> {
    let denial = Command::RecordDenial {
        agent,
        action: builtin::action(builtin::CONTEXT_SHARE),
        resource: Resource::team(team),
        reason,
    };
    app.execute(denial, &Actor::Runtime).map(drop)
}

/// One team's inbox: the feed from the bus, checked where it arrives, fanned out.
async fn run_inbox(
    d: Arc<Daemon>,
    team: Name,
    mut feed: roster_bus::TeamFeed,
    tx: broadcast::Sender<Inbound>,
) {
    while let Some(delivery) = feed.next().await {
        let inbound = match delivery {
            Delivery::Dropped(n) => Inbound::Dropped(n),
            // A team's own message: this runtime sent exactly it (its sender was the socket's
            // owner when it left), or it reaches nobody.
            Delivery::Message(m) if !m.crossed() => {
                let key = (m.sender, m.at, Hash::of(m.message.as_bytes()));
                if d.context.local.take(&key).is_none() {
                    tracing::warn!(sender = %m.sender, %team, "dropped a message this runtime did not send");
                    continue;
                }
                Inbound::Message {
                    topic: m.topic.clone(),
                    push: Arc::new(push(&m)),
                }
            }
            Delivery::Message(m) => {
                let recorded = m.record.and_then(|r| d.context.crossings.take(&r));
                // The check only reads the world: done here when the lock is free at once,
                // on the blocking pool when a decision holds it (it may be flushing).
                let fast = d.try_read(|app| arrival(app.world(), recorded.as_ref(), &m));
                let verdict = match fast {
                    Some(v) => v,
                    None => {
                        let (d2, m2) = (d.clone(), m.clone());
                        let checked = tokio::task::spawn_blocking(move || {
                            d2.read(|app| arrival(app.world(), recorded.as_ref(), &m2))
                                .unwrap_or_else(|e| Arrival::Drop(e.to_string()))
                        })
                        .await;
                        match checked {
                            Ok(v) => v,
                            Err(e) => Arrival::Drop(format!("the arrival check failed: {e}")),
                        }
                    }
                };
                match verdict {
                    Arrival::Deliver => Inbound::Message {
                        topic: m.topic.clone(),
                        push: Arc::new(push(&m)),
                    },
                    Arrival::Drop(why) => {
                        tracing::warn!(sender = %m.sender, %team, "dropped a message where it arrived: {why}");
                        continue;
                    }
                    Arrival::Refuse(why) => {
                        let d2 = d.clone();
                        let recorded =
                            tokio::task::spawn_blocking(move || refused(&d2, &m, &why)).await;
                        if let Err(e) = recorded {
                            tracing::error!(%team, "cannot record a refused crossing: {e}");
                        }
                        continue;
                    }
                }
            }
        };
        // An error only means no member listens now.
        let _ = tx.send(inbound);
    }
    tracing::warn!(%team, "the bus closed this team's feed");
    // The next subscriber starts a new inbox.
    d.context
        .inboxes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&team);
}

/// What the check where a message arrives decided.
#[derive(Debug, PartialEq, Eq)]
enum Arrival {
    /// It reaches the team's listeners.
    Deliver,
    /// It reaches nobody: it is not what it claims (a sender outside its team, a crossing this
    /// runtime did not record, or recorded for other content). Not its sender's doing.
    Drop(String),
    /// It reaches nobody, and the refusal is recorded for its sender: the share closed (or
    /// stopped covering the topic) while the message travelled.
    Refuse(String),
}

/// The check where the crossing `m` arrives, against the world and the crossing this runtime
/// recorded for it (`recorded`, taken from the pending crossings: each is delivered at most
/// once). (A team's own messages are checked against what this runtime sent, in the inbox.)
fn arrival(
    world: &roster_core::world::World,
    recorded: Option<&Crossing>,
    m: &ContextMessage,
) -> Arrival {
    let from = world.team_named(&m.from).map(|t| t.id);
    let in_service = world
        .agent(m.sender)
        .is_some_and(|a| Some(a.team) == from && !a.is_retired());
    if !in_service {
        return Arrival::Drop(format!(
            "{} is not an agent in service of team {}",
            m.sender, m.from
        ));
    }
    let (Some(share), Some(record)) = (m.share, m.record) else {
        return Arrival::Drop("a crossing without its share and record".into());
    };
    let expected = Crossing {
        share,
        sender: m.sender,
        topic: m.topic.clone(),
        digest: Hash::of(m.message.as_bytes()),
    };
    if recorded != Some(&expected) {
        return Arrival::Drop(format!(
            "this runtime recorded no such crossing as {record}"
        ));
    }
    let to = world.team_named(&m.to).map(|t| t.id);
    match (from, to) {
        (Some(from), Some(to)) => match world.crossing_allowed(share, from, to, &m.topic) {
            Ok(()) => Arrival::Deliver,
            Err(why) => Arrival::Refuse(why),
        },
        _ => Arrival::Drop("it names a team this runtime does not know".into()),
    }
}

/// Records that the crossing `m` was refused where it arrived, for its sender.
fn refused(d: &Daemon, m: &ContextMessage, why: &str) {
    tracing::info!(sender = %m.sender, "a crossing was refused where it arrived: {why}");
    let reason = format!(
        "message on `{}` refused where it arrived: {why}",
        m.topic.as_str()
    );
    let recorded = d
        .decide(|app| record_denial(app, m.sender, &m.to, reason))
        .and_then(|r| r);
    if let Err(e) = recorded {
        tracing::error!("cannot record a refused crossing: {e}");
    }
}

/// One subscription: the team's inbox filtered by the patterns, into the connection's queue.
async fn forward(
    mut inbox: broadcast::Receiver<Inbound>,
    patterns: Vec<TopicPattern>,
    tx: mpsc::Sender<Arc<Value>>,
) {
    let mut dropped: u64 = 0;
    loop {
        let inbound = tokio::select! {
            () = tx.closed() => return,
            r = inbox.recv() => r,
        };
        let push = match inbound {
            Ok(Inbound::Message { topic, push }) => {
                if !patterns.iter().any(|p| p.matches(&topic)) {
                    continue;
                }
                push
            }
            Ok(Inbound::Dropped(n)) | Err(broadcast::error::RecvError::Lagged(n)) => {
                dropped = dropped.saturating_add(n);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if dropped > 0 {
            match tx.try_send(Arc::new(json!({ "kind": "dropped", "count": dropped }))) {
                Ok(()) => dropped = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped = dropped.saturating_add(1);
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        match tx.try_send(push) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => dropped = dropped.saturating_add(1),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The push an agent receives for a message.
fn push(m: &ContextMessage) -> Value {
    json!({
        "kind": "message",
        "team": m.from,
        "sender": m.sender,
        "topic": m.topic,
        "message": m.message,
        "share": m.share,
        "at": m.at,
    })
}

#[cfg(test)]
mod tests {
    use roster_core::command::Command;
    use roster_core::topic::{Topic, TopicPattern};

    use super::*;
    use crate::gateway::testing::{operator, Team};

    /// research's scout sends `text` on `topic` to ops through an open share; the message as it
    /// travels and the crossing as recorded.
    fn crossing(t: &mut Team, topic: &str, text: &str) -> (ContextMessage, Crossing, ShareId) {
        let research = t.world().agent(t.lead).unwrap().team;
        let ops = t.world().agent(t.other).unwrap().team;
        let proposed = t.exec(
            Command::ProposeShare {
                from: research,
                to: ops,
                topics: TopicPattern::parse("findings/**").unwrap(),
            },
            &operator(),
        );
        let share = match &proposed[0].event {
            Event::ShareProposed { share, .. } => *share,
            e => panic!("{e:?}"),
        };
        t.exec(Command::AcceptShare { share }, &operator());
        let topic = Topic::parse(topic).unwrap();
        let digest = Hash::of(text.as_bytes());
        let recorded = t.exec(
            Command::ShareContext {
                to: ops,
                topic: topic.clone(),
                digest,
                size: text.len() as u64,
            },
            &Actor::Agent(t.scout),
        );
        let m = ContextMessage {
            to: Name::parse("ops").unwrap(),
            from: Name::parse("research").unwrap(),
            sender: t.scout,
            topic: topic.clone(),
            message: text.into(),
            share: Some(share),
            record: Some(recorded[0].id),
            at: crate::app::now(),
        };
        let c = Crossing {
            share,
            sender: t.scout,
            topic,
            digest,
        };
        (m, c, share)
    }

    fn dropped(a: Arrival) -> bool {
        matches!(a, Arrival::Drop(_))
    }

    #[test]
    fn a_recorded_crossing_through_an_open_share_arrives() {
        let mut t = Team::new();
        let (m, c, _) = crossing(&mut t, "findings/x", "hello");
        assert_eq!(arrival(t.world(), Some(&c), &m), Arrival::Deliver);
    }

    #[test]
    fn what_this_runtime_did_not_record_reaches_nobody_and_blames_nobody() {
        let mut t = Team::new();
        let (m, c, _) = crossing(&mut t, "findings/x", "hello");
        // No record (forged, or replayed after its one delivery).
        assert!(dropped(arrival(t.world(), None, &m)));
        // Other content than what was recorded.
        let mut edited = m.clone();
        edited.message = "hello!".into();
        assert!(dropped(arrival(t.world(), Some(&c), &edited)));
        // Another topic than recorded.
        let mut moved = m.clone();
        moved.topic = Topic::parse("findings/y").unwrap();
        assert!(dropped(arrival(t.world(), Some(&c), &moved)));
        // A sender claiming a team it is not in.
        let mut claimed = m.clone();
        claimed.from = Name::parse("ops").unwrap();
        claimed.to = Name::parse("research").unwrap();
        assert!(dropped(arrival(t.world(), Some(&c), &claimed)));
    }

    #[test]
    fn a_crossing_claimed_by_an_agent_of_another_team_reaches_nobody() {
        let mut t = Team::new();
        let (mut m, c, _) = crossing(&mut t, "findings/x", "hello");
        for sender in [t.retired, t.other, t.stranger()] {
            m.sender = sender;
            let c = Crossing {
                sender,
                ..c.clone()
            };
            assert!(dropped(arrival(t.world(), Some(&c), &m)), "{sender}");
        }
    }

    #[test]
    fn what_was_sent_is_taken_back_once_and_the_oldest_is_forgotten_first() {
        let p: Pending<u32, &str> = Pending::new();
        p.insert(1, "a");
        assert_eq!(p.take(&1), Some("a"));
        assert_eq!(p.take(&1), None);
        for i in 0..(PENDING as u32 + 1) {
            p.insert(i, "x");
        }
        assert_eq!(p.take(&0), None, "the oldest is forgotten");
        assert_eq!(p.take(&(PENDING as u32)), Some("x"));
    }

    #[test]
    fn a_crossing_whose_share_closed_on_the_way_is_refused() {
        let mut t = Team::new();
        let (m, c, share) = crossing(&mut t, "findings/x", "hello");
        t.exec(Command::CloseShare { share }, &operator());
        match arrival(t.world(), Some(&c), &m) {
            Arrival::Refuse(why) => assert!(why.contains("closed"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
