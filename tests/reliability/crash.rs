//! Reliability, crash (issue 6): `roster serve` is killed with SIGKILL at a random moment of a
//! burst of hires, delegations, retirements and actions from many clients at once — agents
//! through their own gateway sockets, as their processes would, and an operator through the
//! CLI — and started again, round after round, on a real `nats-server` of its own.
//!
//! Every answer that says something was done is an acknowledgement, kept with the events it
//! named. After each crash, on the store exactly as the crash left it (read by the CLI with no
//! daemon): every acknowledged event is in the log, byte for byte as acknowledged; positions are
//! gapless and linked and `roster verify` passes; each agent was hired once (an unacknowledged
//! hire is tried again after the restart, under the same name: it must then be refused or
//! happen, never twice); the agents and grants the CLI folds are exactly the log's, and every
//! grant's spent is the sum of the uses charged to it. After the restart: each agent in service
//! runs exactly one container in the namespace and answers on its socket as itself, a retired
//! one has none. An outside subscriber (`roster subscribe --durable`, a separate process, itself
//! stopped and resumed mid-burst every other round) sees the whole log through JetStream exactly
//! once, in order: at the end its lines are the log's `roster export` lines, one for one.
//!
//! Odd rounds start their burst as soon as the daemon answers, so the kill can land while it
//! reconciles its containers; even rounds first wait for everything to converge and check it.
//! `ROSTER_LONG=1` runs many more rounds with more agents.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{docker, ok_in, rand_u32, roster_in, scaled, wait_for, Served};
use roster_bus::NatsServer;
use serde_json::{json, Value};

const TEAM: &str = "crew";
/// Each lead's spending grant, which its helpers' grants derive from.
const LEAD_SPEND: &str = "spend.usd@*,budget=1000000";
/// What a lead gives each helper it hires.
const HELPER_SPEND: &str = "spend.usd@vendor:*,budget=100000";
/// What a lead delegates to a helper during the burst.
const DELEGATED: &str = "spend.usd@vendor:acme,budget=5";
/// The only action carried out, by a program that reads the call and answers `{}`.
const TOOLS: &str = r#"
[agent]
disk_mib = 64

[tools."spend.usd"]
exec = ["/bin/sh", "-c", "cat >/dev/null; echo '{}'"]
"#;
/// Long enough for any answer on a loaded machine; a live daemon that says nothing for this
/// long is hung, which fails the test.
const ANSWER: Duration = Duration::from_secs(60);
/// How long containers, the outbox and the subscriber get to catch up after a restart.
const SETTLE: Duration = Duration::from_secs(120);
/// The kill lands at a random moment this long into the burst at most.
const BURST_MS: u32 = 2500;

/// An answer that said something was done.
#[derive(Debug, Clone)]
struct Ack {
    /// Who asked what, for messages.
    what: String,
    /// The events the answer named, as it printed them (whole envelopes).
    events: Vec<Value>,
    /// An `act` answer's `performed` event id.
    performed: Option<String>,
    /// The agent and the idempotency key of a keyed `act`.
    key: Option<(String, String)>,
}

type Acks = Mutex<Vec<Ack>>;

fn kind(e: &Value) -> &str {
    e["event"]
        .as_object()
        .and_then(|o| o.keys().next())
        .map_or("", String::as_str)
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn json(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    json_lines(&ok_in(dir, &all))
}

/// What became of one request on a connection the daemon may drop at any moment.
enum Outcome {
    Done(Value),
    Refused(Value),
    /// No answer: the daemon went away (or the request could not be sent). It may have been
    /// carried out or not.
    Lost,
}

/// A client of an agent's gateway socket that survives the daemon dying under it.
struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next: u64,
}

