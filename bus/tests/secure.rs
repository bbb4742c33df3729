//! A secured bus against real `nats-server`s: authentication by user and password, token and
//! nkey, TLS with a CA and a client certificate (made at run time with `openssl`), clear
//! refusals of wrong credentials and of secret files open to others — and the security
//! boundary itself. The server configuration of `docs/nats.md` is run as written: with it a
//! reader of events can neither forge an event, nor read or answer a tool call; without it a
//! forged event is refused by subscribers and cannot stop the outbox.
//!
//! Needs `nats-server` and `openssl`; without either these tests fail, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use roster_bus::tool::{request, respond};
use roster_bus::{
    BusError, BusUrl, EventSubscription, NatsServer, Outbox, Received, SubscribeOptions,
};
use roster_core::capability::Action;
use roster_core::envelope::{Envelope, Hash};
use roster_core::tool::ToolCall;
use tokio::sync::mpsc;

use common::*;

const SECS: Duration = Duration::from_secs(5);

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made by `openssl`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            d,
            &["req", "-x509"],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=roster test CA",
            ],
        );
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let (key, csr, pem, extfile) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
                format!("{name}.ext"),
            );
            std::fs::write(
                d.join(&extfile),
                format!("basicConstraints=CA:FALSE\n{ext}"),
            )
            .unwrap();
            openssl(
                d,
                &["req"],
                &ec,
                &[
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN=roster test {name}"),
                ],
            );
            openssl(
                d,
                &["x509", "-req"],
                &[],
                &[
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-extfile",
                    &extfile,
                ],
            );
            std::fs::set_permissions(d.join(key), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
}

fn openssl(dir: &Path, a: &[&str], b: &[&str], c: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(a)
        .args(b)
        .args(c)
        .output()
        .unwrap_or_else(|e| panic!("these tests need openssl to make certificates: {e}"));
    assert!(
        out.status.success(),
        "openssl {a:?} {c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a secret file of mode `0600`.
fn secret(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The server configuration of docs/nats.md, as written, with its files in `pki`.
fn documented_config(pki: &Pki) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/nats.md")).unwrap();
    let start = doc
        .find("```conf\n")
        .expect("docs/nats.md has a ```conf block")
        + 8;
    let len = doc[start..].find("```").unwrap();
    let conf = &doc[start..start + len];
    assert!(
        conf.contains("\"/etc/nats/ca.pem\""),
        "the block names its files"
    );
    let store = "jetstream { store_dir: \"/var/lib/nats\" }";
    assert!(conf.contains(store), "the block keeps JetStream's store");
    // The store directory is the test server's own (a flag, which the file may not repeat).
    conf.replace("/etc/nats/", &format!("{}/", pki.dir.path().display()))
        .replace(store, "jetstream: enabled")
}

/// A server running docs/nats.md's configuration, and what its users need.
struct Documented {
    server: NatsServer,
    pki: Pki,
    secrets: tempfile::TempDir,
}

const PASSWORDS: [(&str, &str, &str); 4] = [
    ("roster", "ROSTER_NATS_PASSWORD", "runtime-pw-1"),
    ("subscriber", "SUBSCRIBER_NATS_PASSWORD", "subscriber-pw-2"),
    ("audit", "AUDIT_NATS_PASSWORD", "audit-pw-4"),
    (
        "email-provider",
        "EMAIL_PROVIDER_NATS_PASSWORD",
        "provider-pw-3",
    ),
];

impl Documented {
    /// The documented server, the runtime connected to it, and `n` events of a log (its team
    /// made, then retirements) its outbox has published.
    async fn with_events(
        n: usize,
    ) -> (
        Documented,
        async_nats::Client,
        tempfile::TempDir,
        std::sync::Arc<roster_store::SledLog>,
        roster_core::id::TeamId,
        Outbox,
    ) {
        let d = Documented::start();
        let runtime = d.connect("roster", "_INBOX_roster").await;
        let (dir, log) = log();
        let t = team(&log, "research", 1);
        retire_many(&log, t, n - 1);
        let outbox = Outbox::spawn(log.clone(), runtime.clone(), name("roster"));
        within("the outbox", outbox.published(n as u64))
            .await
            .unwrap();
        (d, runtime, dir, log, t, outbox)
    }

    fn start() -> Documented {
        let pki = Pki::new();
        let env: Vec<(&str, &str)> = PASSWORDS.iter().map(|(_, k, v)| (*k, *v)).collect();
        let server = NatsServer::start_with_config(&documented_config(&pki), &env)
            .unwrap_or_else(|e| panic!("these tests need a real NATS server: {e}"));
        let secrets = tempfile::tempdir().unwrap();
        for (user, _, pw) in PASSWORDS {
            secret(secrets.path(), user, &format!("{pw}\n"));
        }
        Documented {
            server,
            pki,
            secrets,
        }
    }

    /// The URL for `user` (its password file, the CA, the client certificate, `inbox`).
    fn url_for(&self, user: &str, inbox: &str) -> String {
        format!(
            "tls://127.0.0.1:{}?user={user}&password_file={}&ca_file={}&cert_file={}&key_file={}&inbox={inbox}",
            self.server.port(),
            self.secrets.path().join(user).display(),
            self.pki.path("ca.pem").display(),
            self.pki.path("client.pem").display(),
            self.pki.path("client.key").display(),
        )
    }

    async fn connect(&self, user: &str, inbox: &str) -> async_nats::Client {
        let url = BusUrl::parse(&self.url_for(user, inbox)).unwrap();
        roster_bus::connect_now(&url, SECS).await.unwrap()
    }

    /// A client of `user` made with async-nats directly, whose server errors (permission
    /// violations) arrive on the returned receiver: a denial is observed, not assumed.
    async fn watched(
        &self,
        user: &str,
        inbox: &str,
    ) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pw = PASSWORDS.iter().find(|p| p.0 == user).unwrap().2;
        let client = async_nats::ConnectOptions::with_user_and_password(user.into(), pw.into())
            .require_tls(true)
            .add_root_certificates(self.pki.path("ca.pem"))
            .add_client_certificate(self.pki.path("client.pem"), self.pki.path("client.key"))
            .custom_inbox_prefix(inbox)
            .event_callback(move |e| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(e.to_string().to_lowercase());
                }
            })
            .connect(format!("tls://127.0.0.1:{}", self.server.port()))
            .await
            .unwrap();
        (client, rx)
    }
}

