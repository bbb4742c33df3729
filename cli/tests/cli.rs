//! The operator CLI end to end: the real binary on a real sled data directory.
//! Every refusal must exit non-zero with one clear sentence and write nothing but the
//! `AccessDenied` record where an agent asked.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{fails_in as fails, last_call, ok_in as ok, roster_in as roster};
use serde_json::Value;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn event_count(dir: &Path) -> usize {
    json_lines(&ok(dir, &["--json", "log"])).len()
}

/// The lead hires `research/scout` with `email.send@mailbox:alice` (derived from its own grant).
fn hire_scout(dir: &Path) {
    ok(
        dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "scout",
            "--by",
            "research/lead",
            "--grant",
            "email.send@mailbox:alice",
        ],
    );
}

/// `roster share propose` of research's `findings/**` to ops; its output.
fn propose_findings(dir: &Path) -> String {
    ok(
        dir,
        &[
            "share",
            "propose",
            "--from",
            "research",
            "--to",
            "ops",
            "--topics",
            "findings/**",
        ],
    )
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    ok(&dir, &["init"]);
    ok(&dir, &["team", "create", "research"]);
    ok(
        &dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "lead",
            "--grant",
            "agent.hire@team:research,budget=1",
            "--grant",
            "email.*@mailbox:*",
        ],
    );
    (tmp, dir)
}

#[test]
fn bad_input_is_refused_with_one_sentence_and_writes_nothing() {
    let (_tmp, dir) = setup();
    let before = event_count(&dir);
    let cases: &[(&[&str], &str)] = &[
        (&["team", "create", "re.search"], "contains '.'"),
        (&["team", "create", "a/b"], "contains '/'"),
        (&["hire", "--team", "nope", "--name", "x"], "no team `nope`"),
        (
            &["hire", "--team", "research", "--name", "Bob"],
            "contains 'B'",
        ),
        (
            &["grant", "research/ghost", "email.send@mailbox:a"],
            "no agent `ghost`",
        ),
        (&["grant", "research/lead", "email.send"], "no `@`"),
        (
            &["grant", "research/lead", "email.send@mailbox:a,forever"],
            "unknown constraint",
        ),
        (&["revoke", "grt_nothex"], "grant id"),
        (
            &["check", "research/lead", "email.*", "mailbox:a"],
            "cannot contain `*`",
        ),
        (
            &[
                "act",
                "research/lead",
                "email.send",
                "mailbox:a",
                "--amount",
                "0",
            ],
            "at least 1",
        ),
    ];
    for (args, needle) in cases {
        let err = fails(&dir, args, 2);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains(needle),
            "roster {args:?}: expected {needle:?} in {err:?}"
        );
        // One sentence saying what is wrong (clap may add its "try --help" hint after it).
        let sentences = err
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("roster:"));
        assert_eq!(sentences.count(), 1, "one sentence, got {err:?}");
    }
    // A taken name is a refusal of the runtime (exit 3), not malformed input.
    assert!(fails(&dir, &["team", "create", "research"], 3).contains("already taken"));
    assert_eq!(event_count(&dir), before, "bad input wrote something");
}

#[test]
fn an_agent_asking_for_more_than_it_has_is_refused_and_recorded() {
    let (_tmp, dir) = setup();
    let before = event_count(&dir);
    let err = fails(
        &dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "rogue",
            "--by",
            "research/lead",
            "--grant",
            "email.*@**",
        ],
        3,
    );
    assert!(err.contains("asks for more than"), "{err}");
    let events = json_lines(&ok(&dir, &["--json", "log", "--from", &before.to_string()]));
    assert_eq!(
        events.len(),
        1,
        "only the AccessDenied record is written: {events:?}"
    );
    let denied = &events[0]["event"]["AccessDenied"];
    assert_eq!(denied["action"], "agent.hire");
    assert_eq!(denied["resource"], "team:research");
    // The hire budget of 1 allows exactly one hire.
    hire_scout(&dir);
    let err = fails(
        &dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "third",
            "--by",
            "research/lead",
        ],
        3,
    );
    assert!(err.contains("budget exhausted"), "{err}");
}

