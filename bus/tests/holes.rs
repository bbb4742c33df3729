//! A stream that is not the outbox's clean sequence — holes it left or an operator made, events
//! trimmed by the stream's limits, a forgery that won the race for a position, replays of old
//! events — against a real `nats-server`: readers say what is missing or refused and go on,
//! and the outbox neither republishes what the stream holds nor skips what it lacks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use roster_bus::verify::Notice;
use roster_bus::{wire, EventSubscription, Outbox, OutboxConfig, Received, SubscribeOptions};
use roster_core::envelope::Envelope;

use common::*;

/// What a subscription brought until its limit: the positions delivered, the notices (with the
/// position they came with), and the refusals.
#[derive(Debug, Default)]
struct Read {
    delivered: Vec<u64>,
    notices: Vec<(u64, Notice)>,
    refused: Vec<String>,
}

async fn read_all(sub: &mut EventSubscription) -> Read {
    let mut r = Read::default();
    while let Some(m) = within("a message", sub.receive()).await.unwrap() {
        match m {
            Received::Event(d) => {
                if let Some(n) = d.notice.clone() {
                    r.notices.push((d.seq, n));
                }
                r.delivered.push(d.seq);
                d.ack().await.unwrap();
            }
            Received::Refused(x) => r.refused.push(x.to_string()),
        }
    }
    r
}

/// A server whose stream the operator made with a 300 ms duplicate window (so that a replay
/// published after it is stored), and a client of it.
async fn short_window() -> (roster_bus::NatsServer, async_nats::Client) {
    let server = server();
    let client = client(&server).await;
    operator_stream(
        &client,
        stream::Config {
            duplicate_window: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;
    (server, client)
}

/// Creates the events stream of namespace `roster` as an operator might: with limits.
async fn operator_stream(client: &async_nats::Client, config: stream::Config) -> stream::Stream {
    jetstream::new(client.clone())
        .create_stream(stream::Config {
            name: "roster_events".into(),
            subjects: vec!["roster.events.>".into()],
            allow_direct: true,
            ..config
        })
        .await
        .unwrap()
}

/// Messages deleted from the stream (by an operator, or never published): each reader says
/// which positions are missing and delivers every event after them. Before, the first event
/// after a hole was refused as a gap, and so was every later one, for good (a durable
/// acknowledged them all away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_in_the_stream_is_said_and_readers_go_on() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 9);
    publish_all(&log, &client).await;
    let stream = stream(&client, "roster").await;
    // Positions 4, 7 and 8 (stream sequences are positions + 1).
    for seq in [5, 8, 9] {
        stream.delete_message(seq).await.unwrap();
    }
    for durable in [None, Some(name("audit"))] {
        let mut sub = EventSubscription::open(
            &client,
            &name("roster"),
            SubscribeOptions {
                durable,
                limit: Some(7),
                ..SubscribeOptions::default()
            },
        )
        .await
        .unwrap();
        let r = read_all(&mut sub).await;
        assert_eq!(r.delivered, vec![0, 1, 2, 3, 5, 6, 9], "{r:?}");
        assert_eq!(r.refused, Vec::<String>::new());
        assert_eq!(
            r.notices,
            vec![
                (5, Notice::Gap { first: 4, last: 4 }),
                (9, Notice::Gap { first: 7, last: 8 })
            ]
        );
    }
}

/// A stream limited to 100 messages, trimmed under a durable reader that had read 64 events:
/// the reader says positions 64 to 99 are gone and delivers 100 to 199.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_trimmed_under_a_durable_reader_is_said_and_it_goes_on() {
    let server = server();
    let client = client(&server).await;
    operator_stream(
        &client,
        stream::Config {
            max_messages: 100,
            ..Default::default()
        },
    )
    .await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 69);
    publish_all(&log, &client).await;
    let mut sub = EventSubscription::open(
        &client,
        &name("roster"),
        SubscribeOptions {
            durable: Some(name("audit")),
            limit: Some(164),
            ..SubscribeOptions::default()
        },
    )
    .await
    .unwrap();
    // One pull: 64 events.
    assert_eq!(take(&mut sub, 64).await, (0..64).collect::<Vec<_>>());
    retire_many(&log, t, 130);
    publish_all(&log, &client).await;
    let r = read_all(&mut sub).await;
    assert_eq!(r.delivered, (100..200).collect::<Vec<_>>(), "{r:?}");
    assert_eq!(r.refused, Vec::<String>::new());
    assert_eq!(
        r.notices,
        vec![(
            100,
            Notice::Gap {
                first: 64,
                last: 99
            }
        )]
    );
}