/// Waits for the server to report a permissions violation naming `what`.
async fn denied(rx: &mut mpsc::UnboundedReceiver<String>, what: &str) {
    let what = what.to_lowercase();
    within(&format!("the server's denial of {what}"), async {
        loop {
            let e = rx.recv().await.unwrap();
            if e.contains("permissions violation") && e.contains(&what) {
                return;
            }
        }
    })
    .await;
}

fn call(action: &str) -> ToolCall {
    common::tool_call(action)
}

/// The documented server: the runtime connects over TLS with a password and a client
/// certificate and publishes events, a reader with the `subscriber` user reads every one of
/// them (ordered and durable), and the provider user answers the runtime's tool call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_server_carries_events_and_tool_calls_over_tls_with_passwords() {
    let (d, runtime, _dir, _log, _team, outbox) = Documented::with_events(10).await;
    assert_eq!(outbox.stop().await.last_error, None);

    let reader = d.connect("subscriber", "_INBOX_subscriber").await;
    let mut sub = EventSubscription::open(&reader, &name("roster"), SubscribeOptions::default())
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 10).await, (0..10).collect::<Vec<_>>());
    let durable = SubscribeOptions {
        durable: Some(name("audit")),
        limit: Some(10),
        ..SubscribeOptions::default()
    };
    let mut sub = EventSubscription::open(&reader, &name("roster"), durable)
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 10).await, (0..10).collect::<Vec<_>>());

    let provider = d.connect("email-provider", "_INBOX_provider").await;
    let email = Action::parse("email.send").unwrap();
    let _p = respond(
        provider,
        &name("roster"),
        &email,
        |_| serde_json::json!({"sent": true}),
    )
    .await
    .unwrap();
    let answer = request(&runtime, &name("roster"), &call("email.send"), SECS)
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!({"sent": true}));
}

