//! With no engine answering, connecting fails with one sentence saying what to start. (Alone in
//! its test binary: it points `DOCKER_HOST` elsewhere for the whole process.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use roster_core::name::Name;
use roster_sandbox::{Engine, SandboxError};

#[tokio::test]
async fn no_engine_is_one_clear_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    std::env::set_var("DOCKER_HOST", format!("unix://{}", sock.display()));
    let err = Engine::connect(Name::parse("t").unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SandboxError::EngineUnreachable { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "no Docker engine answers at {}: start dockerd (scripts/setup does it on Debian)",
            sock.display()
        )
    );
}
