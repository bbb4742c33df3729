//! What `create` refuses, on a real engine, before anything exists: an image that is not there
//! (roster never pulls), a runtime the engine lacks, an image that declares a `VOLUME` or poses
//! with the runtime's labels, and a configuration widened after planning.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use bollard::image::BuildImageOptions;
use bollard::models::{Mount, MountTypeEnum};
use futures_util::StreamExt;
use roster_core::event::{AgentSpec, RuntimeKind};
use roster_core::id::AgentId;
use roster_core::name::ImageRef;
use roster_sandbox::{Engine, SandboxError};

/// Nothing of the agent exists: no container, no home, nothing labelled with the namespace.
async fn nothing_created(e: &Engine, agent: AgentId) {
    assert_eq!(e.inspect(agent).await.unwrap(), None);
    assert!(
        !e.home_exists(agent).await.unwrap(),
        "no home volume was made"
    );
    assert!(e.list().await.unwrap().is_empty());
}

/// Builds `FROM` the base image plus `extra` under `tag`, with the engine's legacy builder.
async fn derived_image(tag: &ImageRef, extra: &str) {
    let dockerfile = format!("FROM {}\n{extra}\n", ImageRef::base());
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    let mut t = tar::Builder::new(Vec::new());
    t.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    let ctx = t.into_inner().unwrap();
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".to_string(),
        t: tag.to_string(),
        pull: false,
        rm: true,
        ..Default::default()
    };
    let mut build = docker.build_image(options, None, Some(ctx.into()));
    while let Some(step) = build.next().await {
        step.unwrap();
    }
}

#[tokio::test]
async fn a_missing_image_is_refused_and_never_pulled() {
    let c = common::ctx().await;
    let mut spec = AgentSpec::base();
    spec.image = c.tag("missing");
    let (plan, agent) = c.plan(&spec);
    let err = c.engine.create(&plan).await.unwrap_err();
    assert!(matches!(err, SandboxError::ImageMissing { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "image {} is not on this engine, and roster never pulls: build or load it first",
            spec.image
        )
    );
    assert!(
        !c.engine.image_exists(&spec.image).await.unwrap(),
        "nothing was pulled"
    );
    nothing_created(&c.engine, agent).await;
}

#[tokio::test]
async fn a_runtime_the_engine_lacks_is_refused() {
    let c = common::ctx().await;
    c.base().await;
    let known = c.engine.runtimes().await.unwrap();
    assert!(known.iter().any(|r| r == "runc"), "{known:?}");
    let (mut plan, agent) = c.plan(&AgentSpec::base());
    plan.config.host_config.as_mut().unwrap().runtime = Some("kata".into());
    let err = c.engine.create(&plan).await.unwrap_err();
    match &err {
        SandboxError::RuntimeMissing { runtime, known } => {
            assert_eq!(runtime, "kata");
            assert!(known.contains("runc"), "{known}");
        }
        other => panic!("{other}"),
    }
    nothing_created(&c.engine, agent).await;
    if !c.engine.has_runtime(RuntimeKind::Runsc).await.unwrap() {
        let mut spec = AgentSpec::base();
        spec.runtime = RuntimeKind::Runsc;
        let (plan, agent) = c.plan(&spec);
        let err = c.engine.create(&plan).await.unwrap_err();
        assert!(matches!(err, SandboxError::RuntimeMissing { .. }), "{err}");
        nothing_created(&c.engine, agent).await;
    }
}

#[tokio::test]
async fn images_that_widen_the_sandbox_are_refused() {
    let mut c = common::ctx().await;
    c.base().await;
    for (what, extra, want) in [
        ("volume", "VOLUME /data", "declares VOLUME /data"),
        (
            "label",
            "LABEL roster.ns=someone-else",
            "carries the label roster.ns",
        ),
    ] {
        let tag = c.tag(what);
        c.sweep.image(tag.as_str());
        derived_image(&tag, extra).await;
        let mut spec = AgentSpec::base();
        spec.image = tag.clone();
        let (plan, agent) = c.plan(&spec);
        let err = c.engine.create(&plan).await.unwrap_err();
        assert!(
            matches!(err, SandboxError::ImageRefused { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains(want), "{what}: {err}");
        nothing_created(&c.engine, agent).await;
    }
}

#[tokio::test]
async fn a_configuration_widened_after_planning_is_refused() {
    let c = common::ctx().await;
    c.base().await;
    type Widen = Box<dyn Fn(&mut roster_sandbox::plan::ContainerPlan)>;
    let cases: Vec<(&str, Widen)> = vec![
        (
            "engine socket",
            Box::new(|p| {
                let h = p.config.host_config.as_mut().unwrap();
                h.mounts.as_mut().unwrap().push(Mount {
                    target: Some("/var/run/docker.sock".into()),
                    source: Some("/var/run/docker.sock".into()),
                    typ: Some(MountTypeEnum::BIND),
                    ..Default::default()
                });
            }),
        ),
        (
            "privileged",
            Box::new(|p| p.config.host_config.as_mut().unwrap().privileged = Some(true)),
        ),
        (
            "capability",
            Box::new(|p| {
                p.config.host_config.as_mut().unwrap().cap_add = Some(vec!["SYS_ADMIN".into()]);
            }),
        ),
        (
            "device",
            Box::new(|p| {
                p.config.host_config.as_mut().unwrap().devices =
                    Some(vec![bollard::models::DeviceMapping {
                        path_on_host: Some("/dev/kvm".into()),
                        path_in_container: Some("/dev/kvm".into()),
                        cgroup_permissions: Some("rwm".into()),
                    }]);
            }),
        ),
        (
            "host path",
            Box::new(|p| {
                p.config.host_config.as_mut().unwrap().binds = Some(vec!["/:/host".into()]);
            }),
        ),
        (
            "anonymous volume",
            Box::new(|p| {
                p.config.volumes = Some(HashMap::from([("/x".to_string(), HashMap::new())]))
            }),
        ),
    ];
    for (what, widen) in cases {
        let (mut plan, agent) = c.plan(&AgentSpec::base());
        widen(&mut plan);
        let err = c.engine.create(&plan).await.unwrap_err();
        assert!(
            matches!(err, SandboxError::ConfigRefused { .. }),
            "{what}: {err}"
        );
        nothing_created(&c.engine, agent).await;
    }
}

/// A plan whose agent has no home, or whose home belongs to another uid, is refused before the
/// engine would make the volume itself (root's).
#[tokio::test]
async fn a_plan_without_its_home_or_as_another_uid_is_refused() {
    let c = common::ctx().await;
    c.base().await;
    let (plan, agent) = c.plan(&AgentSpec::base());
    let err = c.engine.create(&plan).await.unwrap_err();
    assert!(err.to_string().contains("is not ready"), "{err}");
    assert_eq!(c.engine.inspect(agent).await.unwrap(), None);
    assert!(
        !c.engine.home_exists(agent).await.unwrap(),
        "no home was made"
    );

    let (mut plan, agent) = c.ready(&AgentSpec::base()).await;
    let uid = c.engine.home_uid(agent).await.unwrap().unwrap();
    let other = roster_sandbox::uid::AgentUid::new(if uid.get() == roster_sandbox::uid::FIRST {
        uid.get() + 1
    } else {
        uid.get() - 1
    })
    .unwrap();
    plan.config.user = Some(other.user());
    let err = c.engine.create(&plan).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!("belongs to uid {uid}")),
        "{err}"
    );
    assert_eq!(c.engine.inspect(agent).await.unwrap(), None);
}