/// What the review did, against the documented server with the `subscriber` user's
/// credentials: publish a forged event, read tool calls and context, answer a tool call
/// before the provider. Every attempt is denied by the server (and seen denied), the stream
/// keeps only the runtime's events, and the runtime gets the real provider's answer. A
/// provider cannot publish into the runtime's inbox either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_server_denies_forged_events_snooping_and_forged_tool_replies() {
    let (d, runtime, _dir, log, t, outbox) = Documented::with_events(5).await;

    let (attacker, mut errors) = d.watched("subscriber", "_INBOX_subscriber").await;
    // A forged event: the next position, linked to the last event, an id of its own (a copied
    // id within the duplicate window would be dropped by JetStream even if publishing were
    // allowed, and the check below could not fail).
    let last = all(&log).pop().unwrap();
    let mut body = last.body().clone();
    body.seq = 5;
    body.id = "evt_0192f0c0000070008000000000000009".parse().unwrap();
    let e = &Envelope::seal(body, last.hash());
    attacker
        .publish_with_headers(
            "roster.events.research.AgentRetired",
            roster_bus::wire::headers(e),
            roster_bus::wire::encode(e).unwrap(),
        )
        .await
        .unwrap();
    denied(
        &mut errors,
        "publish to \"roster.events.research.AgentRetired\"",
    )
    .await;
    // Snooping on tool calls, context and the runtime's replies; answering a tool call.
    let mut calls = attacker.subscribe("roster.tool.email.send").await.unwrap();
    denied(&mut errors, "subscription to \"roster.tool.email.send\"").await;
    let _ctx = attacker.subscribe("roster.ctx.>").await.unwrap();
    denied(&mut errors, "subscription to \"roster.ctx.>\"").await;
    let _replies = attacker.subscribe("_INBOX_roster.>").await.unwrap();
    denied(&mut errors, "subscription to \"_INBOX_roster.>\"").await;
    let forger = attacker.clone();
    tokio::spawn(async move {
        while let Some(m) = calls.next().await {
            if let Some(reply) = m.reply {
                let _ = forger.publish(reply, r#"{"sent":"forged"}"#.into()).await;
            }
        }
    });

    // The real provider is slow: a forger that could see the call would answer first.
    let provider = d.connect("email-provider", "_INBOX_provider").await;
    let email = Action::parse("email.send").unwrap();
    let _p = respond(provider, &name("roster"), &email, |_| {
        std::thread::sleep(Duration::from_millis(300));
        serde_json::json!({"sent": true})
    })
    .await
    .unwrap();
    let answer = request(&runtime, &name("roster"), &call("email.send"), SECS)
        .await
        .unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"sent": true}),
        "a forged reply was taken"
    );

    // A provider may answer the calls it receives, and publish nothing else.
    let (provider, mut errors) = d.watched("email-provider", "_INBOX_provider").await;
    provider
        .publish("_INBOX_roster.guess.0", r#"{"sent":"forged"}"#.into())
        .await
        .unwrap();
    denied(&mut errors, "publish to \"_INBOX_roster.guess.0\"").await;
    provider
        .publish("roster.events.research.AgentRetired", "{}".into())
        .await
        .unwrap();
    denied(
        &mut errors,
        "publish to \"roster.events.research.AgentRetired\"",
    )
    .await;

    retire_many(&log, t, 1);
    within("the outbox", outbox.published(6)).await.unwrap();
    assert_eq!(outbox.stop().await.last_error, None);
    assert_eq!(
        stored_seqs(&runtime, "roster").await,
        (0..6).collect::<Vec<_>>()
    );
}

/// The `audit` user of docs/nats.md: its durable is made beforehand as the doc says (its JSON,
/// by `subscriber`); `audit` reads it, and resumes it after a reader that crashed holding
/// events (it may not reset the durable, so it waits for them, then gets them first, in
/// order). It may do nothing else with the stream: the server denies it creating a consumer —
/// such as a push consumer delivering the stream into roster's context subjects, which the
/// `subscriber` role can do — and acknowledging another durable's messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_audit_reader_is_confined_to_its_durable() {
    let (d, _runtime, _dir, _log, _team, outbox) = Documented::with_events(10).await;

    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/nats.md")).unwrap();
    let start = doc
        .find("```json\n")
        .expect("docs/nats.md has a ```json block")
        + 8;
    let json = &doc[start..start + doc[start..].find("```").unwrap()];
    let mut config: jetstream::consumer::pull::Config = serde_json::from_str(json).unwrap();
    assert_eq!(config.ack_wait, Duration::from_secs(10));
    // A shorter ack wait than the doc's, for a shorter test.
    config.ack_wait = Duration::from_secs(2);
    let admin = jetstream::new(d.connect("subscriber", "_INBOX_subscriber").await);
    let stream = admin.get_stream("roster_events").await.unwrap();
    stream.create_consumer(config).await.unwrap();

    let audit = SubscribeOptions {
        durable: Some(name("audit")),
        ..SubscribeOptions::default()
    };
    {
        let reader = d.connect("audit", "_INBOX_audit").await;
        let mut sub = EventSubscription::open(&reader, &name("roster"), audit.clone())
            .await
            .unwrap();
        assert_eq!(take(&mut sub, 4).await, (0..4).collect::<Vec<_>>());
        // A crash: the rest of its pull is neither delivered nor handed back.
    }
    let reader = d.connect("audit", "_INBOX_audit").await;
    let mut sub = EventSubscription::open(&reader, &name("roster"), audit)
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 6).await, (4..10).collect::<Vec<_>>());

    let (attacker, mut errors) = d.watched("audit", "_INBOX_audit").await;
    let js = jetstream::new(attacker.clone());
    let stream = js.get_stream("roster_events").await.unwrap();
    let push = jetstream::consumer::push::Config {
        deliver_subject: "roster.ctx.research.news".into(),
        ..Default::default()
    };
    let attempt = tokio::spawn(async move { stream.create_consumer(push).await.map(drop) });
    denied(
        &mut errors,
        "publish to \"$JS.API.CONSUMER.CREATE.roster_events\"",
    )
    .await;
    assert!(attempt.await.unwrap().is_err());
    attacker
        .publish("$JS.ACK.roster_events.other.1.1.1.0.0", "".into())
        .await
        .unwrap();
    denied(
        &mut errors,
        "publish to \"$JS.ACK.roster_events.other.1.1.1.0.0\"",
    )
    .await;
    let mut stream = admin.get_stream("roster_events").await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.consumer_count, 1, "no consumer but the durable");
    assert_eq!(outbox.stop().await.last_error, None);
}