#[test]
fn revocation_cascades_and_check_explains() {
    let (_tmp, dir) = setup();
    hire_scout(&dir);
    let out = ok(
        &dir,
        &["check", "research/scout", "email.send", "mailbox:alice"],
    );
    assert!(out.starts_with("ALLOW"), "{out}");
    assert_eq!(out.lines().count(), 3, "the chain has two links: {out}");
    let grants = json_lines(&ok(&dir, &["--json", "grants", "research/lead"]));
    let email = grants
        .iter()
        .find(|g| g["capability"] == "email.*@mailbox:*")
        .and_then(|g| g["id"].as_str())
        .expect("lead's email grant");
    ok(&dir, &["revoke", email]);
    let out = roster(
        &dir,
        &["check", "research/scout", "email.send", "mailbox:alice"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    fails(&dir, &["revoke", email], 3);
}

#[test]
fn replay_shows_the_past_and_verify_catches_an_edited_export() {
    let (tmp, dir) = setup();
    ok(&dir, &["retire", "research/lead"]);
    let past = ok(&dir, &["--json", "replay", "--at", "2"]);
    let agent = json_lines(&past)
        .into_iter()
        .find(|v| v["kind"] == "agent")
        .expect("agent");
    assert_eq!(
        agent["retired"], false,
        "at position 2 the lead was in service"
    );
    let now = json_lines(&ok(&dir, &["--json", "replay", "--at", "5"]));
    assert!(now
        .iter()
        .any(|v| v["kind"] == "agent" && v["retired"] == true));
    fails(&dir, &["replay", "--at", "99"], 2);

    let out = ok(&dir, &["verify"]);
    assert!(out.starts_with("ok: 6 events"), "{out}");
    let export = tmp.path().join("x.jsonl");
    ok(&dir, &["export", export.to_str().expect("utf-8")]);
    let edited = tmp.path().join("edited.jsonl");
    let text = std::fs::read_to_string(&export).expect("read");
    std::fs::write(&edited, text.replacen("\"lead\"", "\"boss\"", 1)).expect("write");
    let copy = tmp.path().join("copy");
    let err = fails(&copy, &["import", edited.to_str().expect("utf-8")], 4);
    assert!(err.contains("position 1"), "{err}");
    ok(&copy, &["import", export.to_str().expect("utf-8")]);
    // Import then export is the identity, but for the head the copy's own key signed once it
    // had checked everything (signed heads: cli/tests/signed.rs).
    let copy_key = json_lines(&ok(&copy, &["--json", "verify"]))[0]["key"]
        .as_str()
        .expect("the copy's key")
        .to_owned();
    let again: String = ok(&copy, &["export"])
        .lines()
        .filter(|l| !l.contains(&copy_key))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(again, text, "import then export is the identity");
    fails(&copy, &["import", export.to_str().expect("utf-8")], 2);
}

/// A [`common::recording_provider`] in `dir`, configured in its roster.toml for `actions`.
fn recording_provider(dir: &Path, actions: &[&str], answer: &str) {
    let script = common::recording_provider(dir, answer);
    let config: String = actions
        .iter()
        .map(|a| format!("[tools.\"{a}\"]\nexec = [\"/bin/sh\", \"{script}\"]\n"))
        .collect();
    std::fs::write(dir.join("roster.toml"), config).expect("write roster.toml");
}

fn count(dir: &Path, kind: &str) -> usize {
    json_lines(&ok(dir, &["--json", "log"]))
        .iter()
        .filter(|e| e["event"].get(kind).is_some())
        .count()
}

#[test]
fn act_without_a_provider_is_refused_and_records_nothing() {
    let (_tmp, dir) = setup();
    let before = ok(&dir, &["export"]);
    let err = fails(
        &dir,
        &["act", "research/lead", "email.send", "mailbox:a"],
        7,
    );
    assert!(
        err.contains("[tools.\"email.send\"]")
            && err.contains("roster serve --bus")
            && err.contains("nothing was recorded"),
        "{err}"
    );
    let err = fails(
        &dir,
        &["--json", "act", "research/lead", "email.send", "mailbox:a"],
        7,
    );
    let e: Value = serde_json::from_str(err.trim()).expect("a JSON error on stderr");
    assert_eq!(e["code"], "unavailable", "{e}");
    // Not a single event: not the use, not a refusal.
    assert_eq!(ok(&dir, &["export"]), before);
}

#[test]
fn act_runs_the_provider_as_the_agent_and_records_each_refusal() {
    let (tmp, dir) = setup();
    recording_provider(
        tmp.path(),
        &["email.send", "report.fail"],
        r#"{"sent":true}"#,
    );
    std::fs::rename(tmp.path().join("roster.toml"), dir.join("roster.toml")).expect("move");
    let out = ok(
        &dir,
        &[
            "act",
            "research/lead",
            "email.send",
            "mailbox:alice",
            "--amount",
            "2",
            "--arg",
            "subject=hi there",
            "--arg",
            "to=alice",
        ],
    );
    let grant = json_lines(&ok(&dir, &["--json", "grants", "research/lead"]))
        .into_iter()
        .find(|g| g["capability"] == "email.*@mailbox:*")
        .expect("the lead's email grant");
    let id = grant["id"].as_str().expect("id");
    let short = format!("grt_{}", &id[id.len() - 8..]);
    assert!(
        out.starts_with("performed email.send on mailbox:alice (amount 2) as research/lead")
            && out.contains(&format!(
                "through {short} email.*@mailbox:* (research/lead);"
            ))
            && out
                .trim_end()
                .ends_with(r#"the provider answered {"sent":true}"#),
        "{out}"
    );
    let call = last_call(tmp.path());
    assert_eq!(call["agent"]["name"], "lead");
    assert_eq!(
        call["args"],
        serde_json::json!({"subject": "hi there", "to": "alice"})
    );
    assert_eq!(call["chain"], serde_json::json!([grant["id"]]));
    assert_eq!(count(&dir, "ActionPerformed"), 1);

    // --json: the object the agent's gateway answers.
    let answer: Value = serde_json::from_str(&ok(
        &dir,
        &[
            "--json",
            "act",
            "research/lead",
            "email.send",
            "mailbox:bob",
        ],
    ))
    .expect("json");
    assert_eq!(answer["result"], serde_json::json!({"sent": true}));
    assert_eq!(answer["chain"], serde_json::json!([grant["id"]]));
    assert_eq!(answer["approval"], Value::Null);
    assert_eq!(answer["performed"], last_call(tmp.path())["performed"]);
    let performed = json_lines(&ok(&dir, &["--json", "log"]))
        .into_iter()
        .rev()
        .find(|e| e["event"].get("ActionPerformed").is_some())
        .expect("recorded");
    assert_eq!(performed["id"], answer["performed"]);

    // A refusal is recorded as the agent's, and the provider never hears of it.
    let denials = count(&dir, "AccessDenied");
    let err = fails(
        &dir,
        &["act", "research/lead", "email.send", "phone:bob"],
        3,
    );
    assert!(err.starts_with("roster: refused:"), "{err}");
    assert_eq!(count(&dir, "AccessDenied"), denials + 1);
    assert_eq!(last_call(tmp.path())["resource"], "mailbox:bob");

    // Bad arguments are refused like roster-agent's, before anything is recorded.
    let before = event_count(&dir);
    for (args, says) in [
        (&["--arg", "Subject=x"][..], "argument name"),
        (&["--arg", "subject"], "KEY=VALUE"),
        (&["--arg", "a=1", "--arg", "a=2"], "given twice"),
        (&["--wait", "3601"], "3601"),
    ] {
        let mut argv = vec!["act", "research/lead", "email.send", "mailbox:a"];
        argv.extend_from_slice(args);
        let err = fails(&dir, &argv, 2);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(event_count(&dir), before);

    // A provider that fails: recorded, the spend stands, exit 8.
    std::fs::write(
        dir.join("roster.toml"),
        "[tools.\"report.fail\"]\nexec = [\"/bin/sh\", \"-c\", \"echo jammed >&2; exit 3\"]\n",
    )
    .expect("write");
    ok(&dir, &["grant", "research/lead", "report.*@*"]);
    let err = fails(&dir, &["act", "research/lead", "report.fail", "x"], 8);
    assert!(err.contains("jammed") && err.contains("recorded"), "{err}");
    assert_eq!(count(&dir, "ActionPerformed"), 3);
}

/// A data directory whose `research/mailer` may send email once an operator approves, through
/// a recording provider.
fn mailer() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, dir) = setup();
    recording_provider(tmp.path(), &["email.send"], r#"{"sent":true}"#);
    std::fs::rename(tmp.path().join("roster.toml"), dir.join("roster.toml")).expect("move");
    ok(
        &dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "mailer",
            "--grant",
            "email.send@mailbox:*,approval",
        ],
    );
    (tmp, dir)
}

#[test]
fn approvals_are_for_humans_and_for_one_use() {
    let (tmp, dir) = mailer();
    let act = ["act", "research/mailer", "email.send", "mailbox:all"];
    // Asked: the approval waits, named on stderr (and in the JSON error), exit 6.
    let mut argv = vec!["--json"];
    argv.extend_from_slice(&act);
    let err = fails(&dir, &argv, 6);
    let e: Value = serde_json::from_str(err.trim()).expect("a JSON error on stderr");
    assert_eq!(e["code"], "pending", "{e}");
    let id = e["approval"].as_str().expect("approval id").to_owned();
    assert!(e["message"].as_str().expect("message").contains(&id), "{e}");
    assert!(ok(&dir, &["approvals"]).contains(&id));
    assert_eq!(count(&dir, "CallApprovalRequested"), 1);
    // Still waiting: acting with it is pending again, nothing new asked or spent; without a
    // daemon nobody can decide meanwhile, so --wait does not wait.
    let mut with = act.to_vec();
    with.extend_from_slice(&["--approval", &id]);
    let mut waiting = with.clone();
    waiting.extend_from_slice(&["--wait", "30"]);
    let started = std::time::Instant::now();
    let err = fails(&dir, &waiting, 6);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        err.contains(&format!("roster approve {id}")) && err.contains("--wait needs it"),
        "{err}"
    );
    assert_eq!(count(&dir, "CallApprovalRequested"), 1);
    assert!(!tmp.path().join("call.json").exists(), "the provider ran");
    // Approved: acting with it carries it out, once.
    ok(&dir, &["approve", &id]);
    let out = ok(&dir, &with);
    assert!(out.contains(&format!("approved in {id}")), "{out}");
    assert_eq!(last_call(tmp.path())["approval"], id.as_str());
    let err = fails(&dir, &with, 3);
    assert!(err.contains("already used"), "{err}");
    assert_eq!(count(&dir, "ActionPerformed"), 1);
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn an_approval_binds_the_arguments_the_operator_saw() {
    let (tmp, dir) = mailer();
    let act = |body: &str| {
        vec![
            "act".to_string(),
            "research/mailer".into(),
            "email.send".into(),
            "mailbox:alice".into(),
            "--arg".into(),
            "to=alice@example.com".into(),
            "--arg".into(),
            format!("body={body}"),
        ]
    };
    // Asked with a body that carries a terminal escape: the operator sees it escaped.
    let asked = act("lunch at noon?\u{1b}[2J");
    let mut json = vec!["--json".to_string()];
    json.extend(asked.clone());
    let e: Value = serde_json::from_str(fails(&dir, &strs(&json), 6).trim()).expect("JSON");
    let id = e["approval"].as_str().expect("approval id").to_owned();
    let listed = ok(&dir, &["approvals"]);
    assert!(
        listed.contains(r#"body="lunch at noon?\u{1b}[2J""#) && !listed.contains('\u{1b}'),
        "{listed}"
    );
    let rows = json_lines(&ok(&dir, &["--json", "approvals"]));
    assert_eq!(
        rows[0]["args"]["body"], "lunch at noon?\u{1b}[2J",
        "{rows:?}"
    );
    ok(&dir, &["approve", &id]);

    // The approved approval, used for another body: refused and recorded; nothing sent.
    let denied_before = count(&dir, "AccessDenied");
    let mut other = act("Please wire 50000 USD");
    other.extend(["--approval".to_string(), id.clone()]);
    let err = fails(&dir, &strs(&other), 3);
    assert!(err.contains("other arguments"), "{err}");
    assert_eq!(count(&dir, "AccessDenied"), denied_before + 1);
    assert_eq!(count(&dir, "ActionPerformed"), 0);
    assert!(!tmp.path().join("call.json").exists(), "the provider ran");

    // The exact call: carried out, once, with what was approved.
    let mut same = asked;
    same.extend(["--approval".to_string(), id.clone()]);
    ok(&dir, &strs(&same));
    let call = last_call(tmp.path());
    assert_eq!(call["args"]["body"], "lunch at noon?\u{1b}[2J", "{call}");
    assert_eq!(count(&dir, "ActionPerformed"), 1);
}

#[test]
fn every_waiting_approval_of_an_agent_is_denied_at_once() {
    let (_tmp, dir) = mailer();
    ok(
        &dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "other",
            "--grant",
            "email.send@mailbox:*,approval",
        ],
    );
    for (agent, n) in [("research/mailer", 3), ("research/other", 1)] {
        for i in 0..n {
            let to = format!("mailbox:m{i}");
            fails(&dir, &["act", agent, "email.send", &to], 6);
        }
    }
    assert_eq!(json_lines(&ok(&dir, &["--json", "approvals"])).len(), 4);
    // Neither an id, an agent nor --all: a usage error.
    fails(&dir, &["deny"], 2);
    ok(
        &dir,
        &[
            "deny",
            "--agent",
            "research/mailer",
            "--note",
            "too many asks",
        ],
    );
    let waiting = json_lines(&ok(&dir, &["--json", "approvals"]));
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0]["agent_name"], "research/other");
    let denied: Vec<Value> = json_lines(&ok(&dir, &["--json", "log"]))
        .into_iter()
        .filter(|e| e["event"].get("ApprovalDecided").is_some())
        .collect();
    assert_eq!(denied.len(), 3);
    assert!(denied
        .iter()
        .all(|e| e["event"]["ApprovalDecided"]["approved"] == false
            && e["event"]["ApprovalDecided"]["note"] == "too many asks"));
    ok(&dir, &["deny", "--all"]);
    assert!(json_lines(&ok(&dir, &["--json", "approvals"])).is_empty());
}

