//! The context carriers, in-process and over a real `nats-server`: the same scenarios run
//! against both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use std::time::Duration;

use futures_util::StreamExt;
use roster_bus::ctx::Delivery;
use roster_bus::ctx::MAX_MESSAGE;
use roster_bus::{ContextMessage, CtxBus, NatsServer, TeamFeed};
use roster_core::id::{AgentId, CountingEntropy, EventId, ShareId};
use roster_core::name::Name;
use roster_core::time::Timestamp;
use roster_core::topic::Topic;

fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

fn msg(from: &str, to: &str, topic: &str, text: &str) -> ContextMessage {
    let mut e = CountingEntropy::new(1);
    let now = Timestamp::from_millis(1_700_000_000_000);
    let crossed = from != to;
    ContextMessage {
        to: name(to),
        from: name(from),
        sender: AgentId::mint(now, &mut e),
        topic: Topic::parse(topic).unwrap(),
        message: text.into(),
        share: crossed.then(|| ShareId::mint(now, &mut e)),
        record: crossed.then(|| EventId::mint(now, &mut e)),
        at: now,
    }
}

async fn next(feed: &mut TeamFeed) -> Option<Delivery> {
    tokio::time::timeout(Duration::from_secs(5), feed.next())
        .await
        .ok()
        .flatten()
}

/// Nothing arrives within a short while (what did arrive is returned).
async fn nothing(feed: &mut TeamFeed) -> Option<Delivery> {
    tokio::time::timeout(Duration::from_millis(300), feed.next())
        .await
        .ok()
        .flatten()
}

async fn scenarios(bus: &CtxBus) {
    let mut research = bus.subscribe(&name("research")).await.unwrap();
    let mut product = bus.subscribe(&name("product")).await.unwrap();
    // NATS subscriptions are registered asynchronously; a flush-through round trip first.
    let probe = msg("research", "research", "probe", "");
    bus.publish(probe.clone()).await.unwrap();
    assert!(matches!(next(&mut research).await, Some(Delivery::Message(m)) if *m == probe));

    // A team's own message reaches its members, and no other team.
    let inside = msg("research", "research", "findings/daily", "the sky is blue");
    bus.publish(inside.clone()).await.unwrap();
    match next(&mut research).await {
        Some(Delivery::Message(m)) => assert_eq!(*m, inside),
        other => panic!("research got {other:?}"),
    }
    assert!(nothing(&mut product).await.is_none());

    // A crossing travels to the importing team only.
    let crossing = msg("research", "product", "findings/daily", "for product");
    bus.publish(crossing.clone()).await.unwrap();
    match next(&mut product).await {
        Some(Delivery::Message(m)) => {
            assert_eq!(*m, crossing);
            assert!(m.crossed());
        }
        other => panic!("product got {other:?}"),
    }
    assert!(nothing(&mut research).await.is_none());

    // Malformed messages are refused before they leave.
    let big = msg("research", "research", "a", &"x".repeat(MAX_MESSAGE + 1));
    assert!(bus.publish(big).await.is_err());
    let mut no_share = msg("research", "product", "a", "x");
    no_share.share = None;
    assert!(bus.publish(no_share).await.is_err());
    let mut inside_with_share = msg("research", "product", "a", "x");
    inside_with_share.to = name("research");
    assert!(bus.publish(inside_with_share).await.is_err());
    // The largest message passes.
    let largest = msg("research", "research", "a", &"\u{1f}".repeat(MAX_MESSAGE));
    bus.publish(largest.clone()).await.unwrap();
    assert!(matches!(next(&mut research).await, Some(Delivery::Message(m)) if *m == largest));
}

#[tokio::test]
async fn in_process_bus() {
    scenarios(&CtxBus::memory()).await;
}

#[tokio::test]
async fn nats_bus() {
    let server = NatsServer::start().expect("a real nats-server is needed for this test");
    let client = async_nats::connect(server.url()).await.unwrap();
    scenarios(&CtxBus::nats(client, name("roster"))).await;
}

#[tokio::test]
async fn a_slow_receiver_is_told_what_it_lost() {
    let bus = CtxBus::memory();
    let mut feed = bus.subscribe(&name("t")).await.unwrap();
    for i in 0..5000 {
        bus.publish(msg("t", "t", "a", &i.to_string()))
            .await
            .unwrap();
    }
    match next(&mut feed).await {
        Some(Delivery::Dropped(n)) => assert_eq!(n, 5000 - 4096),
        other => panic!("expected a drop count, got {other:?}"),
    }
    match next(&mut feed).await {
        Some(Delivery::Message(m)) => assert_eq!(m.message, (5000 - 4096).to_string()),
        other => panic!("expected the oldest kept message, got {other:?}"),
    }
}