/// Wrong credentials, no credentials and a server certificate from another CA are refused at
/// once with what to check — by `connect_now` and by the runtime's `connect`, which would
/// otherwise retry in the background forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_a_wrong_ca_are_refused_with_a_clear_error() {
    let d = Documented::start();
    let wrong = secret(d.secrets.path(), "wrong", "not-the-password");
    let url = d.url_for("roster", "_INBOX_roster").replace(
        &d.secrets.path().join("roster").display().to_string(),
        &wrong.display().to_string(),
    );
    let url = BusUrl::parse(&url).unwrap();
    for e in [
        roster_bus::connect_now(&url, SECS).await.unwrap_err(),
        within("connect", roster_bus::connect(&url))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, BusError::Refused { .. }), "{e}");
        assert!(
            e.to_string().contains("refused roster's credentials"),
            "{e}"
        );
    }
    // No credentials at all (the certificate alone is not enough).
    let anonymous = format!(
        "tls://127.0.0.1:{}?ca_file={}&cert_file={}&key_file={}",
        d.server.port(),
        d.pki.path("ca.pem").display(),
        d.pki.path("client.pem").display(),
        d.pki.path("client.key").display(),
    );
    let e = roster_bus::connect_now(&BusUrl::parse(&anonymous).unwrap(), SECS)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("refused roster's credentials"),
        "{e}"
    );

    // A server certificate that does not chain to ca_file.
    let other = Pki::new();
    let url = d.url_for("roster", "_INBOX_roster").replace(
        &d.pki.path("ca.pem").display().to_string(),
        &other.path("ca.pem").display().to_string(),
    );
    let url = BusUrl::parse(&url).unwrap();
    for e in [
        roster_bus::connect_now(&url, SECS).await.unwrap_err(),
        within("connect", roster_bus::connect(&url))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, BusError::Refused { .. }), "{e}");
        assert!(e.to_string().contains("TLS handshake failed"), "{e}");
    }
}

/// A password or client key file that its group or others may read is refused before
/// anything is sent, naming the file and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_open_to_others_is_refused() {
    let d = Documented::start();
    let url = BusUrl::parse(&d.url_for("roster", "_INBOX_roster")).unwrap();
    let pass = d.secrets.path().join("roster");
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    for e in [
        roster_bus::connect_now(&url, SECS).await.unwrap_err(),
        within("connect", roster_bus::connect(&url))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, BusError::Secret(_)), "{e}");
        let e = e.to_string();
        assert!(
            e.contains(&format!(
                "password file {} is open to its group or others (mode 0644)",
                pass.display()
            )) && e.contains("chmod 600"),
            "{e}"
        );
    }
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(
        d.pki.path("client.key"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let e = roster_bus::connect_now(&url, SECS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("client key file") && e.contains("mode 0640"),
        "{e}"
    );
    std::fs::set_permissions(
        d.pki.path("client.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    roster_bus::connect_now(&url, SECS).await.unwrap();
}

/// A token, an nkey seed: each connects where the server asks for it, and a wrong one is
/// refused; a credentials file that is not one is refused naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_or_an_nkey_seed_from_a_file_connects() {
    let dir = tempfile::tempdir().unwrap();
    let server = NatsServer::start_with_config(
        "authorization { token: $TOKEN }\n",
        &[("TOKEN", "t0k3n-xyz")],
    )
    .unwrap_or_else(|e| panic!("these tests need a real NATS server: {e}"));
    let token = secret(dir.path(), "token", "t0k3n-xyz\n");
    let url =
        |f: &Path| BusUrl::parse(&format!("{}?token_file={}", server.url(), f.display())).unwrap();
    let c = roster_bus::connect_now(&url(&token), SECS).await.unwrap();
    round_trip(&c).await;
    let wrong = secret(dir.path(), "wrong", "t0k3n-abc");
    let e = roster_bus::connect_now(&url(&wrong), SECS)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("refused roster's credentials"),
        "{e}"
    );

    let user = nkeys::KeyPair::new_user();
    let server = NatsServer::start_with_config(
        &format!(
            "authorization {{ users: [ {{ nkey: {} }} ] }}\n",
            user.public_key()
        ),
        &[],
    )
    .unwrap_or_else(|e| panic!("these tests need a real NATS server: {e}"));
    let seed = secret(dir.path(), "seed", &format!("{}\n", user.seed().unwrap()));
    let url =
        |f: &Path| BusUrl::parse(&format!("{}?nkey_file={}", server.url(), f.display())).unwrap();
    let c = roster_bus::connect_now(&url(&seed), SECS).await.unwrap();
    round_trip(&c).await;
    let stranger = secret(
        dir.path(),
        "stranger",
        &nkeys::KeyPair::new_user().seed().unwrap(),
    );
    let e = roster_bus::connect_now(&url(&stranger), SECS)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("refused roster's credentials"),
        "{e}"
    );

    let creds = secret(dir.path(), "creds", "not a credentials file");
    let url = BusUrl::parse(&format!("{}?creds_file={}", server.url(), creds.display())).unwrap();
    let e = roster_bus::connect_now(&url, SECS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("credentials file") && e.contains("not a credentials file"),
        "{e}"
    );
}