/// The short ids printed in brackets or after `share`, like `[grt_3ae9531e]`.
fn printed(out: &str, prefix: &str) -> Vec<String> {
    out.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(prefix) && w.len() == prefix.len() + 8)
        .map(str::to_owned)
        .collect()
}

/// `PREFIX` and the first 4 hex digits of `id`, which every id of a test run shares (UUID v7:
/// they are the time, in units of about 50 days).
fn common_start(id: &str, prefix: &str) -> String {
    format!("{prefix}{}", &id[prefix.len()..prefix.len() + 4])
}

#[test]
fn printed_short_ids_can_be_typed_and_ambiguous_ones_are_refused() {
    let (tmp, dir) = mailer();
    let out = ok(
        &dir,
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "two",
            "--grant",
            "email.send@mailbox:x",
            "--grant",
            "email.send@mailbox:y",
        ],
    );
    let shorts = printed(&out, "grt_");
    assert_eq!(shorts.len(), 2, "{out}");
    let all = json_lines(&ok(&dir, &["--json", "grants"]));
    let whole = |short: &str| -> String {
        all.iter()
            .filter_map(|g| g["id"].as_str())
            .find(|id| id.ends_with(&short[4..]))
            .expect("a grant ends as printed")
            .to_owned()
    };

    // Every grant starts alike: that start is refused, naming them, and nothing is recorded.
    let before = event_count(&dir);
    let common = common_start(&whole(&shorts[0]), "grt_");
    let err = fails(&dir, &["revoke", &common], 2);
    assert!(
        err.contains(&format!(
            "{common} is ambiguous: {} grants match it",
            all.len()
        )),
        "{err}"
    );
    assert!(shorts.iter().all(|s| err.contains(s.as_str())), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let err = fails(&dir, &["revoke", "grt_0000000000000000000000000000000"], 2);
    assert!(err.contains("there is no grant matching grt_0000"), "{err}");
    assert!(fails(&dir, &["revoke", "grt_3ae"], 2).contains("at least 4"));
    assert_eq!(event_count(&dir), before, "a refusal recorded something");

    // The printed short form names one grant: revoked, that one only.
    let out = ok(&dir, &["revoke", &shorts[0]]);
    assert!(
        out.contains(&format!("revoked email.send@mailbox:x ({})", shorts[0])),
        "{out}"
    );
    let revoked: Vec<String> = json_lines(&ok(&dir, &["--json", "grants", "research/two"]))
        .iter()
        .filter(|g| g["status"] == "revoked")
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(revoked, vec![whole(&shorts[0])]);
    // An agent by the end of its id too.
    let agents = json_lines(&ok(&dir, &["--json", "agents"]));
    let two = agents
        .iter()
        .find(|a| a["name"] == "two")
        .and_then(|a| a["id"].as_str())
        .expect("research/two");
    let listed = json_lines(&ok(
        &dir,
        &["--json", "grants", &format!("agt_{}", &two[28..])],
    ));
    assert_eq!(listed.len(), 2);

    // An approval, asked for, approved and used by the end of its id.
    let e: Value = serde_json::from_str(
        fails(
            &dir,
            &[
                "--json",
                "act",
                "research/mailer",
                "email.send",
                "mailbox:all",
            ],
            6,
        )
        .trim(),
    )
    .expect("a JSON error");
    let id = e["approval"].as_str().expect("approval id").to_owned();
    let short = format!("apr_{}", &id[28..]);
    ok(&dir, &["approve", &short]);
    let out = ok(
        &dir,
        &[
            "act",
            "research/mailer",
            "email.send",
            "mailbox:all",
            "--approval",
            &short,
        ],
    );
    assert!(out.contains(&format!("approved in {id}")), "{out}");
    assert_eq!(last_call(tmp.path())["approval"], id.as_str());

    // Shares: two proposed; the printed one is accepted, their common start names neither.
    ok(&dir, &["team", "create", "ops"]);
    let mut shares = Vec::new();
    for _ in 0..2 {
        shares.extend(printed(&propose_findings(&dir), "shr_"));
    }
    assert_eq!(shares.len(), 2, "{shares:?}");
    let out = ok(&dir, &["share", "accept", &shares[1]]);
    assert!(
        out.contains(&format!("accepted share {}", shares[1])),
        "{out}"
    );
    let any = json_lines(&ok(&dir, &["--json", "shares"]));
    let id = any[0]["id"].as_str().expect("share id");
    let before = event_count(&dir);
    let err = fails(&dir, &["share", "close", &common_start(id, "shr_")], 2);
    assert!(err.contains("2 shares match it"), "{err}");
    assert!(shares.iter().all(|s| err.contains(s.as_str())), "{err}");
    assert_eq!(event_count(&dir), before);
}

