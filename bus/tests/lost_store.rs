//! An outside subscriber whose durable consumer is lost with the server's JetStream store
//! (restarted without it): the subscription ends with an error that says so, instead of
//! waiting in silence for events that keep coming.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use roster_bus::{BusError, EventSubscription, SubscribeOptions};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_lost_with_the_servers_store_is_an_error_not_a_silent_wait() {
    let mut server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 4);
    publish_all(&log, &client).await;
    let mut sub = EventSubscription::open(
        &client,
        &name("roster"),
        SubscribeOptions {
            durable: Some(name("audit")),
            ..SubscribeOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(take(&mut sub, 5).await, (0..5).collect::<Vec<_>>());
    // The server restarts without its store: the durable is gone, and no pull of it is
    // answered (a consumer deleted on a running server says so to its pulls: not this case).
    server.kill().unwrap();
    std::fs::remove_dir_all(server.store_dir()).unwrap();
    server.restart().unwrap();
    retire_many(&log, t, 2);
    publish_all(&log, &client).await;
    match within("the subscription to notice", sub.next()).await {
        Err(e @ BusError::DurableGone { .. }) => {
            assert!(e.to_string().contains("`audit` no longer exists"), "{e}");
        }
        other => panic!("expected the durable to be gone, got {other:?}"),
    }
}
