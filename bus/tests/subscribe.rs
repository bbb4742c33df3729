//! Outside subscribers against a real `nats-server` fed by a real outbox: durable resumes
//! without gap or duplicate, ordered subscriptions filter by team and kind and start at a
//! log position, aligned with the stream or not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use async_nats::jetstream;
use roster_bus::{wire, BusError, EventSubscription, Received, SubscribeOptions};
use roster_core::envelope::Envelope;
use roster_core::port::LogRead;
use roster_store::SledLog;

use common::*;

fn options() -> SubscribeOptions {
    SubscribeOptions::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscription_resumes_with_exactly_the_rest() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 99);
    publish_all(&log, &client).await;
    let durable = SubscribeOptions {
        durable: Some(name("audit")),
        ..options()
    };

    // A counted read pulls exactly what it prints.
    let mut sub = EventSubscription::open(
        &client,
        &name("roster"),
        SubscribeOptions {
            limit: Some(7),
            ..durable.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(take(&mut sub, 7).await, (0..7).collect::<Vec<_>>());
    assert!(sub.next().await.unwrap().is_none(), "the limit was reached");
    sub.close().await.unwrap();

    // An open-ended read stopped midway hands back what it pulled and did not deliver.
    let mut sub = EventSubscription::open(&client, &name("roster"), durable.clone())
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 13).await, (7..20).collect::<Vec<_>>());
    sub.close().await.unwrap();

    retire_many(&log, t, 30);
    publish_all(&log, &client).await;
    let mut sub = EventSubscription::open(&client, &name("roster"), durable.clone())
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 110).await, (20..130).collect::<Vec<_>>());
    sub.close().await.unwrap();

    // Nothing left to deliver or to redeliver.
    let info = jetstream::new(client.clone())
        .get_stream("roster_events")
        .await
        .unwrap()
        .consumer_info("audit")
        .await
        .unwrap();
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 0);
    assert_eq!(info.delivered.stream_sequence, 130);
}

