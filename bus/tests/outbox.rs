//! The outbox against a real `nats-server` and a real `SledLog`: every committed event reaches
//! JetStream once, in order, through outages, crashes and lost streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use roster_bus::outbox::CHECKPOINT;
use roster_bus::{subject, wire, Outbox, OutboxConfig};
use roster_core::port::{Checkpoints, LogRead};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_stream_in_order_with_its_subject_and_headers() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let research = team(&log, "research", 1);
    let ops = team(&log, "ops", 2);
    retire_many(&log, research, 300);
    start_many(&log, ops, 20);
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    // Some before it started, some while it runs.
    retire_many(&log, ops, 150);
    start_many(&log, research, 30);
    let len = log.len();
    within("the outbox", outbox.published(len)).await.unwrap();

    let envelopes = all(&log);
    let stored = stored(&client, "roster").await;
    assert_eq!(stored.len(), envelopes.len());
    for (m, e) in stored.iter().zip(&envelopes) {
        let team = if e.team == research {
            "research"
        } else {
            "ops"
        };
        assert_eq!(m.stream_seq, e.seq + 1);
        assert_eq!(m.roster_seq(), e.seq);
        assert_eq!(m.msg_id(), e.id.to_string());
        assert!(m.msg_id().starts_with("evt_"));
        assert_eq!(
            m.subject,
            format!("roster.events.{team}.{}", e.event.kind())
        );
        assert_eq!(m.payload, serde_json::to_vec(e).unwrap());
    }
    let status = outbox.stop().await;
    assert_eq!(status.next, len);
    assert!(status.connected);
    assert_eq!(status.last_error, None);
    assert_eq!(log.checkpoint(CHECKPOINT).unwrap(), Some(len));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_delays_events_but_loses_and_repeats_none() {
    let mut server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 199);
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    within("the first events", outbox.published(200))
        .await
        .unwrap();

    server.kill().unwrap();
    // The runtime goes on: appends do not wait for NATS.
    retire_many(&log, t, 300);
    eventually("the outbox to notice", || {
        let s = outbox.status();
        !s.connected || s.last_error.is_some()
    })
    .await;
    assert!(outbox.status().next <= 500);
    retire_many(&log, t, 100);

    server.restart().unwrap();
    within("the events held back", outbox.published(log.len()))
        .await
        .unwrap();
    let seqs = stored_seqs(&client, "roster").await;
    assert_eq!(
        seqs,
        (0..600).collect::<Vec<_>>(),
        "each event exactly once, in order"
    );
    let status = outbox.stop().await;
    assert_eq!(status.last_error, None);
    assert_eq!(log.checkpoint(CHECKPOINT).unwrap(), Some(600));
}

/// NATS down when the runtime starts: `connect` still returns a client, the outbox waits, and
/// publishes everything once the server is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_at_start_is_waited_for() {
    let mut server = server();
    server.kill().unwrap();
    let client = within("connect", roster_bus::connect(&url(&server)))
        .await
        .unwrap();
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 49);
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    assert_eq!(outbox.status().next, 0);
    server.restart().unwrap();
    within("the events", outbox.published(50)).await.unwrap();
    assert!(outbox.status().connected);
    outbox.stop().await;
    assert_eq!(
        stored_seqs(&client, "roster").await,
        (0..50).collect::<Vec<_>>()
    );
}

