//! The operations run in-process on a data directory of their own (no daemon), their items
//! collected as a client would receive them.

use std::sync::{Arc, Mutex};

use roster_core::name::Name;
use roster_core::refs::{AgentRef, IdRef, TeamRef};

use super::*;

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<Item>>);

impl Sink for Collect {
    fn send(&self, item: Item) -> std::io::Result<()> {
        self.0.lock().unwrap().push(item);
        Ok(())
    }
    fn gone(&self) -> bool {
        false
    }
}

/// Runs `request` on `dir` as operator `op`; what it answered, and how it ended.
fn run_on(dir: &Path, request: Request) -> (Vec<Item>, Result<(), AdminError>) {
    let items = Arc::new(Collect::default());
    let ctx = Ctx {
        data_dir: dir,
        operator: Name::parse("op").unwrap(),
        cwd: dir.to_owned(),
        daemon: None,
        reply: Reply::new(items.clone()),
    };
    let done = run(request, &ctx);
    let items = std::mem::take(&mut *items.0.lock().unwrap());
    (items, done)
}

fn team(name: &str) -> TeamRef {
    TeamRef::parse(name).unwrap()
}

#[test]
fn operations_answer_in_typed_items() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (items, done) = run_on(&dir, Request::Teams);
    assert_eq!(done.unwrap_err().exit_code(), 2, "no data directory yet");
    assert!(items.is_empty());

    let (items, done) = run_on(&dir, Request::Init);
    done.unwrap();
    assert!(matches!(&items[..], [Item::Initialized(i)] if i.created && i.events == 0));

    let name = Name::parse("lab").unwrap();
    let (items, done) = run_on(&dir, Request::CreateTeam { name: name.clone() });
    done.unwrap();
    let [Item::Committed { envelope, text }] = &items[..] else {
        panic!("{items:?}")
    };
    assert_eq!(envelope.seq, 0);
    assert!(text.contains("lab"), "{text}");

    let (items, done) = run_on(&dir, Request::Teams);
    done.unwrap();
    let [Item::Team(row)] = &items[..] else {
        panic!("{items:?}")
    };
    assert!(row.name == name && row.agents == 0, "{row:?}");
    // `--json` has always printed rows with their keys in alphabetical order.
    // (A `Value`'s map is sorted: the row printed through one prints the same.)
    let json = serde_json::to_string(row).unwrap();
    let sorted = serde_json::to_string(&serde_json::to_value(row).unwrap()).unwrap();
    assert_eq!(json, sorted);

    // A reference that names nothing: exit 2, nothing recorded.
    let (items, done) = run_on(
        &dir,
        Request::Agents {
            team: Some(team("nope")),
            all: false,
        },
    );
    let err = done.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.message().unwrap().contains("nope"));
    assert!(items.is_empty());
    let (_, done) = run_on(
        &dir,
        Request::Retire {
            agent: AgentRef::parse("lab/ghost").unwrap(),
            by: None,
        },
    );
    assert_eq!(done.unwrap_err().exit_code(), 2);

    // Containers are the daemon's: asked here, the operation says so.
    let (_, done) = run_on(
        &dir,
        Request::Stop {
            agent: AgentRef::parse("lab/ghost").unwrap(),
        },
    );
    assert!(matches!(done, Err(AdminError::NoDaemon(_))));

    let (items, done) = run_on(
        &dir,
        Request::Verify {
            head: None,
            key: None,
        },
    );
    done.unwrap();
    // The command that appended signed the head after it, with the data directory's key.
    match &items[..] {
        [Item::Verified(Verified::Intact {
            events: 1,
            signed,
            trust: crate::admin::Trust::DataDir,
            ..
        })] => assert_eq!((signed.signed_to, signed.unsigned), (Some(0), 0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn requests_cross_the_wire_unchanged() {
    let requests = [
        Request::Init,
        Request::Agents {
            team: Some(team("lab")),
            all: true,
        },
        Request::Hire(Hire {
            team: team("lab"),
            name: Name::parse("x").unwrap(),
            role: roster_core::name::Label::parse("").unwrap(),
            image: None,
            runtime: None,
            cpus: Some("0.5".parse().unwrap()),
            memory: Some(roster_core::limits::MemoryMib::new(64).unwrap()),
            pids: None,
            tmpfs: None,
            timeout: None,
            disk: Some(roster_core::limits::DiskMib::new(2048).unwrap()),
            by: Some(AgentRef::parse("lab/boss").unwrap()),
            grants: vec!["email.send@mailbox:alice,budget=10".parse().unwrap()],
        }),
        Request::Log {
            team: None,
            from: 3,
            follow: true,
        },
        Request::Verify {
            head: Some("witness.jsonl".into()),
            key: Some(roster_core::signed::SigningKey::from_seed(&[7; 32]).public_key()),
        },
        Request::Import {
            file: "x.jsonl".into(),
            key: None,
        },
        Request::Head { out: None },
    ];
    // A `verify` of before signed heads, without its fields, still parses.
    assert_eq!(
        serde_json::from_str::<Request>(r#"{"op": "verify"}"#).unwrap(),
        Request::Verify {
            head: None,
            key: None
        }
    );
    // A key that is not one is refused where it arrives.
    assert!(serde_json::from_str::<Request>(r#"{"op": "verify", "key": "00"}"#).is_err());
    for r in requests {
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r, "{line}");
    }
}

/// The events of the log of `dir`.
fn events(dir: &Path) -> usize {
    let (items, done) = run_on(
        dir,
        Request::Log {
            team: None,
            from: 0,
            follow: false,
        },
    );
    done.unwrap();
    items.len()
}

fn id_ref<T: roster_core::id::TypedId>(text: &str) -> IdRef<T> {
    IdRef::parse(text).unwrap()
}

/// A refusal of a reference: exit 2, its message, nothing recorded.
fn refused(dir: &Path, request: Request) -> String {
    let before = events(dir);
    let (items, done) = run_on(dir, request);
    let err = done.unwrap_err();
    assert!(matches!(err, AdminError::Ref(_)), "{err:?}");
    assert_eq!(err.exit_code(), 2);
    assert!(items.is_empty(), "{items:?}");
    assert_eq!(events(dir), before, "a refusal recorded something");
    err.message().unwrap()
}

#[test]
fn grants_shares_and_approvals_are_named_by_a_fragment_of_their_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    run_on(&dir, Request::Init).1.unwrap();
    for name in ["lab", "ops"] {
        let name = Name::parse(name).unwrap();
        run_on(&dir, Request::CreateTeam { name }).1.unwrap();
    }
    let hire = Hire {
        team: team("lab"),
        name: Name::parse("scout").unwrap(),
        role: roster_core::name::Label::parse("").unwrap(),
        image: None,
        runtime: None,
        cpus: None,
        memory: None,
        pids: None,
        tmpfs: None,
        timeout: None,
        disk: None,
        by: None,
        grants: vec![
            "email.send@mailbox:a".parse().unwrap(),
            "email.send@mailbox:b".parse().unwrap(),
        ],
    };
    run_on(&dir, Request::Hire(hire)).1.unwrap();
    let (items, done) = run_on(&dir, Request::Grants { agent: None });
    done.unwrap();
    let (grants, capabilities): (Vec<GrantId>, Vec<Capability>) = items
        .iter()
        .map(|i| match i {
            Item::Grant(g) => (g.id, g.capability.clone()),
            other => panic!("{other:?}"),
        })
        .unzip();
    assert_eq!(grants.len(), 2);

    // Grants minted together start alike: their common start is refused, naming both.
    let common = format!("grt_{}", &grants[0].to_string()[4..8]);
    let why = refused(
        &dir,
        Request::Revoke {
            grant: id_ref(&common),
            by: None,
        },
    );
    assert!(
        why.contains("ambiguous") && why.contains("2 grants"),
        "{why}"
    );
    assert!(grants.iter().all(|g| why.contains(&g.short())), "{why}");
    // One that names nothing.
    let why = refused(
        &dir,
        Request::Revoke {
            grant: id_ref("grt_0000000000000000000000000000000"),
            by: None,
        },
    );
    assert_eq!(
        why,
        "there is no grant matching grt_0000000000000000000000000000000"
    );
    // The short form printed names one: revoked, and the one derived --from a fragment too.
    let (_, done) = run_on(
        &dir,
        Request::Grant {
            agent: AgentRef::parse("lab/scout").unwrap(),
            capability: capabilities[0].clone(),
            from: Some(id_ref(&grants[0].short())),
            by: None,
        },
    );
    done.unwrap();
    let (items, done) = run_on(
        &dir,
        Request::Revoke {
            grant: id_ref(&grants[0].short()),
            by: None,
        },
    );
    done.unwrap();
    assert!(
        matches!(&items[..], [Item::Committed { envelope, .. }, Item::Cascaded { grants: 1 }]
            if matches!(envelope.event,
                roster_core::event::Event::GrantRevoked { grant } if grant == grants[0])),
        "{items:?}"
    );

    // Shares: two proposed together; the common start names neither, the end one.
    for _ in 0..2 {
        let (_, done) = run_on(
            &dir,
            Request::ProposeShare {
                from: team("lab"),
                to: team("ops"),
                topics: "findings/**".parse().unwrap(),
                by: None,
            },
        );
        done.unwrap();
    }
    let (items, done) = run_on(&dir, Request::Shares { team: None });
    done.unwrap();
    let shares: Vec<ShareId> = items
        .iter()
        .map(|i| match i {
            Item::Share(s) => s.id,
            other => panic!("{other:?}"),
        })
        .collect();
    let common = format!("shr_{}", &shares[0].to_string()[4..8]);
    let why = refused(
        &dir,
        Request::AcceptShare {
            share: id_ref(&common),
            by: None,
        },
    );
    assert!(why.contains("2 shares"), "{why}");
    for request in [
        Request::AcceptShare {
            share: id_ref(&shares[1].short()),
            by: None,
        },
        Request::CloseShare {
            share: id_ref(&shares[1].short()),
            by: None,
        },
    ] {
        let (items, done) = run_on(&dir, request);
        done.unwrap();
        assert!(
            matches!(&items[..], [Item::Committed { text, .. }] if text.contains(&shares[1].short())),
            "{items:?}"
        );
    }

    // Approvals: none asked yet, so none matches (`act` runs here only with a provider; the
    // CLI's tests decide real ones).
    let why = refused(
        &dir,
        Request::Decide {
            approval: id_ref("apr_3ae9531e"),
            approved: true,
            note: None,
        },
    );
    assert_eq!(why, "there is no approval matching apr_3ae9531e");
    let act = |params: ActParams, approval: Option<&str>| Request::Act {
        agent: AgentRef::parse("lab/scout").unwrap(),
        params,
        approval: approval.map(id_ref),
    };
    let params: ActParams = serde_json::from_str(
        r#"{"action": "email.send", "resource": "mailbox:b", "approval": "apr_0190f2a0c3d47a1b9e2f3a4b5c6d7e8f"}"#,
    )
    .unwrap();
    let (_, done) = run_on(&dir, act(params.clone(), Some("apr_7e8f")));
    let err = done.unwrap_err();
    assert!(
        matches!(&err, AdminError::BadRequest(why) if why.contains("given twice")),
        "{err:?}"
    );
    let params = ActParams {
        approval: None,
        ..params
    };
    let why = refused(&dir, act(params, Some("apr_7e8f")));
    assert_eq!(why, "there is no approval matching apr_7e8f");
}

#[test]
fn id_fragments_cross_the_wire_and_malformed_ones_are_refused_there() {
    let requests = [
        Request::Revoke {
            grant: id_ref("grt_3ae9531e"),
            by: None,
        },
        Request::Grant {
            agent: AgentRef::parse("agt_1a2b").unwrap(),
            capability: "email.send@mailbox:a".parse().unwrap(),
            from: Some(id_ref("grt_0190f2a0c3d47a1b9e2f3a4b5c6d7e8f")),
            by: Some(AgentRef::parse("agt_1a2b3c4d").unwrap()),
        },
        Request::Decide {
            approval: id_ref("apr_0190"),
            approved: false,
            note: None,
        },
        Request::AcceptShare {
            share: id_ref("shr_00e35d84"),
            by: None,
        },
        Request::CloseShare {
            share: id_ref("shr_00e35d84"),
            by: None,
        },
    ];
    for r in requests {
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r, "{line}");
    }
    // An `act` of before the `approval` field still parses.
    let act =
        r#"{"op": "act", "agent": "lab/scout", "params": {"action": "a.b", "resource": "x:y"}}"#;
    assert!(matches!(
        serde_json::from_str::<Request>(act).unwrap(),
        Request::Act { approval: None, .. }
    ));
    for bad in [
        r#"{"op": "revoke", "grant": "grt_3ae", "by": null}"#,
        r#"{"op": "revoke", "grant": "shr_3ae9531e", "by": null}"#,
        r#"{"op": "decide", "approval": "apr_nothex", "approved": true, "note": null}"#,
        r#"{"op": "accept_share", "share": "shr_", "by": null}"#,
    ] {
        assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
    }
}
