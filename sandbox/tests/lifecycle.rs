//! Agent containers through their whole life on a real engine: created hardened, started,
//! inspected, stopped promptly, removed — each step idempotent where that is natural — and the
//! home volume outliving the container.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::container::{Config, CreateContainerOptions};
use roster_core::event::AgentSpec;
use roster_core::name::ImageRef;
use roster_sandbox::plan::labels;
use roster_sandbox::{ContainerStatus, SandboxError};

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

#[tokio::test]
async fn create_start_stop_remove_and_their_idempotence() {
    let c = common::ctx().await;
    c.base().await;
    let e = &c.engine;
    let (plan, agent) = c.ready(&AgentSpec::base()).await;
    assert_eq!(e.inspect(agent).await.unwrap(), None);
    assert!(
        e.home_exists(agent).await.unwrap(),
        "the home is made before the container"
    );

    e.create(&plan).await.unwrap();
    let st = e.inspect(agent).await.unwrap().unwrap();
    assert_eq!((st.status, st.running), (ContainerStatus::Created, false));
    assert_eq!((st.started_at, st.exit_code), (None, None));
    assert_eq!(
        st.uid(),
        e.home_uid(agent).await.unwrap(),
        "it runs as its home's uid"
    );
    match e.create(&plan).await {
        Err(SandboxError::Exists { container }) => assert_eq!(container, plan.name),
        other => panic!("a second create must say it exists: {other:?}"),
    }

    e.start(agent).await.unwrap();
    e.start(agent).await.unwrap();
    let st = e.inspect(agent).await.unwrap().unwrap();
    assert!(st.running, "{st:?}");
    assert_eq!(st.status, ContainerStatus::Running);
    assert!(st.started_at.is_some());
    assert_eq!(st.runtime, "runc");
    assert_eq!(st.image, ImageRef::base().to_string());

    let found = e.list().await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].name, plan.name);
    assert_eq!(found[0].agent, Ok(agent));
    assert_eq!(found[0].status, ContainerStatus::Running);

    let t = Instant::now();
    e.stop(agent, Duration::from_secs(8)).await.unwrap();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM ends the idle agent at once: {took:?}"
    );
    let st = e.inspect(agent).await.unwrap().unwrap();
    assert!(!st.running);
    assert_eq!(st.exit_code, Some(143), "ended by SIGTERM: {st:?}");
    assert!(st.finished_at.is_some());
    e.stop(agent, Duration::from_secs(1)).await.unwrap();
    e.stop(common::agent_id(), Duration::from_secs(1))
        .await
        .unwrap();

    e.remove(agent).await.unwrap();
    e.remove(agent).await.unwrap();
    assert_eq!(e.inspect(agent).await.unwrap(), None);
    assert!(e.list().await.unwrap().is_empty());
    match e.start(agent).await {
        Err(SandboxError::NoContainer { .. }) => {}
        other => panic!("starting a removed container: {other:?}"),
    }
    assert!(
        e.home_exists(agent).await.unwrap(),
        "the home outlives its container"
    );
    e.remove_home(agent).await.unwrap();
    e.remove_home(agent).await.unwrap();
    assert!(!e.home_exists(agent).await.unwrap());
    assert_eq!(
        e.home_uid(agent).await.unwrap(),
        None,
        "its uid is free again"
    );
}

