//! The operations run in-process on a data directory of their own (no daemon), their items
//! collected as a client would receive them.

use std::sync::{Arc, Mutex};

use roster_core::name::Name;
use roster_core::refs::{AgentRef, TeamRef};

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