#[test]
fn commands_on_a_missing_data_dir_say_to_init() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = fails(&tmp.path().join("none"), &["agents"], 2);
    assert!(err.contains("roster init"), "{err}");
    assert!(
        !tmp.path().join("none").exists(),
        "a read command created the data dir"
    );
}

#[test]
fn the_demo_tour_behaves_as_it_says() {
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("demo")
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "behaved as the story says",
        "product/lead hears: \"acme sells",
        "it reads back what it wrote yesterday: \"acme sells",
        "so it is denied and recorded",
        "hash chain intact",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
}

#[test]
fn log_follow_prints_events_committed_after_it_started() {
    use std::io::{BufRead, BufReader};
    let (_tmp, dir) = setup();
    let before = event_count(&dir);
    let mut follower = Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["--json", "log", "--follow", "--from", &before.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn follower");
    let stdout = follower.stdout.take().expect("stdout");
    // The follower lets go of the store between polls, so other commands still get in.
    ok(&dir, &["team", "create", "product"]);
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    follower.kill().expect("kill follower");
    let _ = follower.wait();
    read.expect("read a line");
    let event: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(event["seq"], before as u64);
    assert_eq!(event["event"]["TeamCreated"]["name"], "product");
}

#[test]
fn init_and_import_leave_an_existing_directory_as_they_found_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = roster(&shared, &["init"]);
    assert!(out.status.success());
    let mode = std::fs::metadata(&shared)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode, 0o755,
        "init changed the mode of a directory it did not create"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("open to other users"));
    // A new data directory is created owner-only.
    let fresh = tmp.path().join("fresh");
    ok(&fresh, &["init"]);
    let mode = std::fs::metadata(&fresh)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    // Importing a file that does not exist creates nothing and names the file.
    let never = tmp.path().join("never");
    let err = fails(&never, &["import", "/no/such/export.jsonl"], 2);
    assert!(err.contains("/no/such/export.jsonl"), "{err}");
    assert!(!never.exists(), "a failed import created the data dir");
    // Replay on an empty log says so.
    let err = fails(&fresh, &["replay", "--at", "0"], 2);
    assert!(err.contains("the log is empty"), "{err}");
}

