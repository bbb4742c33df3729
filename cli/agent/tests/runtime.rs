//! `roster-agent` against roster-runtime's own gateway server: the socket, framing, rate limits
//! and answers the daemon serves, over a world recorded through the ledger in a real in-memory
//! log. What the agent prints must be exactly what the runtime answers, and a retired agent
//! must be refused with the exit code of a refusal.
//!
//! (`gateway.rs` beside this one tests the client's failure paths against a peer that can go
//! silent or hang up, which the runtime's server never does on purpose.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::{Arc, Mutex, PoisonError};

use roster_core::actor::Actor;
use roster_core::capability::{Action, Amount, Capability, Resource};
use roster_core::command::Command;
use roster_core::event::{AgentSpec, Event};
use roster_core::gateway::answer::Answer;
use roster_core::gateway::{Call, ErrorCode, GatewayError, HistoryParams};
use roster_core::id::{AgentId, TeamId};
use roster_core::name::{Label, Name};
use roster_runtime::app::{now, App};
use roster_runtime::gateway::answer::read_only;
use roster_runtime::gateway::{
    serve_agent, Access, AgentGateway, Backend, Limits, Reply, SOCKET_NAME,
};
use roster_store::MemLog;
use serde_json::Value;

/// The daemon's read answers, over an `App` in memory: what the daemon's backend does for the
/// calls that read, without a daemon around it.
struct Reads(Mutex<App>);

impl Backend for Reads {
    fn call(&self, agent: AgentId, call: Call) -> Reply {
        let app = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        read_only(&**app.log(), app.world(), agent, &call, now()).unwrap_or_else(|| {
            Err(GatewayError::new(
                ErrorCode::UnknownMethod,
                "only reads are served here",
            ))
        })
    }
}

/// A team (`lab`) with a lead holding two grants, one spent from, and a retired agent.
struct Lab {
    app: Arc<Reads>,
    lead: AgentId,
    retired: AgentId,
}

fn operator() -> Actor {
    Actor::Operator(Name::parse("op").unwrap())
}

fn hire(app: &mut App, team: TeamId, name: &str, grants: &[&str]) -> AgentId {
    let hired = app
        .execute(
            Command::Hire {
                team,
                name: Name::parse(name).unwrap(),
                role: Label::parse("reads the news").unwrap(),
                spec: AgentSpec::base(),
                disk: roster_core::limits::DiskMib::default(),
                grants: grants
                    .iter()
                    .map(|c| Capability::parse(c).unwrap())
                    .collect(),
            },
            &operator(),
        )
        .unwrap();
    hired
        .iter()
        .find_map(|e| match e.event {
            Event::AgentHired { agent, .. } => Some(agent),
            _ => None,
        })
        .unwrap()
}

impl Lab {
    fn new() -> Lab {
        let mut app = App::over(Arc::new(MemLog::new())).unwrap();
        let created = app
            .execute(
                Command::CreateTeam {
                    name: Name::parse("lab").unwrap(),
                },
                &operator(),
            )
            .unwrap();
        let team = created[0].team;
        let lead = hire(
            &mut app,
            team,
            "lead",
            &["news.read@feed:*", "spend.usd@vendor:*,budget=10"],
        );
        app.execute(
            Command::Act {
                action: Action::parse("spend.usd").unwrap(),
                resource: Resource::parse("vendor:acme").unwrap(),
                amount: Amount::new(3).unwrap(),
                args: Default::default(),
                approval: None,
                key: None,
            },
            &Actor::Agent(lead),
        )
        .unwrap();
        let retired = hire(&mut app, team, "temp", &[]);
        app.execute(Command::Retire { agent: retired }, &operator())
            .unwrap();
        Lab {
            app: Arc::new(Reads(Mutex::new(app))),
            lead,
            retired,
        }
    }

    /// What the runtime answers `agent`'s `call`, as JSON.
    fn answer(&self, agent: AgentId, call: Call) -> Value {
        match self.app.call(agent, call).unwrap() {
            Answer::Whoami(a) => serde_json::to_value(a),
            Answer::Grants(a) => serde_json::to_value(a),
            Answer::History(a) => serde_json::to_value(a),
            other => panic!("not asked here: {other:?}"),
        }
        .unwrap()
    }
}

/// The runtime's gateway for one agent, on its own tokio runtime (dropped with it).
struct Served {
    _dir: tempfile::TempDir,
    path: PathBuf,
    _gateway: AgentGateway,
    _rt: tokio::runtime::Runtime,
}

fn serve(lab: &Lab, agent: AgentId) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let gw_dir = dir.path().join(agent.to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backend: Arc<dyn Backend> = lab.app.clone();
    let gateway = rt
        .block_on(serve_agent(
            &gw_dir,
            agent,
            backend,
            Limits::default(),
            Access::Open,
        ))
        .unwrap();
    Served {
        path: gw_dir.join(SOCKET_NAME),
        _dir: dir,
        _gateway: gateway,
        _rt: rt,
    }
}

/// `roster-agent ARGS` through `socket`: exit code, stdout, stderr.
fn agent(socket: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_roster-agent"))
        .args(args)
        .env("ROSTER_GATEWAY", socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout:?}"))
}

#[test]
fn whoami_and_grants_print_exactly_what_the_runtime_answers() {
    let lab = Lab::new();
    let served = serve(&lab, lab.lead);
    let (code, out, err) = agent(&served.path, &["whoami"]);
    assert_eq!(code, 0, "{err}");
    let me = json_of(&out);
    assert_eq!(me, lab.answer(lab.lead, Call::Whoami));
    assert_eq!(me["address"], "lab/lead");
    let (code, out, err) = agent(&served.path, &["grants"]);
    assert_eq!(code, 0, "{err}");
    let grants = json_of(&out);
    assert_eq!(grants, lab.answer(lab.lead, Call::Grants));
    let spend = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["capability"] == "spend.usd@vendor:*,budget=10")
        .unwrap();
    assert_eq!(
        (spend["spent"].as_u64(), spend["left"].as_u64()),
        (Some(3), Some(7))
    );
}

#[test]
fn history_pages_through_the_teams_events_as_the_runtime_reads_them() {
    let lab = Lab::new();
    let served = serve(&lab, lab.lead);
    let (code, out, err) = agent(&served.path, &["history", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    let page = json_of(&out);
    let asked = HistoryParams {
        from: None,
        limit: Some(2),
    };
    let expected = lab.answer(lab.lead, Call::History(asked));
    assert_eq!(page, expected);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    // The next page starts where this one said.
    let next = page["next"].as_u64().unwrap().to_string();
    let (code, out, err) = agent(&served.path, &["history", "--from", &next]);
    assert_eq!(code, 0, "{err}");
    let rest = json_of(&out);
    let first_rest = &rest["events"][0];
    assert_eq!(first_rest["version"].as_u64(), page["next"].as_u64());
}

#[test]
fn a_retired_agent_is_refused_with_the_exit_code_of_a_refusal() {
    let lab = Lab::new();
    let served = serve(&lab, lab.retired);
    let (code, out, err) = agent(&served.path, &["whoami"]);
    assert_eq!(
        code,
        i32::from(ErrorCode::Denied.exit_code()),
        "{out} {err}"
    );
    assert!(out.is_empty(), "{out}");
    let e: Value = serde_json::from_str(err.trim_end()).unwrap();
    assert_eq!(e["code"], "denied", "{e}");
}