impl Conn {
    /// Connects to `agent`'s socket as soon as the daemon opens it; `None` once `stop` is set.
    fn open(dir: &Path, agent: &str, stop: &AtomicBool) -> Option<Conn> {
        let path = dir.join("gateways").join(agent).join("gateway.sock");
        loop {
            if stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Ok(s) = UnixStream::connect(&path) {
                s.set_read_timeout(Some(ANSWER)).unwrap();
                return Some(Conn {
                    reader: BufReader::new(s.try_clone().unwrap()),
                    writer: s,
                    next: 1,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn call(&mut self, method: &str, params: Value, stop: &AtomicBool) -> Outcome {
        loop {
            let id = self.next;
            self.next += 1;
            let req = json!({ "id": id, "method": method, "params": params });
            if writeln!(self.writer, "{req}").is_err() {
                return Outcome::Lost;
            }
            let answer = loop {
                let mut line = String::new();
                match self.reader.read_line(&mut line) {
                    Ok(0) => return Outcome::Lost,
                    Ok(_) if !line.ends_with('\n') => return Outcome::Lost,
                    Ok(_) => {}
                    Err(_) if stop.load(Ordering::SeqCst) => return Outcome::Lost,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        return Outcome::Lost
                    }
                    Err(e) => {
                        panic!("{method}: no answer from a live daemon within {ANSWER:?}: {e}")
                    }
                }
                let v: Value = serde_json::from_str(&line).unwrap();
                if v.get("push").is_none() {
                    break v;
                }
            };
            assert_eq!(answer["id"], id, "an answer to another request: {answer}");
            if let Some(v) = answer.get("ok") {
                return Outcome::Done(v.clone());
            }
            let err = answer["error"].clone();
            if err["code"] != "rate_limited" {
                return Outcome::Refused(err);
            }
            // Not carried out: slow down and ask again.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A lead: hired by the operator, it hires helpers, delegates to them, spends, retires them.
#[derive(Debug)]
struct Lead {
    id: String,
    /// Its `LEAD_SPEND` grant.
    grant: String,
    /// The helpers it hired (acknowledged) and has not retired.
    helpers: Vec<String>,
    /// Helpers whose retirement was asked and not answered: asked again.
    dropped: Vec<String>,
    /// Helpers whose retirement, asked again, was refused: the first one happened.
    retired: Vec<String>,
    /// A hire whose answer was lost: tried again first.
    pending: Option<String>,
    hired: usize,
}

/// Everything the burst's clients share.
struct Burst<'a> {
    dir: &'a Path,
    stop: &'a AtomicBool,
    acks: &'a Acks,
    round: usize,
    tally: &'a Tally,
    /// Each agent's keyed act whose answer a kill took: asked again next round.
    lost_keys: &'a Mutex<HashMap<String, String>>,
}

/// How often the interesting paths were taken, printed at the end.
#[derive(Debug, Default)]
struct Tally {
    /// Requests whose answer the kill took away.
    lost: AtomicUsize,
    /// Hires tried again after a lost answer that happened then.
    retried: AtomicUsize,
    /// Hires tried again after a lost answer that had happened before (refused: name taken).
    taken: AtomicUsize,
    /// Keyed acts asked again after a lost answer, carried out then.
    keyed_retried: AtomicUsize,
    /// Keyed acts asked again after a lost answer, carried out before: answered from the log.
    replayed: AtomicUsize,
}

fn bump(n: &AtomicUsize) {
    n.fetch_add(1, Ordering::SeqCst);
}

impl Burst<'_> {
    fn ack(&self, what: String, events: Vec<Value>, performed: Option<String>) {
        self.acks.lock().unwrap().push(Ack {
            what: format!("round {}: {what}", self.round),
            events,
            performed,
            key: None,
        });
    }

    /// A request lost its answer: the daemon went away.
    fn gone(&self) {
        bump(&self.tally.lost);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// A lead at work until the daemon goes away: at most `hires` hires (a hire that lost its
    /// answer last round first), and delegations, spends and retirements as fast as it can.
    fn lead(&self, index: usize, me: &mut Lead, hires: usize) {
        let Some(mut c) = Conn::open(self.dir, &me.id, self.stop) else {
            return;
        };
        let mut hires_left = hires;
        let mut turn = 0usize;
        while !self.stopped() {
            turn += 1;
            // Keep at most two helpers (three while one is being hired); a retirement whose
            // answer was lost is asked again first.
            while !me.dropped.is_empty() || me.helpers.len() > 2 {
                let (agent, retry) = match me.dropped.pop() {
                    Some(a) => (a, true),
                    None => (me.helpers.remove(0), false),
                };
                match c.call("retire", json!({ "agent": agent }), self.stop) {
                    Outcome::Done(v) => {
                        let events = v["events"].as_array().unwrap().clone();
                        self.ack(format!("lead {index} retire {agent}"), events, None);
                    }
                    // The lost retirement happened: checked after the next crash.
                    Outcome::Refused(_) if retry => me.retired.push(agent),
                    Outcome::Refused(e) => panic!("lead {index} retire {agent} refused: {e}"),
                    Outcome::Lost => {
                        me.dropped.push(agent);
                        return self.gone();
                    }
                }
            }
            if hires_left > 0 {
                let retry = me.pending.is_some();
                let name = me.pending.take().unwrap_or_else(|| {
                    me.hired += 1;
                    format!("h{index}-{}", me.hired)
                });
                let params = json!({"name": name, "grants": [HELPER_SPEND]});
                match c.call("hire", params, self.stop) {
                    Outcome::Done(v) => {
                        let agent = text(&v["agent"]);
                        let events = v["events"].as_array().unwrap().clone();
                        let hired = events.iter().find(|e| kind(e) == "AgentHired").unwrap();
                        assert_eq!(hired["event"]["AgentHired"]["agent"], agent.as_str());
                        self.ack(format!("lead {index} hire {name}"), events, None);
                        me.helpers.push(agent);
                        hires_left -= 1;
                        if retry {
                            bump(&self.tally.retried);
                        }
                    }
                    Outcome::Refused(e) if retry && text(&e["message"]).contains("already") => {
                        // The lost hire happened: its agent is there (checked by name).
                        hires_left -= 1;
                        bump(&self.tally.taken);
                    }
                    Outcome::Refused(e) => panic!("lead {index} hire {name} refused: {e}"),
                    Outcome::Lost => {
                        me.pending = Some(name);
                        return self.gone();
                    }
                }
            }
            if !me.helpers.is_empty() {
                let to = me.helpers[turn % me.helpers.len()].clone();
                let params = json!({"to": to, "capability": DELEGATED, "from": me.grant});
                match c.call("delegate", params, self.stop) {
                    Outcome::Done(v) => {
                        let events = v["events"].as_array().unwrap().clone();
                        self.ack(format!("lead {index} delegate to {to}"), events, None);
                    }
                    Outcome::Refused(e) => panic!("lead {index} delegate to {to} refused: {e}"),
                    Outcome::Lost => return self.gone(),
                }
            }
            let params = json!({"action": "spend.usd", "resource": "vendor:acme", "amount": 1});
            match c.call("act", params, self.stop) {
                Outcome::Done(v) => {
                    let performed = text(&v["performed"]);
                    self.ack(format!("lead {index} act"), Vec::new(), Some(performed));
                }
                Outcome::Refused(e) => panic!("lead {index} act refused: {e}"),
                Outcome::Lost => return self.gone(),
            }
        }
    }

    /// Any other agent in service: spends until the daemon goes away (a refusal — its budget
    /// spent — ends it too), each spend under an idempotency key; one whose answer a kill took
    /// is asked again first, with its key, and must be answered done — carried out then, or
    /// before and answered from the log — never done twice.
    fn spender(&self, agent: &str, resource: &str) {
        let Some(mut c) = Conn::open(self.dir, agent, self.stop) else {
            return;
        };
        let mut pending = self.lost_keys.lock().unwrap().remove(agent);
        let mut n = 0;
        while !self.stopped() {
            let (key, retry) = match pending.take() {
                Some(key) => (key, true),
                None => {
                    n += 1;
                    (format!("r{}-{n}", self.round), false)
                }
            };
            let params =
                json!({"action": "spend.usd", "resource": resource, "amount": 1, "key": key});
            match c.call("act", params, self.stop) {
                Outcome::Done(v) => {
                    let replayed = v["replayed"] == true;
                    match (retry, replayed) {
                        (true, true) => bump(&self.tally.replayed),
                        (true, false) => bump(&self.tally.keyed_retried),
                        (false, true) => panic!("{agent} act {key}, new, answered as done: {v}"),
                        (false, false) => {}
                    }
                    self.acks.lock().unwrap().push(Ack {
                        what: format!("round {}: {agent} act {key}", self.round),
                        events: Vec::new(),
                        performed: Some(text(&v["performed"])),
                        key: Some((agent.to_owned(), key)),
                    });
                }
                Outcome::Refused(e) => {
                    assert_eq!(e["code"], "denied", "{agent} act {key}: {e}");
                    return;
                }
                Outcome::Lost => {
                    self.lost_keys.lock().unwrap().insert(agent.to_owned(), key);
                    return self.gone();
                }
            }
        }
    }

    /// The operator, through the CLI: hires (at most `hires`, a lost one first), root grants to
    /// the leads, `roster act` as a lead, retirements of its own earlier hires. A command that
    /// starts after the kill runs on the store itself, as the CLI does with no daemon: that is
    /// acknowledged too.
    fn operator(&self, op: &mut Operator, leads: &[String], hires: usize) {
        let mut hires_left = hires;
        while !self.stopped() {
            op.turn += 1;
            if hires_left > 0 {
                let retry = op.pending.is_some();
                let name = op.pending.take().unwrap_or_else(|| {
                    op.hired += 1;
                    format!("op-{}", op.hired)
                });
                let cap = "spend.usd@vendor:op,budget=1000000";
                let out = roster_in(
                    self.dir,
                    &[
                        "--json", "hire", "--team", TEAM, "--name", &name, "--grant", cap,
                    ],
                );
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.success() {
                    let events = json_lines(&String::from_utf8(out.stdout).unwrap());
                    let hired = events.iter().find(|e| kind(e) == "AgentHired").unwrap();
                    let agent = text(&hired["event"]["AgentHired"]["agent"]);
                    self.ack(format!("operator hire {name}"), events, None);
                    op.agents.push(agent);
                    hires_left -= 1;
                    if retry {
                        bump(&self.tally.retried);
                    }
                } else if retry && stderr.contains("already") {
                    hires_left -= 1;
                    bump(&self.tally.taken);
                } else if lost(&stderr) {
                    op.pending = Some(name);
                    return self.gone();
                } else {
                    panic!("roster hire {name}: {stderr}");
                }
            }
            let lead = &leads[op.turn % leads.len()];
            let cap = format!("email.send@mailbox:m{}", op.turn);
            let out = roster_in(self.dir, &["--json", "grant", lead, &cap]);
            if out.status.success() {
                let events = json_lines(&String::from_utf8(out.stdout).unwrap());
                self.ack(format!("operator grant {cap} to {lead}"), events, None);
            } else if lost(&String::from_utf8_lossy(&out.stderr)) {
                return self.gone();
            } else {
                panic!("roster grant: {}", String::from_utf8_lossy(&out.stderr));
            }
            let out = roster_in(
                self.dir,
                &[
                    "--json",
                    "act",
                    lead,
                    "spend.usd",
                    "vendor:cli",
                    "--amount",
                    "2",
                ],
            );
            if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                let performed = text(&v["performed"]);
                self.ack(
                    format!("operator act as {lead}"),
                    Vec::new(),
                    Some(performed),
                );
            } else if lost(&String::from_utf8_lossy(&out.stderr)) {
                return self.gone();
            } else {
                panic!("roster act: {}", String::from_utf8_lossy(&out.stderr));
            }
            while !op.dropped.is_empty() || op.agents.len() > 1 {
                let (agent, retry) = match op.dropped.pop() {
                    Some(a) => (a, true),
                    None => (op.agents.remove(0), false),
                };
                let out = roster_in(self.dir, &["--json", "retire", &agent]);
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.success() {
                    let events = json_lines(&String::from_utf8(out.stdout).unwrap());
                    self.ack(format!("operator retire {agent}"), events, None);
                } else if lost(&stderr) {
                    op.dropped.push(agent);
                    return self.gone();
                } else if retry {
                    // The lost retirement happened: checked after the next crash.
                    op.retired.push(agent);
                } else {
                    panic!("roster retire {agent}: {stderr}");
                }
            }
        }
    }
}

/// Whether a failed command failed because the daemon went away under it (its outcome unknown).
fn lost(stderr: &str) -> bool {
    stderr.contains("went away") || stderr.contains("Broken pipe") || stderr.contains("reset")
}

/// The operator's own hires.
#[derive(Debug, Default)]
struct Operator {
    agents: Vec<String>,
    /// Retirements whose answer was lost: asked again.
    dropped: Vec<String>,
    /// Retirements asked again and refused: the first one happened.
    retired: Vec<String>,
    pending: Option<String>,
    hired: usize,
    turn: usize,
}

/// `roster subscribe --durable` as a separate process, its lines collected as they come.
struct Subscriber {
    child: Option<Child>,
    reader: Option<std::thread::JoinHandle<()>>,
    lines: Arc<Mutex<Vec<String>>>,
    args: Vec<String>,
    dir: PathBuf,
}

impl Subscriber {
    fn start(dir: &Path, url: &str, ns: &str) -> Subscriber {
        let mut s = Subscriber {
            child: None,
            reader: None,
            lines: Arc::default(),
            args: ["subscribe", "--bus", url, "--ns", ns, "--durable", "audit"]
                .map(str::to_owned)
                .to_vec(),
            dir: dir.to_owned(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_roster"))
            .arg("--data-dir")
            .arg(&self.dir)
            .args(&self.args)
            .env_remove("ROSTER_JSON")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let lines = Arc::clone(&self.lines);
        self.reader = Some(std::thread::spawn(move || {
            for line in stdout.split(b'\n') {
                let line = String::from_utf8(line.unwrap()).unwrap();
                lines.lock().unwrap().push(line);
            }
        }));
        self.child = Some(child);
    }

    /// SIGTERM, as an operator stops it: it must end cleanly, every line it printed acked.
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("roster subscribe did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.reader.take().unwrap().join().unwrap();
        assert!(status.success(), "roster subscribe ended with {status}");
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The namespace's containers: agent id → states.
fn containers(ns: &str) -> BTreeMap<String, Vec<String>> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=roster.ns={ns}"),
        "--format",
        "{{.Label \"roster.prep\"}} {{.Label \"roster.agent\"}} {{.State}}",
    ]);
    assert!(out.status.success(), "docker ps failed");
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // A home's preparation (no agent's container) starts with the volume it prepares.
        let Some(line) = line.strip_prefix(' ') else {
            continue;
        };
        let (agent, state) = line.split_once(' ').unwrap_or((line, ""));
        found
            .entry(agent.to_owned())
            .or_default()
            .push(state.to_owned());
    }
    found
}

/// The store exactly as the crash left it, read with no daemon: every acknowledged event, the
/// chain, one hire per agent and per name, the folded agents and grants. Returns the log's
/// export lines and the agents in service.
fn check_store(dir: &Path, acks: &[Ack], round: usize) -> (Vec<String>, Vec<String>) {
    let verify = ok_in(dir, &["verify"]);
    assert!(verify.starts_with("ok:"), "round {round}: {verify}");
    let export = common::event_lines(&ok_in(dir, &["export"]));
    let log = json(dir, &["log"]);
    assert_eq!(log.len(), export.len());
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["seq"], i, "round {round}: a gap at {i}");
        if i > 0 {
            assert_eq!(
                e["prev_hash"],
                log[i - 1]["hash"],
                "round {round}: link {i}"
            );
        }
        let line: Value = serde_json::from_str(&export[i]).unwrap();
        assert_eq!(&line, e, "round {round}: export and log differ at {i}");
    }

    let by_id: HashMap<String, &Value> = log.iter().map(|e| (text(&e["id"]), e)).collect();
    assert_eq!(by_id.len(), log.len(), "round {round}: an event id twice");
    for ack in acks {
        for e in &ack.events {
            let id = text(&e["id"]);
            let found = by_id
                .get(&id)
                .unwrap_or_else(|| panic!("{}: acknowledged {id} is not in the log", ack.what));
            assert_eq!(
                *found, e,
                "{}: acknowledged as one thing, logged as another",
                ack.what
            );
        }
        if let Some(id) = &ack.performed {
            let found = by_id
                .get(id)
                .unwrap_or_else(|| panic!("{}: acknowledged {id} is not in the log", ack.what));
            assert_eq!(kind(found), "ActionPerformed", "{}", ack.what);
        }
    }

    // Each key of an agent carried out once, and an answer under a key — asked again after a
    // kill too — names the use recorded with it.
    let mut keyed: HashMap<(String, String), Option<String>> = HashMap::new();
    for (i, e) in log.iter().enumerate() {
        if kind(e) != "CallKeyed" {
            continue;
        }
        let k = &e["event"]["CallKeyed"];
        let outcome = k["outcome"].as_u64().unwrap() as usize;
        let performed = log[i + 1..=i + outcome]
            .iter()
            .find(|o| kind(o) == "ActionPerformed")
            .map(|o| text(&o["id"]));
        let first = keyed.insert((text(&k["agent"]), text(&k["key"])), performed);
        assert!(first.is_none(), "round {round}: key carried out twice: {k}");
    }
    for ack in acks {
        if let Some(key) = &ack.key {
            assert_eq!(
                keyed.get(key),
                Some(&ack.performed),
                "{}: answered with another use than its key's",
                ack.what
            );
        }
    }

    // Each agent hired once; names unique (the test never reuses one: a repeated name is a
    // retried hire that happened twice).
    let mut hired: BTreeMap<String, String> = BTreeMap::new();
    let mut names = HashSet::new();
    let mut retired = HashSet::new();
    for e in &log {
        match kind(e) {
            "AgentHired" => {
                let h = &e["event"]["AgentHired"];
                assert!(
                    names.insert(text(&h["name"])),
                    "round {round}: {} hired twice: {e}",
                    h["name"]
                );
                let previous = hired.insert(text(&h["agent"]), text(&h["name"]));
                assert!(previous.is_none(), "round {round}: agent hired twice: {e}");
            }
            "AgentRetired" => {
                retired.insert(text(&e["event"]["AgentRetired"]["agent"]));
            }
            _ => {}
        }
    }
    let agents = json(dir, &["agents", "--all"]);
    let folded: BTreeMap<String, String> = agents
        .iter()
        .map(|a| (text(&a["id"]), text(&a["name"])))
        .collect();
    assert_eq!(
        folded.len(),
        agents.len(),
        "round {round}: an agent listed twice"
    );
    assert_eq!(folded, hired, "round {round}: the agents are not the log's");
    for a in &agents {
        let is_retired = a["status"] == "retired";
        assert_eq!(
            is_retired,
            retired.contains(&text(&a["id"])),
            "round {round}: {a}"
        );
    }

    // Grants: exactly the log's; each one's spent is the sum of the uses charged to it.
    let issued: HashSet<String> = log
        .iter()
        .filter(|e| kind(e) == "GrantIssued")
        .map(|e| text(&e["event"]["GrantIssued"]["grant"]))
        .collect();
    let mut charged: HashMap<String, u64> = HashMap::new();
    for e in log.iter().filter(|e| kind(e) == "ActionPerformed") {
        let p = &e["event"]["ActionPerformed"];
        for g in p["chain"].as_array().unwrap() {
            *charged.entry(text(g)).or_default() += p["amount"].as_u64().unwrap();
        }
    }
    let grants = json(dir, &["grants"]);
    let listed: HashSet<String> = grants.iter().map(|g| text(&g["id"])).collect();
    assert_eq!(
        listed.len(),
        grants.len(),
        "round {round}: a grant listed twice"
    );
    assert_eq!(
        listed, issued,
        "round {round}: the grants are not the log's"
    );
    for g in &grants {
        let want = charged.get(&text(&g["id"])).copied().unwrap_or(0);
        assert_eq!(g["spent"], want, "round {round}: spent of {g}");
    }

    let in_service = hired
        .keys()
        .filter(|a| !retired.contains(*a))
        .cloned()
        .collect();
    (export, in_service)
}

/// With the daemon up: each agent in service runs exactly one container (never two at any
/// moment seen) and answers on its socket as itself; retired and unknown agents have none.
fn check_running(s: &Served, in_service: &[String], round: usize) {
    let wanted: HashSet<&String> = in_service.iter().collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let found = containers(&s.ns);
        for (agent, states) in &found {
            assert!(states.len() <= 1, "round {round}: {agent} has {states:?}");
        }
        let converged = found.len() == wanted.len()
            && found
                .iter()
                .all(|(a, st)| wanted.contains(a) && st == &["running"]);
        if converged {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "round {round}: the containers did not converge within {SETTLE:?}: found {found:?}, \
             wanted {wanted:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let never = AtomicBool::new(false);
    for agent in in_service {
        let mut c = Conn::open(&s.dir, agent, &never).unwrap();
        match c.call("whoami", Value::Null, &never) {
            Outcome::Done(v) => assert_eq!(v["id"], agent.as_str(), "round {round}"),
            Outcome::Refused(e) => panic!("round {round}: {agent} whoami: {e}"),
            Outcome::Lost => panic!("round {round}: {agent}'s gateway hung up"),
        }
    }
}

/// The subscriber got at least the first `export.len()` events, exactly those, in order.
fn check_subscriber(sub: &Subscriber, export: &[String], round: usize) {
    wait_for(
        &format!(
            "round {round}: the subscriber to see {} events",
            export.len()
        ),
        SETTLE,
        || sub.lines().len() >= export.len(),
    );
    let lines = sub.lines();
    for (i, want) in export.iter().enumerate() {
        assert_eq!(&lines[i], want, "round {round}: the subscriber's event {i}");
    }
}

#[test]
fn acknowledged_work_survives_sigkill_of_the_daemon_and_subscribers_see_it_once() {
    let started = Instant::now();
    let rounds = scaled(5, 20);
    let leads_n = scaled(3, 5);
    let hires = scaled(1, 2);

    let nats = NatsServer::start().unwrap_or_else(|e| panic!("this test needs nats-server: {e}"));
    let url = nats.url();
    let ns = format!("t{:x}", rand_u32());
    let mut s = Served::configured(ns.clone(), &["--bus", &url], Some(TOOLS));
    let dir = s.dir.clone();
    ok_in(&dir, &["team", "create", TEAM]);
    let mut leads: Vec<Lead> = (0..leads_n)
        .map(|i| {
            let name = format!("lead-{i}");
            let id = s.hire_into(
                TEAM,
                &name,
                &[
                    "--grant",
                    "agent.hire@team:crew",
                    "--grant",
                    "agent.retire@team:crew",
                    "--grant",
                    "grant.delegate@team:crew",
                    "--grant",
                    LEAD_SPEND,
                ],
            );
            let grant = json(&dir, &["grants", &id])
                .into_iter()
                .find(|g| g["capability"] == LEAD_SPEND)
                .map(|g| text(&g["id"]))
                .unwrap();
            Lead {
                id,
                grant,
                helpers: Vec::new(),
                dropped: Vec::new(),
                retired: Vec::new(),
                pending: None,
                hired: 0,
            }
        })
        .collect();
    let lead_names: Vec<String> = (0..leads_n).map(|i| format!("{TEAM}/lead-{i}")).collect();
    let mut operator = Operator::default();
    let mut sub = Subscriber::start(&dir, &url, &ns);

    let acks: Acks = Mutex::new(Vec::new());
    let tally = Tally::default();
    let lost_keys = Mutex::new(HashMap::new());
    let mut in_service: Vec<String> = leads.iter().map(|l| l.id.clone()).collect();
    let mut export = Vec::new();
    for round in 0..rounds {
        if round % 2 == 0 {
            check_running(&s, &in_service, round);
            check_subscriber(&sub, &export, round);
        }
        let stop = AtomicBool::new(false);
        let burst = Burst {
            dir: &dir,
            stop: &stop,
            acks: &acks,
            round,
            tally: &tally,
            lost_keys: &lost_keys,
        };
        // Everyone in service who is not a lead spends; the leads do everything.
        let lead_ids: HashSet<String> = leads.iter().map(|l| l.id.clone()).collect();
        let spenders: Vec<String> = in_service
            .iter()
            .filter(|a| !lead_ids.contains(*a))
            .cloned()
            .collect();
        let op_agents: HashSet<String> = operator.agents.iter().cloned().collect();
        let before = acks.lock().unwrap().len();
        let delay = Duration::from_millis(u64::from(rand_u32() % BURST_MS));
        std::thread::scope(|scope| {
            for (i, lead) in leads.iter_mut().enumerate() {
                let burst = &burst;
                scope.spawn(move || burst.lead(i, lead, hires));
            }
            for agent in &spenders {
                let burst = &burst;
                let resource = if op_agents.contains(agent) {
                    "vendor:op"
                } else {
                    "vendor:acme"
                };
                scope.spawn(move || burst.spender(agent, resource));
            }
            {
                let (burst, op, names) = (&burst, &mut operator, &lead_names);
                scope.spawn(move || burst.operator(op, names, hires));
            }
            if round % 2 == 1 {
                // The subscriber stops and resumes its durable subscription mid-burst.
                std::thread::sleep(delay / 2);
                sub.restart();
                std::thread::sleep(delay / 2);
            } else {
                std::thread::sleep(delay);
            }
            s.kill();
            stop.store(true, Ordering::SeqCst);
        });
        let acked = acks.lock().unwrap().len() - before;
        let (exported, serving) = check_store(&dir, &acks.lock().unwrap(), round);
        eprintln!(
            "round {round}: killed after {delay:?}, {acked} acknowledgements, {} agents in \
             service (helpers {:?}); {:?} so far",
            serving.len(),
            leads.iter().map(|l| l.helpers.len()).collect::<Vec<_>>(),
            started.elapsed()
        );
        for lead in &leads {
            for agent in lead.retired.iter().chain(&operator.retired) {
                assert!(
                    !serving.contains(agent),
                    "round {round}: {agent}'s retirement was refused as done, yet it serves"
                );
            }
        }
        export = exported;
        in_service = serving;
        s.start();
    }
    check_running(&s, &in_service, rounds);
    // The log at rest (no burst, containers converged): the subscriber has it all, once.
    let final_export = common::event_lines(&ok_in(&dir, &["export"]));
    assert!(final_export.len() >= export.len());
    check_subscriber(&sub, &final_export, rounds);
    sub.stop();
    let lines = sub.lines();
    assert_eq!(
        lines.len(),
        final_export.len(),
        "the subscriber saw more than the log holds: {:?}",
        &lines[final_export.len().min(lines.len())..]
    );
    // Its positions and hashes are the log's, gapless.
    let log = s.events();
    for (i, (line, e)) in lines.iter().zip(&log).enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!((&v["seq"], &v["hash"]), (&json!(i), &e["hash"]));
    }
    let acks = acks.into_inner().unwrap();
    let kinds =
        acks.iter()
            .flat_map(|a| &a.events)
            .fold(BTreeMap::<&str, usize>::new(), |mut m, e| {
                *m.entry(kind(e)).or_default() += 1;
                m
            });
    let acts = acks.iter().filter(|a| a.performed.is_some()).count();
    eprintln!(
        "{rounds} rounds, {} events, {} acknowledgements ({acts} acts, events {kinds:?}), \
         {tally:?}, in {:?}",
        log.len(),
        acks.len(),
        started.elapsed()
    );
}