#[test]
fn a_damaged_store_file_is_reported_as_damage_not_as_a_busy_store() {
    let (_tmp, dir) = setup();
    let db = dir.join("log").join("db");
    let mut bytes = std::fs::read(&db).expect("read db");
    let at = bytes
        .windows(8)
        .position(|w| w == b"research")
        .expect("the team name is in the file");
    bytes[at] ^= 1;
    std::fs::write(&db, bytes).expect("write db");
    let out = roster(&dir, &["verify"]);
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ALTERED OR CORRUPT"), "{text}");
    let err = fails(&dir, &["agents"], 4);
    assert!(err.contains("damaged"), "{err}");
    assert!(!err.contains("another process"), "{err}");
}

#[test]
fn roster_toml_sets_hire_defaults_that_flags_override_and_a_bad_file_changes_nothing() {
    let (_tmp, dir) = setup();
    std::fs::write(
        dir.join("roster.toml"),
        "[agent]\nmemory_mib = 512\ncpus = 0.25\ntimeout_secs = 60\ndisk_mib = 2048\n",
    )
    .unwrap();
    ok(&dir, &["hire", "--team", "research", "--name", "a"]);
    ok(
        &dir,
        &[
            "hire", "--team", "research", "--name", "b", "--memory", "300", "--disk", "4096",
        ],
    );
    let disks: Vec<Value> = json_lines(&ok(&dir, &["--json", "log"]))
        .into_iter()
        .filter_map(|e| e["event"]["AgentDiskLimited"].get("disk_mib").cloned())
        .collect();
    assert_eq!(
        disks[disks.len() - 2..],
        [2048, 4096],
        "the flag wins over the file"
    );
    let err = fails(
        &dir,
        &["hire", "--team", "research", "--name", "c", "--disk", "63"],
        2,
    );
    assert!(err.contains("63 is outside 64 to 1048576"), "{err}");
    let specs: Vec<Value> = json_lines(&ok(&dir, &["--json", "log"]))
        .into_iter()
        .filter_map(|e| {
            e["event"]["AgentHired"]["spec"]["resources"]
                .as_object()
                .cloned()
                .map(Value::Object)
        })
        .collect();
    let last_two = &specs[specs.len() - 2..];
    assert_eq!(last_two[0]["memory_mib"], 512);
    assert_eq!(last_two[0]["cpu_millis"], 250);
    assert_eq!(last_two[0]["timeout_secs"], 60);
    assert_eq!(
        last_two[1]["memory_mib"], 300,
        "the flag wins over the file"
    );
    std::fs::write(dir.join("roster.toml"), "[agent]\nmemory_mb = 512\n").unwrap();
    let before = event_count(&dir);
    let err = fails(&dir, &["hire", "--team", "research", "--name", "c"], 2);
    assert!(
        err.contains("roster.toml") && err.contains("memory_mb"),
        "{err}"
    );
    assert_eq!(event_count(&dir), before);
}