/// A crash after publishing, before the checkpoint caught up: the next outbox republishes
/// nothing — a plain subscriber of `roster.events.>` (which sees even the publishes the
/// stream's dedup drops) sees only the new events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_the_checkpoint_republishes_nothing_a_consumer_sees() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 599);
    let outbox = Outbox::spawn_with(
        log.clone(),
        client.clone(),
        name("roster"),
        OutboxConfig::default().with_window(64),
    );
    within("the events", outbox.published(600)).await.unwrap();
    // As if it had died before its last checkpoint writes: the checkpoint set back.
    outbox.stop().await;
    assert_eq!(log.checkpoint(CHECKPOINT).unwrap(), Some(600));
    log.set_checkpoint(CHECKPOINT, 450).unwrap();

    let mut raw = client.subscribe("roster.events.>").await.unwrap();
    client.flush().await.unwrap();
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    retire_many(&log, t, 5);
    within("the new events", outbox.published(605))
        .await
        .unwrap();
    let status = outbox.stop().await;
    assert_eq!(status.next, 605);
    assert_eq!(log.checkpoint(CHECKPOINT).unwrap(), Some(605));
    assert_eq!(
        stored_seqs(&client, "roster").await,
        (0..605).collect::<Vec<_>>()
    );
    assert_eq!(
        raw_seen(&client, &mut raw).await,
        vec![600, 601, 602, 603, 604],
        "the new outbox published again what the stream held"
    );
}

/// A stream with a gap: positions 220, 221 and 289 never reached it but later ones did (what an
/// outbox that did not publish conditionally could leave after a reconnect; rebuilt here by
/// hand). The outbox never fills the gap: publishing 220 after 299 would put the stream out of
/// log order, and subscribers rely on its order. The gap stays (the outbox warns), and the
/// outbox goes on after the stream's last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_stream_is_never_filled_out_of_order() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 299);
    let envelopes = all(&log);
    let js = jetstream::new(client.clone());
    roster_bus::ensure_events_stream(&js, &name("roster"))
        .await
        .unwrap();
    let lost = [220, 221, 289];
    for e in &envelopes {
        if lost.contains(&e.seq) {
            continue;
        }
        publish_by_hand(&js, e).await;
    }
    // The checkpoint from before the gap, as if the outbox that left it had died there.
    log.set_checkpoint(CHECKPOINT, 200).unwrap();

    let mut raw = client.subscribe("roster.events.>").await.unwrap();
    client.flush().await.unwrap();
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    retire_many(&log, t, 5);
    within("the new events", outbox.published(305))
        .await
        .unwrap();
    let status = outbox.stop().await;
    assert_eq!(status.last_error, None);
    let expected: Vec<u64> = (0..305).filter(|s| !lost.contains(s)).collect();
    assert_eq!(stored_seqs(&client, "roster").await, expected);
    assert_eq!(
        raw_seen(&client, &mut raw).await,
        vec![300, 301, 302, 303, 304],
        "the outbox published a position before the stream's last one"
    );
}

/// The server itself keeps the order: a publish of the outbox that does not follow the stream's
/// last message is refused. Here the outbox's publishes of positions 10 and 11 are held back on
/// the way while position 11 reaches the stream by hand; when they arrive, 10 is refused (it
/// would land after 11), the outbox reconciles and goes on after 11. Position 10 is left out
/// for good, like any gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_an_event_that_would_land_after_a_later_one() {
    let server = server();
    let client = client(&server).await;
    let valve = Valve::start(&server).await;
    let through = roster_bus::connect_now(&valve.url(), Duration::from_secs(5))
        .await
        .unwrap();
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 9);
    let mut config = OutboxConfig::default();
    // No acknowledgement times out while the valve is held: the refusal is what ends the session.
    config.ack_timeout = Duration::from_secs(60);
    let outbox = Outbox::spawn_with(log.clone(), through, name("roster"), config);
    within("the first events", outbox.published(10))
        .await
        .unwrap();

    valve.hold();
    retire_many(&log, t, 2);
    let e11 = &all(&log)[11];
    publish_by_hand(&jetstream::new(client.clone()), e11).await;
    valve.release();
    // 10 is never acknowledged: reaching 12 means the outbox reconciled past the stream's end.
    within("the reconcile", outbox.published(12)).await.unwrap();
    assert_eq!(
        stored_seqs(&client, "roster").await,
        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11],
        "position 10 was stored after 11"
    );
    let error = outbox.status().last_error.unwrap();
    assert!(
        error.contains("event 10 was not stored") && error.contains("refused"),
        "{error}"
    );

    retire_many(&log, t, 3);
    within("the next events", outbox.published(15))
        .await
        .unwrap();
    let status = outbox.stop().await;
    assert_eq!(status.last_error, None);
    let stored = stored(&client, "roster").await;
    assert_eq!(
        stored.iter().map(Stored::roster_seq).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]
    );
    assert_eq!(
        stored.iter().map(|m| m.stream_seq).collect::<Vec<_>>(),
        (1..=14).collect::<Vec<_>>()
    );
}

