//! The engine's event stream, as the runtime sees it: starts and deaths of this namespace's
//! agents only, an exit with its code, an OOM kill as an OOM kill.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use roster_core::event::{AgentSpec, StopReason};
use roster_sandbox::{stop_reason, EngineEvent};

fn sh(script: &str) -> Option<Vec<String>> {
    Some(vec!["sh".into(), "-c".into(), script.into()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaths_are_reported_with_their_code_and_oom_kills_as_oom() {
    let c = common::ctx().await;
    c.base().await;
    let e = &c.engine;
    let mut events = Box::pin(e.events());

    let (mut exits, exiter) = c.ready(&AgentSpec::base()).await;
    exits.config.cmd = sh("sleep 0.3; exit 3");
    let mut small = AgentSpec::base();
    small.resources.memory_mib = 16;
    let (mut hog, hogger) = c.ready(&small).await;
    hog.config.cmd = sh("head -c 256m /dev/zero | tail >/dev/null");
    let (idle, idler) = c.ready(&AgentSpec::base()).await;

    // An agent of another namespace on the same engine: its death is not ours to see.
    let stranger = common::ctx().await;
    let (mut foreign, foreigner) = stranger.ready(&AgentSpec::base()).await;
    foreign.config.cmd = sh("exit 5");

    for (p, a) in [(&exits, exiter), (&hog, hogger), (&idle, idler)] {
        e.create(p).await.unwrap();
        e.start(a).await.unwrap();
    }
    stranger.engine.create(&foreign).await.unwrap();
    stranger.engine.start(foreigner).await.unwrap();
    e.stop(idler, Duration::from_secs(5)).await.unwrap();

    let mut started = Vec::new();
    let mut died = HashMap::new();
    let mut ids = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while died.len() < 3 {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        match next
            .expect("three deaths within a minute")
            .expect("the stream goes on")
            .unwrap()
        {
            EngineEvent::Started { agent, container } => {
                started.push(agent);
                ids.insert(agent, container);
            }
            EngineEvent::Died {
                agent,
                container,
                exit_code,
                oom_killed,
            } => {
                assert_eq!(
                    ids.get(&agent),
                    Some(&container),
                    "a death names its container"
                );
                died.insert(agent, (exit_code, oom_killed));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    started.sort();
    let mut want = vec![exiter, hogger, idler];
    want.sort();
    assert_eq!(started, want, "one start each, none of the stranger's");
    assert!(!died.contains_key(&foreigner));

    assert_eq!(died[&exiter], (3, false));
    assert_eq!(
        stop_reason(3, false, false, false),
        StopReason::Exited { code: 3 }
    );

    let (code, oom) = died[&hogger];
    assert!(oom, "the hog's death is an OOM kill (exit {code})");
    assert_eq!(code, 137);
    assert_eq!(stop_reason(code, oom, false, false), StopReason::OomKilled);
    // The engine's own record (`State.OOMKilled` in inspect) is not asserted: dockerd 20.10 sets
    // it only when containerd's OOM event reaches it before the exit event, and under cgroup v2
    // the two race. CI saw it stay false for good (20 s) while the `oom` event above was
    // reported. That is why deaths are classified from the event stream, never from inspect.
    let (code, oom) = died[&idler];
    assert_eq!((code, oom), (143, false), "SIGTERM from the stop");
    assert_eq!(stop_reason(code, oom, true, false), StopReason::Requested);
}