#[test]
fn grants_and_shares_json_print_the_gateways_answer_types() {
    use roster_core::gateway::answer::{GrantView, ShareState, ShareView};
    let (_tmp, dir) = setup();
    hire_scout(&dir);
    ok(&dir, &["team", "create", "ops"]);
    propose_findings(&dir);
    // Each line is exactly a `GrantView`, `left` included; `grants` answers the same type.
    let grants: Vec<GrantView> = ok(&dir, &["--json", "grants", "research/lead"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let hire = grants
        .iter()
        .find(|g| g.capability.to_string() == "agent.hire@team:research,budget=1")
        .expect("the lead's hire grant");
    assert_eq!((hire.spent, hire.budget, hire.left), (1, Some(1), Some(0)));
    assert!(hire.active && hire.status == "active" && hire.holder_name == "research/lead");
    let shares: Vec<ShareView> = ok(&dir, &["--json", "shares"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(shares.len(), 1);
    let s = &shares[0];
    assert_eq!(
        (
            s.from.as_ref().map(|n| n.as_str()),
            s.to.as_ref().map(|n| n.as_str())
        ),
        (Some("research"), Some("ops"))
    );
    assert_eq!((s.state, s.crossings), (ShareState::Proposed, 0));
}

#[test]
fn status_says_by_its_exit_code_whether_a_daemon_runs() {
    let (_tmp, dir) = setup();
    let out = roster(&dir, &["status"]);
    assert_eq!(out.status.code(), Some(5), "no daemon runs: exit 5");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is not running"), "{text}");
    let out = roster(&dir, &["--json", "status"]);
    assert_eq!(out.status.code(), Some(5));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["serving"], false, "{v}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No data directory at all is still bad input, not "no daemon".
    let none = dir.with_file_name("nowhere");
    fails(&none, &["status"], 2);
}