/// The server killed and restarted while the outbox is publishing a burst with a full window in
/// flight, three times: publishes lost with the connection while later ones go out on the new
/// one must not land out of order. The stream ends up complete, in order, aligned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_through_server_kills_mid_burst() {
    let mut server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 29_999);
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    for at in [3_000, 10_000, 20_000] {
        eventually("the burst to go on", || outbox.status().next >= at).await;
        server.kill().unwrap();
        server.restart().unwrap();
    }
    within("the whole burst", outbox.published(30_000))
        .await
        .unwrap();
    let stored = stored(&client, "roster").await;
    assert_eq!(
        stored.iter().map(Stored::roster_seq).collect::<Vec<_>>(),
        (0..30_000).collect::<Vec<_>>(),
        "each event once, in order"
    );
    assert!(stored.iter().all(|m| m.stream_seq == m.roster_seq() + 1));
    outbox.stop().await;
}

/// JetStream checks `Nats-Msg-Id` before a publish's condition, and a purge does not make it
/// forget the ids it saw: events published again into a stream purged within its duplicate
/// window are acknowledged as duplicates of messages it no longer holds. The outbox does not
/// take that for stored: it publishes them again until the window has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_purged_within_its_duplicate_window_gets_every_event_again() {
    use async_nats::jetstream::stream::Config;
    let server = server();
    let client = client(&server).await;
    let js = jetstream::new(client.clone());
    // An operator's stream with a short duplicate window, so the test does not wait 2 minutes.
    js.create_stream(Config {
        name: "roster_events".into(),
        subjects: vec!["roster.events.>".into()],
        duplicate_window: Duration::from_secs(2),
        allow_direct: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 19);
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    within("the events", outbox.published(20)).await.unwrap();
    outbox.stop().await;

    js.get_stream("roster_events")
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    within("the events again", outbox.published(20))
        .await
        .unwrap();
    let status = outbox.stop().await;
    assert_eq!(status.last_error, None);
    let stored = stored(&client, "roster").await;
    assert_eq!(
        stored.iter().map(Stored::roster_seq).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    assert_eq!(
        stored.iter().map(|m| m.stream_seq).collect::<Vec<_>>(),
        (21..=40).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_or_a_new_server_gets_every_event_again() {
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 99);
    let first = server();
    let client1 = client(&first).await;
    let outbox = Outbox::spawn(log.clone(), client1.clone(), name("roster"));
    within("the events", outbox.published(100)).await.unwrap();
    outbox.stop().await;

    // The stream deleted: a fresh outbox publishes everything again.
    jetstream::new(client1.clone())
        .delete_stream("roster_events")
        .await
        .unwrap();
    let outbox = Outbox::spawn(log.clone(), client1.clone(), name("roster"));
    within("the events again", outbox.published(100))
        .await
        .unwrap();
    outbox.stop().await;
    assert_eq!(
        stored_seqs(&client1, "roster").await,
        (0..100).collect::<Vec<_>>()
    );

    // Another server altogether.
    let second = server();
    let client2 = client(&second).await;
    let outbox = Outbox::spawn(log.clone(), client2.clone(), name("roster"));
    retire_many(&log, t, 10);
    within("the events on the new server", outbox.published(110))
        .await
        .unwrap();
    outbox.stop().await;
    assert_eq!(
        stored_seqs(&client2, "roster").await,
        (0..110).collect::<Vec<_>>()
    );
}

/// While the outbox runs, the server comes back empty (its store lost): the outbox notices at
/// its reconcile and publishes every event again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_comes_back_empty_gets_every_event_again() {
    let mut server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 149);
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    within("the events", outbox.published(150)).await.unwrap();
    server.kill().unwrap();
    std::fs::remove_dir_all(server.store_dir()).unwrap();
    server.restart().unwrap();
    retire_many(&log, t, 50);
    // Positions 150.. cannot be acknowledged by a server without the stream, so reaching 200
    // means the outbox found the empty stream and published everything again.
    within("the events after the loss", outbox.published(200))
        .await
        .unwrap();
    assert_eq!(
        stored_seqs(&client, "roster").await,
        (0..200).collect::<Vec<_>>()
    );
    outbox.stop().await;
}