#[tokio::test]
async fn forged_nats_messages_never_reach_a_team() {
    let server = NatsServer::start().expect("a real nats-server is needed for this test");
    let client = async_nats::connect(server.url()).await.unwrap();
    let ns = name("roster");
    let bus = CtxBus::nats(client.clone(), ns.clone());
    let mut product = bus.subscribe(&name("product")).await.unwrap();
    // Garbage, a message for another team sent to product's subject, a topic that is not
    // the subject's, unknown fields: all dropped.
    let other_team = msg("research", "research", "a", "x");
    let wrong_topic = msg("research", "product", "a", "x");
    let mut unknown = serde_json::to_value(msg("product", "product", "a", "x")).unwrap();
    unknown["extra"] = serde_json::json!(1);
    let forged: Vec<(String, Vec<u8>)> = vec![
        ("roster.ctx.product.a".into(), b"not json".to_vec()),
        (
            "roster.ctx.product.a".into(),
            serde_json::to_vec(&other_team).unwrap(),
        ),
        (
            "roster.ctx.product.b".into(),
            serde_json::to_vec(&wrong_topic).unwrap(),
        ),
        (
            "roster.ctx.product.a".into(),
            serde_json::to_vec(&unknown).unwrap(),
        ),
    ];
    for (subject, payload) in forged {
        client.publish(subject, payload.into()).await.unwrap();
    }
    let good = msg("product", "product", "a", "fine");
    bus.publish(good.clone()).await.unwrap();
    // The first thing product sees is the good message: everything before it was dropped.
    match next(&mut product).await {
        Some(Delivery::Message(m)) => assert_eq!(*m, good),
        other => panic!("product got {other:?}"),
    }
}

/// On the in-process bus each team has its own channel: a flood in one team makes only its own
/// receivers lag, never another team's, whose drop counts would otherwise reveal the other
/// team's traffic.
#[tokio::test]
async fn a_flood_in_one_team_does_not_make_another_lag() {
    let bus = CtxBus::memory();
    let mut quiet = bus.subscribe(&name("quiet")).await.unwrap();
    let mut busy = bus.subscribe(&name("busy")).await.unwrap();
    bus.publish(msg("quiet", "quiet", "a", "before"))
        .await
        .unwrap();
    for i in 0..10_000 {
        bus.publish(msg("busy", "busy", "a", &i.to_string()))
            .await
            .unwrap();
    }
    bus.publish(msg("quiet", "quiet", "a", "after"))
        .await
        .unwrap();
    for want in ["before", "after"] {
        match next(&mut quiet).await {
            Some(Delivery::Message(m)) => assert_eq!(m.message, want),
            other => panic!("quiet expected {want:?}, got {other:?}"),
        }
    }
    match next(&mut busy).await {
        Some(Delivery::Dropped(n)) => assert_eq!(n, 10_000 - 4096),
        other => panic!("busy expected its own drop count, got {other:?}"),
    }
    // A team nobody listens to: its messages go nowhere, and its first receiver starts empty.
    bus.publish(msg("nobody", "nobody", "a", "lost"))
        .await
        .unwrap();
    let mut late = bus.subscribe(&name("nobody")).await.unwrap();
    assert!(nothing(&mut late).await.is_none());
}

/// A NATS receiver that does not keep up loses what its feed's backlog (1024 messages) cannot
/// hold, and is told how many, exactly where they were lost: every message published is either
/// delivered, in order, or counted in the `Dropped` between its neighbours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_nats_receiver_is_told_what_it_lost() {
    let server = NatsServer::start().expect("a real nats-server is needed for this test");
    let client = async_nats::connect(server.url()).await.unwrap();
    let bus = CtxBus::nats(client.clone(), name("roster"));
    let mut feed = bus.subscribe(&name("t")).await.unwrap();
    // On the same connection: when it has everything, so has the feed's subscription.
    let mut raw = client.subscribe("roster.ctx.t.>").await.unwrap();
    let probe = msg("t", "t", "probe", "");
    bus.publish(probe.clone()).await.unwrap();
    assert!(matches!(next(&mut feed).await, Some(Delivery::Message(m)) if *m == probe));
    assert!(tokio::time::timeout(Duration::from_secs(5), raw.next())
        .await
        .unwrap()
        .is_some());

    // The receiver reads nothing while 5000 messages arrive.
    let total: u64 = 5000;
    for i in 0..total {
        bus.publish(msg("t", "t", "a", &i.to_string()))
            .await
            .unwrap();
    }
    for _ in 0..total {
        tokio::time::timeout(Duration::from_secs(5), raw.next())
            .await
            .unwrap()
            .unwrap();
    }

    let (mut delivered, mut dropped, mut expected) = (0u64, 0u64, 0u64);
    while delivered + dropped < total {
        match next(&mut feed).await {
            Some(Delivery::Message(m)) => {
                let i: u64 = m.message.parse().unwrap();
                assert_eq!(
                    i, expected,
                    "a message lost without a count, or out of order"
                );
                expected += 1;
                delivered += 1;
            }
            Some(Delivery::Dropped(n)) => {
                assert!(n > 0);
                expected += n;
                dropped += n;
            }
            None => panic!(
                "the feed ended, or lost {} messages silently",
                total - delivered - dropped
            ),
        }
    }
    assert_eq!(delivered + dropped, total);
    assert!(
        dropped > 0,
        "the receiver kept up with a 5000-message flood it never read"
    );
    assert!(
        delivered >= 1024,
        "the backlog held fewer than 1024 messages"
    );
    assert!(nothing(&mut feed).await.is_none());
}
