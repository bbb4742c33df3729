//! Context between agents: `publish` and `subscribe` through the gateway, over the bus.
//!
//! Inside a team a message goes straight to the bus, addressed to the team (no record: teams
//! talk freely). A message for another team is a decision first: `ShareContext` as the sending
//! agent finds an open share from its team whose pattern matches the topic and records the
//! crossing (`ContextShared`: digest and size, never the payload) — or refuses and records
//! `AccessDenied`. Only then is it published, addressed to the importing team.
//!
//! Where it arrives, it is checked again: each team with listening members has one *inbox*, a
//! task that reads the team's feed from the bus and, for a message that crossed, asks the world
//! whether that share is still open and still covers the topic. A message that fails (the share
//! closed while it travelled) reaches nobody and is recorded as `AccessDenied` for its sender.
//! The inbox then fans out to the members' subscriptions, each filtering by its patterns.
//!
//! Delivery is at most once, as on NATS: a subscription whose agent does not read in time loses
//! messages and is told how many (`{"kind":"dropped","count":N}`) before the next one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use roster_bus::ctx::Delivery;
use roster_bus::{ContextMessage, CtxBus};
use roster_core::actor::Actor;
use roster_core::capability::{Action, Resource};
use roster_core::command::{builtin, Command};
use roster_core::envelope::Hash;
use roster_core::event::Event;
use roster_core::gateway::{ErrorCode, GatewayError, PublishParams, SubscribeParams};
use roster_core::id::AgentId;
use roster_core::name::Name;
use roster_core::topic::TopicPattern;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::Daemon;
use crate::app::CliError;
use crate::gateway::Pushes;

/// Messages a team's inbox holds for a member that is behind.
const INBOX_BACKLOG: usize = 1024;

/// Pushes waiting for one subscription's connection.
const PUSH_QUEUE: usize = 256;

/// Patterns one subscription may have.
const MAX_PATTERNS: usize = 32;

/// What an inbox hands its team's subscriptions.
#[derive(Debug, Clone)]
enum Inbound {
    Message(Arc<ContextMessage>),
    /// The bus lost this many messages for the team.
    Dropped(u64),
}

/// The daemon's context service.
#[derive(Debug)]
pub struct Context {
    bus: CtxBus,
    inboxes: Mutex<HashMap<Name, broadcast::Sender<Inbound>>>,
}

fn denied(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::Denied, e.to_string())
}

fn internal(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::Internal, e.to_string())
}

impl Context {
    /// Context over `bus`.
    pub fn new(bus: CtxBus) -> Self {
        Self {
            bus,
            inboxes: Mutex::new(HashMap::new()),
        }
    }

    /// `publish`, from a blocking thread: decides (for a crossing), then sends.
    pub fn publish(
        &self,
        d: &Daemon,
        agent: AgentId,
        p: PublishParams,
    ) -> Result<Value, GatewayError> {
        let at = crate::app::now();
        let mut app = d.app().map_err(internal)?;
        let from = app
            .world
            .agent(agent)
            .and_then(|a| app.world.team(a.team))
            .map(|t| t.name.clone())
            .ok_or_else(|| denied("unknown agent"))?;
        let to = p.team.clone().unwrap_or_else(|| from.clone());
        let (share, record) = if to == from {
            (None, None)
        } else {
            let Some(to_team) = app.world.team_named(&to).map(|t| t.id) else {
                // A probe for a team that does not exist is a refused crossing like any other.
                let why = format!("no team named `{to}`");
                let denial = Command::RecordDenial {
                    agent,
                    action: context_action()?,
                    resource: Resource::team(&to),
                    reason: format!("publish on `{}` to another team: {why}", p.topic.as_str()),
                };
                app.execute(denial, &Actor::Runtime).map_err(internal)?;
                return Err(denied(why));
            };
            let command = Command::ShareContext {
                to: to_team,
                topic: p.topic.clone(),
                digest: Hash::of(p.message.as_bytes()),
                size: p.message.len() as u64,
            };
            let committed = match app.execute(command, &Actor::Agent(agent)) {
                Ok(c) => c,
                Err(CliError::Refused(r)) => return Err(denied(r)),
                Err(e) => return Err(internal(e)),
            };
            let crossing = committed.iter().find_map(|e| match &e.event {
                Event::ContextShared { share, .. } => Some((*share, e.id)),
                _ => None,
            });
            let Some((share, record)) = crossing else {
                return Err(internal("the crossing was not recorded"));
            };
            (Some(share), Some(record))
        };
        drop(app);
        let msg = ContextMessage {
            to: to.clone(),
            from,
            sender: agent,
            topic: p.topic.clone(),
            message: p.message,
            share,
            record,
            at,
        };
        d.rt.block_on(self.bus.publish(msg)).map_err(internal)?;
        Ok(json!({
            "team": to,
            "topic": p.topic,
            "share": share,
            "record": record,
        }))
    }

