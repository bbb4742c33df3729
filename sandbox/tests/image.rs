//! The base image is built by roster from a tar context, with no registry, and only when its
//! inputs change; binaries that would not run in it are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Instant;

use roster_sandbox::{BaseImage, SandboxError};

#[tokio::test]
async fn the_base_image_builds_without_a_registry_and_only_once() {
    let mut c = common::ctx().await;
    let tag = c.tag("base");
    c.sweep.image(tag.as_str());
    let bb = common::busybox();
    let t = Instant::now();
    let first = c.engine.ensure_base_image_as(&tag, &bb, &bb).await.unwrap();
    let built_in = t.elapsed();
    let BaseImage::Built { digest } = first else {
        panic!("a new tag must be built: {first:?}");
    };
    eprintln!("base image built in {built_in:?}");
    assert!(c.engine.image_exists(&tag).await.unwrap());
    let t = Instant::now();
    let again = c.engine.ensure_base_image_as(&tag, &bb, &bb).await.unwrap();
    assert_eq!(
        again,
        BaseImage::Current {
            digest: digest.clone()
        }
    );
    eprintln!("unchanged base image checked in {:?}", t.elapsed());

    // Other inputs, other digest: rebuilt.
    let other = c.dir.path().join("agent");
    let mut bytes = std::fs::read(&bb).unwrap();
    bytes.extend_from_slice(b"roster");
    std::fs::write(&other, bytes).unwrap();
    match c
        .engine
        .ensure_base_image_as(&tag, &bb, &other)
        .await
        .unwrap()
    {
        BaseImage::Built { digest: d } => assert_ne!(d, digest),
        current => panic!("changed inputs must rebuild: {current:?}"),
    }
}

#[tokio::test]
async fn a_dynamic_binary_is_refused_before_anything_is_built() {
    let c = common::ctx().await;
    let tag = c.tag("dynamic");
    let err = c
        .engine
        .ensure_base_image_as(&tag, &common::busybox(), std::path::Path::new("/bin/sh"))
        .await
        .unwrap_err();
    assert!(matches!(err, SandboxError::NotStatic { .. }), "{err}");
    assert!(err.to_string().contains("crt-static"), "{err}");
    assert!(!c.engine.image_exists(&tag).await.unwrap());
}