/// Two data directories on one namespace: the second outbox finds another log's events in the
/// stream and publishes nothing into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_refuses_a_stream_that_holds_another_logs_events() {
    let server = server();
    let client = client(&server).await;
    let (_a, first) = log();
    let t = team(&first, "research", 1);
    retire_many(&first, t, 9);
    let outbox = Outbox::spawn(first.clone(), client.clone(), name("roster"));
    within("the first log's events", outbox.published(10))
        .await
        .unwrap();
    outbox.stop().await;

    let (_b, second) = log();
    let u = team(&second, "research", 2);
    retire_many(&second, u, 19);
    let outbox = Outbox::spawn(second.clone(), client.clone(), name("roster"));
    eventually("the refusal", || outbox.status().last_error.is_some()).await;
    let status = outbox.stop().await;
    let error = status.last_error.unwrap();
    assert!(error.contains("does not hold this log's events"), "{error}");
    assert_eq!(status.next, 0);
    assert_eq!(
        stored_seqs(&client, "roster").await,
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(second.checkpoint(CHECKPOINT).unwrap(), None);
}

/// The outbox creates the stream as documented, and leaves an existing one as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_created_on_disk_with_dedup_and_never_clobbered() {
    use async_nats::jetstream::stream::{Config, StorageType};
    let server = server();
    let client = client(&server).await;
    let js = jetstream::new(client.clone());
    let ns = name("my-ns");
    let stream = roster_bus::ensure_events_stream(&js, &ns).await.unwrap();
    let config = &stream.cached_info().config;
    assert_eq!(config.name, "my_ns_events");
    assert_eq!(config.subjects, vec![subject::all_events(&ns)]);
    assert_eq!(config.storage, StorageType::File);
    assert!(config.duplicate_window >= std::time::Duration::from_secs(120));

    // An operator's own stream with a limit: kept.
    js.delete_stream("my_ns_events").await.unwrap();
    js.create_stream(Config {
        name: "my_ns_events".into(),
        subjects: vec!["my-ns.events.>".into()],
        max_messages: 12345,
        ..Config::default()
    })
    .await
    .unwrap();
    let stream = roster_bus::ensure_events_stream(&js, &ns).await.unwrap();
    assert_eq!(stream.cached_info().config.max_messages, 12345);
}

/// Publishes `e` as the outbox would, without its condition: by hand.
async fn publish_by_hand(js: &jetstream::Context, e: &roster_core::envelope::Envelope) {
    let subject = format!("roster.events.research.{}", e.event.kind());
    js.publish_with_headers(subject, wire::headers(e), wire::encode(e).unwrap())
        .await
        .unwrap()
        .await
        .unwrap();
}

/// What a plain subscriber of `roster.events.>` received until now: a marker published after
/// everything else on the same connection arrives last, so nothing published before it is
/// missed. (The marker lands in the stream too: call this after checking the stream.)
async fn raw_seen(client: &async_nats::Client, sub: &mut async_nats::Subscriber) -> Vec<u64> {
    client
        .publish("roster.events.marker.Marker", "".into())
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let m = within("the raw subscriber", sub.next()).await.unwrap();
        if m.subject.as_str() == "roster.events.marker.Marker" {
            return seen;
        }
        seen.push(wire::roster_seq(m.headers.as_ref()).unwrap());
    }
}