#[tokio::test]
async fn a_file_in_the_home_survives_removal_and_recreation() {
    let c = common::ctx().await;
    c.base().await;
    let e = &c.engine;
    let (plan, agent) = c.ready(&AgentSpec::base()).await;
    e.create(&plan).await.unwrap();
    e.start(agent).await.unwrap();
    let out = e
        .exec(
            agent,
            sh("echo kept > /home/agent/note && id -u && stat -c %u /home/agent"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    let uid = e.home_uid(agent).await.unwrap().unwrap();
    assert_eq!(out.stdout_text(), format!("{uid}\n{uid}\n"));

    e.remove(agent).await.unwrap();
    e.create(&plan).await.unwrap();
    e.start(agent).await.unwrap();
    let out = e
        .exec(agent, sh("cat /home/agent/note"), None)
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "kept\n", "{out:?}");
}

#[tokio::test]
async fn a_new_home_for_another_image_is_prepared_for_the_agent() {
    let mut c = common::ctx().await;
    c.base().await;
    let other = c.tag("other");
    c.sweep.image(other.as_str());
    let bb = common::busybox();
    c.engine
        .ensure_base_image_as(&other, &bb, &bb)
        .await
        .unwrap();
    let mut spec = AgentSpec::base();
    spec.image = other;
    let (plan, agent) = c.ready(&spec).await;
    let e = &c.engine;
    e.create(&plan).await.unwrap();
    e.start(agent).await.unwrap();
    let out = e
        .exec(
            agent,
            sh("touch /home/agent/x && stat -c '%u:%g' /home/agent"),
            None,
        )
        .await
        .unwrap();
    let uid = e.home_uid(agent).await.unwrap().unwrap();
    assert_eq!(out.stdout_text(), format!("{uid}:{uid}\n"), "{out:?}");
    let ns = format!("{}={}", labels::NS, c.ns);
    let preps = common::labelled(&[roster_sandbox::PREP_LABEL, &ns]).await;
    assert_eq!(
        preps,
        Vec::<String>::new(),
        "the preparation container is gone"
    );
}

/// Creates a bare container labelled with `ns` and `agent_label`, bypassing every check.
async fn stray(ns: &str, name: &str, agent_label: &str) {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let config = Config {
        image: Some(ImageRef::base().to_string()),
        labels: Some(HashMap::from([
            (labels::NS.to_string(), ns.to_string()),
            (labels::AGENT.to_string(), agent_label.to_string()),
        ])),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: name.to_string(),
        platform: None,
    };
    docker
        .create_container(Some(options), config)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_container_whose_label_names_no_agent_is_reported_and_removable() {
    let c = common::ctx().await;
    c.base().await;
    let name = format!("roster-{}-stray", c.ns);
    stray(c.ns.as_str(), &name, "not-an-id").await;
    let found = c.engine.list().await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, name);
    let bad = found[0].agent.clone().unwrap_err();
    assert_eq!(bad.raw.as_deref(), Some("not-an-id"));
    assert_eq!(found[0].status, ContainerStatus::Created);
    c.engine.remove_container(&name).await.unwrap();
    c.engine.remove_container(&name).await.unwrap();
    assert!(c.engine.list().await.unwrap().is_empty());

    // A container of another namespace is not this engine's to remove.
    let other = common::ctx().await;
    let theirs = format!("roster-{}-theirs", other.ns);
    stray(other.ns.as_str(), &theirs, "x").await;
    match c.engine.remove_container(&theirs).await {
        Err(SandboxError::NotOurs { container, .. }) => assert_eq!(container, theirs),
        r => panic!("removing another namespace's container: {r:?}"),
    }
    assert_eq!(other.engine.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn exec_captures_bounded_output_and_logs_keep_both_streams() {
    let c = common::ctx().await;
    c.base().await;
    let e = &c.engine;
    let (mut plan, agent) = c.ready(&AgentSpec::base()).await;
    plan.config.cmd = Some(sh("echo to-out; echo to-err >&2; exec sleep infinity"));
    e.create(&plan).await.unwrap();
    match e.exec(agent, sh("true"), None).await {
        Err(SandboxError::NotRunning { .. }) => {}
        other => panic!("exec in a created container: {other:?}"),
    }
    e.start(agent).await.unwrap();

    let out = e
        .exec(agent, sh("echo a; echo b >&2; exit 7"), None)
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(7));
    assert_eq!(
        (out.stdout_text().as_str(), out.stderr_text().as_str()),
        ("a\n", "b\n")
    );
    assert!(!out.truncated);

    let out = e
        .exec(agent, sh("head -c 3000000 /dev/zero"), None)
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), roster_sandbox::EXEC_CAPTURE);
    assert!(out.truncated);
    assert_eq!(out.exit_code, Some(0));

    let out = e
        .exec(agent, sh("id -u; grep CapEff /proc/self/status"), Some("0"))
        .await
        .unwrap();
    assert_eq!(
        out.stdout_text(),
        "0\nCapEff:\t0000000000000000\n",
        "root in an exec holds no capability"
    );

    use futures_util::StreamExt;
    let mut logs = Box::pin(e.logs(agent, false, None));
    let (mut stdout, mut stderr) = (String::new(), String::new());
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.unwrap();
        let text = String::from_utf8_lossy(&chunk.bytes).into_owned();
        match chunk.stream {
            roster_sandbox::OutputStream::Stdout => stdout.push_str(&text),
            _ => stderr.push_str(&text),
        }
    }
    assert_eq!((stdout.as_str(), stderr.as_str()), ("to-out\n", "to-err\n"));
}