/// A well-formed forgery at position 5 that links to event 4 reaches the stream before the
/// real event 5 (as if it won the race). A reader cannot tell it from the real one and
/// delivers it; it refuses the real 5, saying so, and delivers every real event after it, the
/// first with a notice. Before, every real event after the forgery was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgery_that_wins_a_position_costs_one_real_event_and_no_more() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 4);
    publish_all(&log, &client).await;
    let four = all(&log).pop().unwrap();
    let mut body = four.body().clone();
    body.seq = 5;
    body.id = "evt_0192f0c0000070008000000000000009".parse().unwrap();
    let forged = Envelope::seal(body, four.hash());
    jetstream::new(client.clone())
        .publish_with_headers(
            "roster.events.research.AgentRetired",
            wire::headers(&forged),
            wire::encode(&forged).unwrap(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    retire_many(&log, t, 5);
    publish_all(&log, &client).await;
    assert_eq!(
        stored_seqs(&client, "roster").await,
        vec![0, 1, 2, 3, 4, 5, 5, 6, 7, 8, 9]
    );

    let mut sub = EventSubscription::open(
        &client,
        &name("roster"),
        SubscribeOptions {
            limit: Some(10),
            ..SubscribeOptions::default()
        },
    )
    .await
    .unwrap();
    let r = read_all(&mut sub).await;
    assert_eq!(r.delivered, (0..10).collect::<Vec<_>>(), "{r:?}");
    assert_eq!(r.refused.len(), 1, "{r:?}");
    assert!(
        r.refused[0].contains("refused message 7") && r.refused[0].contains("position 5 again"),
        "{}",
        r.refused[0]
    );
    assert_eq!(r.notices, vec![(6, Notice::Fork { seq: 6 })]);
}

/// Event 0 published again by someone else once the duplicate window has passed (so JetStream
/// stores it): the restarted outbox finds its last event behind the replay and publishes only
/// what is new. Before, it took the replay for the stream's end and published every event
/// after 0 a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_event_makes_the_outbox_republish_nothing() {
    let (_server, client) = short_window().await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 4);
    publish_all(&log, &client).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let zero = all(&log).remove(0);
    let ack = jetstream::new(client.clone())
        .publish_with_headers(
            "roster.events.research.TeamCreated",
            wire::headers(&zero),
            wire::encode(&zero).unwrap(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!ack.duplicate, "the replay is stored");
    retire_many(&log, t, 1);
    publish_all(&log, &client).await;
    assert_eq!(
        stored_seqs(&client, "roster").await,
        vec![0, 1, 2, 3, 4, 0, 5]
    );
}

/// The outbox published 0 to 9; the log has grown to 300 events since. Event 299, put at the
/// stream's end by someone who read it, is too far past the checkpoint to be the outbox's own
/// last publish: it is stepped over, and 10 to 299 are published (before, the outbox started
/// after 299 and 10 to 298 never reached the stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_far_past_the_checkpoint_does_not_make_the_outbox_skip() {
    let (_server, client) = short_window().await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 9);
    publish_all(&log, &client).await;
    retire_many(&log, t, 290);
    let last = all(&log).pop().unwrap();
    assert_eq!(last.seq, 299);
    jetstream::new(client.clone())
        .publish_with_headers(
            "roster.events.research.AgentRetired",
            wire::headers(&last),
            wire::encode(&last).unwrap(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbox = Outbox::spawn_with(
        log.clone(),
        client.clone(),
        name("roster"),
        OutboxConfig::default().with_window(16),
    );
    within("the outbox", outbox.published(300)).await.unwrap();
    outbox.stop().await;
    let mut stored = stored_seqs(&client, "roster").await;
    assert_eq!(stored[10], 299);
    stored.remove(10);
    assert_eq!(stored, (0..300).collect::<Vec<_>>());
}
