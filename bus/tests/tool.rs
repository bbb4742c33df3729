//! Tool providers on NATS against a real `nats-server`: a call reaches the provider of its
//! action as the `ToolCall` sent, and each way it can fail — nobody listening, a provider that
//! does not answer in time, an answer that is not JSON — is its own clear error.
//!
//! Needs `nats-server` (`scripts/test` provides it); without it these tests fail, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use roster_bus::tool::{request, respond, ToolError};
use roster_bus::{BusUrl, NatsServer};
use roster_core::capability::Action;
use roster_core::name::Name;
use roster_core::tool::ToolCall;

fn call(action: &str) -> ToolCall {
    common::tool_call(action)
}

#[tokio::test]
async fn a_provider_answers_and_each_failure_says_what_happened() {
    let server =
        NatsServer::start().unwrap_or_else(|e| panic!("these tests need a real NATS server: {e}"));
    let url = BusUrl::parse(&server.url()).unwrap();
    let client = roster_bus::connect_now(&url, Duration::from_secs(5))
        .await
        .unwrap();
    let ns = Name::parse("tooltest").unwrap();
    let short = Duration::from_secs(1);

    // Nobody listens.
    let e = request(&client, &ns, &call("email.send"), short)
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::NoProvider { .. }), "{e}");
    assert!(e.to_string().contains("tooltest.tool.email.send"), "{e}");

    // A provider: it gets the call as sent, its answer comes back.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _provider = respond(
        client.clone(),
        &ns,
        &Action::parse("email.send").unwrap(),
        move |c| {
            let _ = tx.send(c);
            serde_json::json!({"sent": true})
        },
    )
    .await
    .unwrap();
    let answer = request(&client, &ns, &call("email.send"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!({"sent": true}));
    assert_eq!(rx.recv().await.unwrap(), call("email.send"));

    // A provider that listens but never answers; one that answers something not JSON.
    let mut silent = client.subscribe("tooltest.tool.slow.op").await.unwrap();
    let mut garbled = client.subscribe("tooltest.tool.bad.op").await.unwrap();
    client.flush().await.unwrap();
    let replier = client.clone();
    tokio::spawn(async move {
        while let Some(m) = garbled.next().await {
            if let Some(reply) = m.reply {
                let _ = replier.publish(reply, "sent!".into()).await;
            }
        }
    });
    let e = request(&client, &ns, &call("slow.op"), short)
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Timeout { .. }), "{e}");
    assert!(
        silent.next().await.is_some(),
        "the silent provider got the call"
    );
    let e = request(&client, &ns, &call("bad.op"), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::BadAnswer { .. }), "{e}");
    assert!(e.to_string().contains("not JSON"), "{e}");
}