/// Each subscriber of the name below is a client of its own, as a `roster subscribe` process
/// is, gone when it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_resumes_in_order_after_a_reader_that_stopped_while_waiting_or_crashed() {
    let server = server();
    let publisher = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 4);
    publish_all(&log, &publisher).await;
    let ns = name("roster");
    let durable = SubscribeOptions {
        durable: Some(name("audit")),
        ..options()
    };

    // A reader that has read everything there was, and stops cleanly while its pull still
    // waits on the server for more.
    let c = client(&server).await;
    let mut sub = EventSubscription::open(&c, &ns, durable.clone())
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 5).await, (0..5).collect::<Vec<_>>());
    sub.close().await.unwrap();
    c.flush().await.unwrap();
    drop(c);
    // Published after it left: nobody has read these.
    retire_many(&log, t, 5);
    publish_all(&log, &publisher).await;

    // The next reader gets them first, then what comes later: never the later ones before.
    let c = client(&server).await;
    let mut sub = EventSubscription::open(&c, &ns, durable.clone())
        .await
        .unwrap();
    retire_many(&log, t, 5);
    publish_all(&log, &publisher).await;
    assert_eq!(take(&mut sub, 10).await, (5..15).collect::<Vec<_>>());

    // A reader that dies holding an event it did not acknowledge (killed while printing it, or
    // handed it by the server just as it stopped): the next one gets that event again (at
    // least once), then the rest, in order.
    retire_many(&log, t, 5);
    publish_all(&log, &publisher).await;
    let d = within("an event", sub.next()).await.unwrap().unwrap();
    assert_eq!(d.seq, 15);
    drop(d);
    drop(sub);
    drop(c);
    let c = client(&server).await;
    let mut sub = EventSubscription::open(&c, &ns, durable.clone())
        .await
        .unwrap();
    retire_many(&log, t, 5);
    publish_all(&log, &publisher).await;
    assert_eq!(take(&mut sub, 10).await, (15..25).collect::<Vec<_>>());
    sub.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_with_another_filter_is_refused_with_a_clear_error() {
    let server = server();
    let client = client(&server).await;
    let ns = name("roster");
    let first = SubscribeOptions {
        durable: Some(name("x")),
        team: Some(name("research")),
        ..options()
    };
    EventSubscription::open(&client, &ns, first.clone())
        .await
        .unwrap();
    let other = SubscribeOptions {
        kind: Some("AgentHired".into()),
        ..first
    };
    match EventSubscription::open(&client, &ns, other).await {
        Err(e @ BusError::DurableMismatch { .. }) => {
            let text = e.to_string();
            assert!(text.contains("roster.events.research.*"), "{text}");
            assert!(text.contains("roster.events.research.AgentHired"), "{text}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    match EventSubscription::open(
        &client,
        &ns,
        SubscribeOptions {
            kind: Some("Nonsense".into()),
            ..options()
        },
    )
    .await
    {
        Err(BusError::UnknownKind(k)) => assert_eq!(k, "Nonsense"),
        other => panic!("expected an unknown kind, got {other:?}"),
    }
}

/// Every envelope of `log` that `keep` selects, by position.
fn expected(log: &SledLog, keep: impl Fn(&Envelope) -> bool) -> Vec<u64> {
    all(log).iter().filter(|e| keep(e)).map(|e| e.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_subscriptions_filter_by_team_and_kind_and_start_at_a_position() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let research = team(&log, "research", 1);
    let ops = team(&log, "ops", 2);
    for _ in 0..5 {
        retire_many(&log, research, 7);
        start_many(&log, ops, 3);
        start_many(&log, research, 2);
        retire_many(&log, ops, 4);
    }
    publish_all(&log, &client).await;
    let ns = name("roster");
    let kind = |e: &Envelope| e.event.kind();

    let cases: Vec<(SubscribeOptions, Vec<u64>)> = vec![
        (
            SubscribeOptions {
                team: Some(name("ops")),
                ..options()
            },
            expected(&log, |e| e.team == ops),
        ),
        (
            SubscribeOptions {
                kind: Some("AgentStarted".into()),
                ..options()
            },
            expected(&log, |e| kind(e) == "AgentStarted"),
        ),
        (
            SubscribeOptions {
                team: Some(name("research")),
                kind: Some("AgentStarted".into()),
                ..options()
            },
            expected(&log, |e| e.team == research && kind(e) == "AgentStarted"),
        ),
        (
            SubscribeOptions {
                from: 50,
                ..options()
            },
            (50..log.len()).collect(),
        ),
        (
            SubscribeOptions {
                from: 50,
                team: Some(name("ops")),
                ..options()
            },
            expected(&log, |e| e.seq >= 50 && e.team == ops),
        ),
    ];
    for (options, want) in cases {
        let mut sub = EventSubscription::open(
            &client,
            &ns,
            SubscribeOptions {
                limit: Some(want.len() as u64),
                ..options.clone()
            },
        )
        .await
        .unwrap();
        assert_eq!(take(&mut sub, want.len()).await, want, "{options:?}");
        assert!(sub.next().await.unwrap().is_none());
    }

    // Live: an event published after the subscription opened arrives too.
    let mut sub = EventSubscription::open(
        &client,
        &ns,
        SubscribeOptions {
            from: log.len(),
            ..options()
        },
    )
    .await
    .unwrap();
    start_many(&log, ops, 1);
    publish_all(&log, &client).await;
    assert_eq!(take(&mut sub, 1).await, vec![log.len() - 1]);
}

/// A stream whose sequences are not positions + 1 and whose events are not in log order (one
/// event published out of order, by hand: what an outbox before conditional publishing could
/// leave after a reconnect; the outbox now never does it): `from` is applied to the
/// `Roster-Seq` of each message, and what comes after a later position is refused, said, and
/// not delivered (the chain can only be read forwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unaligned_stream_still_starts_at_the_position_asked_for() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 19);
    let js = jetstream::new(client.clone());
    roster_bus::ensure_events_stream(&js, &name("roster"))
        .await
        .unwrap();
    let envelopes = all(&log);
    let order = [5].into_iter().chain(0..5).chain(6..20);
    for e in order.map(|s| &envelopes[s]) {
        js.publish_with_headers(
            format!("roster.events.research.{}", e.event.kind()),
            wire::headers(e),
            wire::encode(e).unwrap(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // The stream: 5, 0, 1, 2, 3, 4, 6, 7, …, 19 — each position once.
    let mut want = vec![5, 0, 1, 2, 3, 4];
    want.extend(6..20);
    assert_eq!(stored_seqs(&client, "roster").await, want);

    let mut sub = EventSubscription::open(
        &client,
        &name("roster"),
        SubscribeOptions {
            from: 3,
            limit: Some(15),
            ..options()
        },
    )
    .await
    .unwrap();
    let (mut delivered, mut refused) = (Vec::new(), Vec::new());
    while let Some(r) = within("a message", sub.receive()).await.unwrap() {
        match r {
            Received::Event(d) => delivered.push(d.seq),
            Received::Refused(r) => refused.push(r.to_string()),
        }
    }
    let mut want = vec![5];
    want.extend(6..20);
    assert_eq!(delivered, want);
    assert_eq!(refused.len(), 5, "{refused:?}");
    for (i, r) in refused.iter().enumerate() {
        assert!(
            r.contains(&format!("position {i} again: position 5 was read already")),
            "{r}"
        );
    }
}