/// A message goes out and comes back on the connection.
async fn round_trip(c: &async_nats::Client) {
    let mut sub = c.subscribe("roster.ping").await.unwrap();
    c.flush().await.unwrap();
    c.publish("roster.ping", "hi".into()).await.unwrap();
    let m = within("the message", sub.next()).await.unwrap();
    assert_eq!(&m.payload[..], b"hi");
}

/// What the review did on a server that lets anyone publish: a message without a position
/// and a well-formed, self-consistent event at the next position that does not link to the
/// chain, published into the stream between the outbox's events. The outbox steps over them
/// and publishes every later event (before, it stopped at every retry, for good); a
/// subscriber refuses both, saying why, and delivers every real event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_event_is_refused_by_subscribers_and_does_not_stop_the_outbox() {
    let server = server();
    let client = client(&server).await;
    let (_dir, log) = log();
    let t = team(&log, "research", 1);
    retire_many(&log, t, 4);
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    within("the outbox", outbox.published(5)).await.unwrap();

    let js = jetstream::new(client.clone());
    let junk = js
        .publish("roster.events.research.AgentRetired", r#"{"seq":5}"#.into())
        .await
        .unwrap();
    junk.await.unwrap();
    let last = all(&log).pop().unwrap();
    let mut body = last.body().clone();
    body.seq = 5;
    // An id of its own: with the copied one, JetStream would drop it as a duplicate.
    body.id = "evt_0192f0c0000070008000000000000009".parse().unwrap();
    let forged = Envelope::seal(body, Hash([9; 32]));
    js.publish_with_headers(
        "roster.events.research.AgentRetired",
        roster_bus::wire::headers(&forged),
        roster_bus::wire::encode(&forged).unwrap(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    retire_many(&log, t, 5);
    within("the events after the forgeries", outbox.published(10))
        .await
        .unwrap();
    retire_many(&log, t, 2);
    within("later events", outbox.published(12)).await.unwrap();
    assert_eq!(outbox.stop().await.last_error, None);
    // A new outbox (a restart) finds its last event behind forgeries too.
    let outbox = Outbox::spawn(log.clone(), client.clone(), name("roster"));
    js.publish("roster.events.research.AgentRetired", "junk".into())
        .await
        .unwrap()
        .await
        .unwrap();
    retire_many(&log, t, 1);
    within("the restarted outbox", outbox.published(13))
        .await
        .unwrap();
    assert_eq!(outbox.stop().await.last_error, None);

    let mut sub = EventSubscription::open(
        &client,
        &name("roster"),
        SubscribeOptions {
            limit: Some(13),
            ..SubscribeOptions::default()
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
    assert_eq!(delivered, (0..13).collect::<Vec<_>>());
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused[0].contains("refused message 6 of the events stream")
            && refused[0].contains("no valid Roster-Seq"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("refused message 7") && refused[1].contains("event 5 does not link"),
        "{}",
        refused[1]
    );
    assert!(refused[2].contains("no valid Roster-Seq"), "{}", refused[2]);
}