    /// `subscribe`, from a blocking thread: the agent's team's inbox, filtered by `patterns`.
    pub fn subscribe(
        &self,
        d: &Daemon,
        agent: AgentId,
        p: SubscribeParams,
    ) -> Result<(Value, Pushes), GatewayError> {
        if p.topics.is_empty() || p.topics.len() > MAX_PATTERNS {
            return Err(GatewayError::new(
                ErrorCode::BadParams,
                format!("give 1 to {MAX_PATTERNS} topic patterns (`**` is every topic)"),
            ));
        }
        let team = {
            let app = d.app().map_err(internal)?;
            app.world
                .agent(agent)
                .and_then(|a| app.world.team(a.team))
                .map(|t| t.name.clone())
                .ok_or_else(|| denied("unknown agent"))?
        };
        let inbox = self.inbox(d, &team)?;
        let (tx, rx) = mpsc::channel(PUSH_QUEUE);
        d.rt.spawn(forward(inbox, p.topics.clone(), tx));
        Ok((json!({ "team": team, "topics": p.topics }), rx))
    }

    /// The team's inbox, started on first use.
    fn inbox(&self, d: &Daemon, team: &Name) -> Result<broadcast::Receiver<Inbound>, GatewayError> {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = inboxes.get(team) {
            return Ok(tx.subscribe());
        }
        let feed = d.rt.block_on(self.bus.subscribe(team)).map_err(internal)?;
        let (tx, rx) = broadcast::channel(INBOX_BACKLOG);
        let me = d.arc().map_err(internal)?;
        d.rt.spawn(run_inbox(me, team.clone(), feed, tx.clone()));
        inboxes.insert(team.clone(), tx);
        Ok(rx)
    }
}

fn context_action() -> Result<Action, GatewayError> {
    Action::parse(builtin::CONTEXT_SHARE).map_err(internal)
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
            Delivery::Message(m) if !m.crossed() => Inbound::Message(m),
            Delivery::Message(m) => {
                let d2 = d.clone();
                let m2 = m.clone();
                let allowed = tokio::task::spawn_blocking(move || arrives(&d2, &m2)).await;
                match allowed {
                    Ok(true) => Inbound::Message(m),
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(%team, "the arrival check failed: {e}");
                        continue;
                    }
                }
            }
        };
        // An error only means no member listens now.
        let _ = tx.send(inbound);
    }
    tracing::warn!(%team, "the bus closed this team's feed");
}

/// The check where a crossing arrives: the share is still open and still covers the topic. A
/// refusal is recorded for the sender (when the sender is one of ours).
fn arrives(d: &Daemon, m: &ContextMessage) -> bool {
    let Ok(mut app) = d.app() else {
        return false;
    };
    let ids = (
        app.world.team_named(&m.from).map(|t| t.id),
        app.world.team_named(&m.to).map(|t| t.id),
        m.share,
    );
    let why = match ids {
        (Some(from), Some(to), Some(share)) => {
            match app.world.crossing_allowed(share, from, to, &m.topic) {
                Ok(()) => return true,
                Err(why) => why,
            }
        }
        _ => "it names a team or share this runtime does not know".to_owned(),
    };
    tracing::info!(sender = %m.sender, "a crossing was refused where it arrived: {why}");
    if app.world.agent(m.sender).is_some() {
        if let Ok(action) = context_action() {
            let denial = Command::RecordDenial {
                agent: m.sender,
                action,
                resource: Resource::team(&m.to),
                reason: format!(
                    "message on `{}` refused where it arrived: {why}",
                    m.topic.as_str()
                ),
            };
            if let Err(e) = app.execute(denial, &Actor::Runtime) {
                tracing::error!("cannot record a refused crossing: {e}");
            }
        }
    }
    false
}

/// One subscription: the team's inbox filtered by the patterns, into the connection's queue.
async fn forward(
    mut inbox: broadcast::Receiver<Inbound>,
    patterns: Vec<TopicPattern>,
    tx: mpsc::Sender<Value>,
) {
    let mut dropped: u64 = 0;
    loop {
        let inbound = tokio::select! {
            () = tx.closed() => return,
            r = inbox.recv() => r,
        };
        let m = match inbound {
            Ok(Inbound::Message(m)) => m,
            Ok(Inbound::Dropped(n)) | Err(broadcast::error::RecvError::Lagged(n)) => {
                dropped = dropped.saturating_add(n);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !patterns.iter().any(|p| p.matches(&m.topic)) {
            continue;
        }
        if dropped > 0 {
            match tx.try_send(json!({ "kind": "dropped", "count": dropped })) {
                Ok(()) => dropped = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped = dropped.saturating_add(1);
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        match tx.try_send(push(&m)) {
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
