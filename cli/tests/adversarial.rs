//! Agents that try to pass on more than they were given, end to end on the real engine: each
//! attempt goes through the agent's own gateway socket (its identity) or through `roster-agent`
//! inside its container, and each must be refused with a reason, recorded as an `AccessDenied`
//! naming that agent and what it tried, and change nothing else — no agent, no grant, no
//! spend, no decision.
//!
//! - a lead passing on a wider grant than its own, by hire or delegation, by each trick: a
//!   wider action or resource pattern, a larger or no budget, `approval` dropped, a later or no
//!   expiry, a grant that is not its own, a team that is not its own;
//! - a teammate acting through a grant whose hirer's grant was revoked;
//! - hiring, delegating and retiring from inside a container, within a hire budget.
//!
//! (Teammates spending one shared budget at once, and approvals:
//! `adversarial_budgets_and_approvals.rs`. A message through a share after it closed:
//! `context.rs`, on both buses.)
//!
//! Needs Docker and the static `roster-agent` (`scripts/test` provides them); without them
//! these tests fail, loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod adversary;
mod common;

use std::time::Duration;

use adversary::{answered, delegate, grant, grants, hire, hired, inside, refused, says, served};
use common::{wait_for, Gateway, Served};
use serde_json::{json, Value};

/// The grants of the lead of [`lab`].
const LEAD: &[&str] = &[
    "agent.hire@team:lab",
    "grant.delegate@team:lab",
    "email.send@mailbox:alice",
    "report.read@doc:*",
    "spend.usd@*,budget=10",
    "deploy.run@env:*,approval",
    "audit.read@log:*,expires=2099-01-01T00:00:00Z",
];

/// A team lab whose `lead` holds [`LEAD`] and has hired `mate` through its gateway with its
/// `email.send@mailbox:alice`, beside an `outsider` in team ops; the agents' ids.
struct Lab {
    /// The lead's gateway.
    g: Gateway,
    lead: String,
    mate: String,
    outsider: String,
    s: Served,
}

fn lab() -> Lab {
    let s = served();
    s.ok(&["team", "create", "lab"]);
    s.ok(&["team", "create", "ops"]);
    let mut args = Vec::new();
    for g in LEAD {
        args.extend(["--grant", g]);
    }
    let lead = s.hire_into("lab", "lead", &args);
    let outsider = s.hire_into("ops", "outsider", &[]);
    let mut g = Gateway::connect(&s, &lead);
    let mate = hired(&hire(&mut g, "mate", &["email.send@mailbox:alice"]).unwrap());
    s.wait_up("mate");
    Lab {
        g,
        lead,
        mate,
        outsider,
        s,
    }
}

#[test]
fn a_lead_hires_within_its_grants_and_no_trick_hires_wider() {
    let Lab {
        mut g,
        lead,
        mate,
        s,
        ..
    } = lab();

    // A hire within the lead's grants (the mate's) works, and its grant derives from the lead's.
    let lead_email = grant(&s, "lab/lead", "email.send@mailbox:alice")["id"].clone();
    assert_eq!(
        grant(&s, "lab/mate", "email.send@mailbox:alice")["parent"],
        lead_email
    );

    // Hiring with a wider grant than the lead's, by each trick: refused, recorded, nobody
    // hired, no grant issued, the hire grant's budget untouched.
    let hire_grant = grant(&s, "lab/lead", "agent.hire@team:lab");
    assert_eq!(hire_grant["spent"], 1);
    let tricks: &[(&[&str], &[&str])] = &[
        (&["email.*@mailbox:alice"], &["asks for more than"]),
        (&["email.send@mailbox:*"], &["asks for more than"]),
        (&["report.read@doc:**"], &["asks for more than"]),
        (&["report.read@**"], &["asks for more than"]),
        (
            &["spend.usd@*,budget=11"],
            &["budget=11 is above the budget=10"],
        ),
        (&["spend.usd@*"], &["must keep a budget of at most 10"]),
        (&["deploy.run@env:prod"], &["must keep `approval`"]),
        (
            &["audit.read@log:x,expires=2100-01-01T00:00:00Z"],
            &["is later than the expiry"],
        ),
        (&["audit.read@log:x"], &["must expire no later"]),
        // Its own built-ins, wider: another team's, or without the team.
        (&["agent.hire@team:ops"], &["asks for more than"]),
        (&["grant.delegate@**"], &["asks for more than"]),
        // One wide grant among narrow ones refuses the whole hire.
        (
            &[
                "email.send@mailbox:alice",
                "report.read@doc:x",
                "email.*@**",
            ],
            &["email.*@**"],
        ),
    ];
    for (caps, words) in tricks {
        let why = refused(&s, &lead, "agent.hire", "team:lab", || {
            hire(&mut g, "wide", caps)
        });
        says(&why, words);
    }
    assert!(s
        .ok(&["--json", "agents", "--all"])
        .lines()
        .all(|l| !l.contains("\"wide\"")));
    assert_eq!(grant(&s, "lab/lead", "agent.hire@team:lab")["spent"], 1);

    // The teammate holds no hire grant: it cannot hire at all.
    let mut m = Gateway::connect(&s, &mate);
    let why = refused(&s, &mate, "agent.hire", "team:lab", || {
        hire(&mut m, "sub", &["email.send@mailbox:alice"])
    });
    says(&why, &["no grant allows agent.hire on team:lab"]);
}

#[test]
fn a_lead_delegates_within_its_grants_and_no_trick_delegates_wider_or_into_another_team() {
    let Lab {
        mut g,
        lead,
        mate,
        outsider,
        s,
    } = lab();

    // Delegating to a teammate, by the same tricks as hiring: refused, recorded, no grant
    // issued.
    let delegations: &[(&str, &[&str])] = &[
        ("email.*@mailbox:alice", &["asks for more than"]),
        ("report.read@doc:**", &["asks for more than"]),
        ("spend.usd@*,budget=11", &["above the budget=10"]),
        ("spend.usd@*", &["must keep a budget"]),
        ("deploy.run@env:prod", &["must keep `approval`"]),
        (
            "audit.read@log:x,expires=2100-01-01T00:00:00Z",
            &["later than the expiry"],
        ),
        ("audit.read@log:x", &["must expire no later"]),
    ];
    for (cap, words) in delegations {
        let why = refused(&s, &lead, "grant.delegate", "team:lab", || {
            delegate(&mut g, &mate, cap)
        });
        says(&why, words);
    }
    // From a grant that is not its own (the teammate's, derived from its own).
    let mates = grant(&s, "lab/mate", "email.send@mailbox:alice")["id"].clone();
    let why = refused(&s, &lead, "grant.delegate", "team:lab", || {
        g.call(
            "delegate",
            json!({ "to": mate, "capability": "email.send@mailbox:alice", "from": mates }),
        )
    });
    says(&why, &["is not held by", &lead]);
    // Into another team, even what it holds.
    let why = refused(&s, &lead, "grant.delegate", "team:ops", || {
        delegate(&mut g, &outsider, "report.read@doc:x")
    });
    says(&why, &["grant.delegate on team:ops"]);
    assert_eq!(grants(&s, "lab/mate").len(), 1);
    assert!(grants(&s, "ops/outsider").is_empty());

    // Within its grants, delegating works, and the grant derives from the lead's.
    let ok = delegate(&mut g, &mate, "report.read@doc:x").unwrap();
    assert_eq!(
        answered(&ok, "GrantIssued")[0]["parent"],
        grant(&s, "lab/lead", "report.read@doc:*")["id"]
    );
}

#[test]
fn revoking_a_grant_voids_what_derives_from_it_and_leaves_the_rest_in_force() {
    let Lab {
        mut g,
        lead,
        mate,
        s,
        ..
    } = lab();
    let lead_email = grant(&s, "lab/lead", "email.send@mailbox:alice")["id"].clone();
    // The mate holds a second grant, derived from another of the lead's.
    delegate(&mut g, &mate, "report.read@doc:x").unwrap();

    // Revoking the lead's grant voids the teammate's derived one: its next act is refused and
    // recorded, nothing is performed; its other grant (derived from another of the lead's)
    // still holds.
    let mut m = Gateway::connect(&s, &mate);
    let act = json!({ "action": "email.send", "resource": "mailbox:alice" });
    m.call("act", act.clone()).unwrap();
    s.ok(&["revoke", lead_email.as_str().unwrap()]);
    let why = refused(&s, &mate, "email.send", "mailbox:alice", || {
        m.call("act", act.clone())
    });
    says(&why, &["revoked", lead_email.as_str().unwrap()]);
    assert_eq!(
        grant(&s, "lab/mate", "email.send@mailbox:alice")["active"],
        false
    );
    assert_eq!(grant(&s, "lab/mate", "report.read@doc:x")["active"], true);
    // The lead cannot pass the revoked grant on either.
    let why = refused(&s, &lead, "grant.delegate", "team:lab", || {
        delegate(&mut g, &mate, "email.send@mailbox:alice")
    });
    says(&why, &["not in force", "revoked"]);
}

/// A team lab whose `boss` may hire once and has, from inside its container, hired `helper`
/// (with `email.send@mailbox:team,budget=2` and a hire grant of its own, both drawn from the
/// boss's), now running; the answer to that hire and both ids.
struct Boss {
    /// What `roster-agent hire` printed.
    hire: serde_json::Value,
    boss: String,
    helper: String,
    s: Served,
}

fn boss() -> Boss {
    let s = served();
    s.ok(&["team", "create", "lab"]);
    let boss = s.hire_into(
        "lab",
        "boss",
        &[
            "--grant",
            "agent.hire@team:lab,budget=1",
            "--grant",
            "grant.delegate@team:lab",
            "--grant",
            "agent.retire@team:lab",
            "--grant",
            "email.send@mailbox:*,budget=5",
        ],
    );
    let hire = inside(
        &s,
        "lab/boss",
        &[
            "hire",
            "helper",
            "--role",
            "helper",
            "--grant",
            "email.send@mailbox:team,budget=2",
            "--grant",
            "agent.hire@team:lab,budget=1",
        ],
    )
    .unwrap();
    let helper = hired(&hire);
    s.wait_up("helper");
    Boss {
        hire,
        boss,
        helper,
        s,
    }
}

/// The boss's email grant's id.
fn boss_email(s: &Served) -> serde_json::Value {
    grant(s, "lab/boss", "email.send@mailbox:*,budget=5")["id"].clone()
}

#[test]
fn from_inside_a_container_an_agent_hires_within_its_hire_budget_and_no_further() {
    let Boss {
        hire,
        boss,
        helper,
        s,
    } = boss();

    // The hire's grants draw on the boss's, and its one hire is spent.
    assert_eq!(
        grant(&s, "lab/helper", "email.send@mailbox:team,budget=2")["parent"],
        boss_email(&s)
    );
    let boss_hire = grant(&s, "lab/boss", "agent.hire@team:lab,budget=1");
    assert_eq!(boss_hire["spent"], 1);
    assert_eq!(
        grant(&s, "lab/helper", "agent.hire@team:lab,budget=1")["parent"],
        boss_hire["id"]
    );
    let h = s.agent("helper");
    assert_eq!(h["id"], helper.as_str(), "{hire}");
    assert_eq!((&h["parent"], &h["role"]), (&json!(boss), &json!("helper")));
    let volume = format!("roster-{}-{helper}-home", s.ns);
    assert!(
        common::docker(&["volume", "inspect", &volume])
            .status
            .success(),
        "no home volume {volume}"
    );
    // Its one hire is spent: a second is refused by the budget, and recorded.
    let why = refused(&s, &boss, "agent.hire", "team:lab", || {
        inside(
            &s,
            "lab/boss",
            &["hire", "helper2", "--grant", "email.send@mailbox:team"],
        )
    });
    says(&why, &["budget exhausted"]);
    // Nor can it hire through its hire: the helper's hire grant draws on the boss's, spent.
    let why = refused(&s, &helper, "agent.hire", "team:lab", || {
        inside(&s, "lab/helper", &["hire", "helper2"])
    });
    says(
        &why,
        &["budget exhausted", boss_hire["id"].as_str().unwrap()],
    );
    assert!(s
        .ok(&["--json", "agents", "--all"])
        .lines()
        .all(|l| !l.contains("\"helper2\"")));
}

#[test]
fn from_inside_a_container_an_agent_delegates_within_its_grants_and_revoking_them_voids_it() {
    let Boss {
        boss, helper, s, ..
    } = boss();
    let boss_email = boss_email(&s);

    // Delegating from inside: within its grant, yes; without the budget, no.
    let out = inside(
        &s,
        "lab/boss",
        &["delegate", &helper, "email.send@mailbox:bob,budget=1"],
    )
    .unwrap();
    assert_eq!(answered(&out, "GrantIssued")[0]["parent"], boss_email);
    let why = refused(&s, &boss, "grant.delegate", "team:lab", || {
        inside(
            &s,
            "lab/boss",
            &["delegate", &helper, "email.send@mailbox:bob"],
        )
    });
    says(&why, &["must keep a budget"]);

    // Revoking the boss's grant voids both of the helper's grants derived from it (by hire
    // and by delegation), and its acts; the one derived from another grant of the boss's stays
    // in force.
    s.ok(&["revoke", boss_email.as_str().unwrap()]);
    let held = grants(&s, "lab/helper");
    assert_eq!(held.len(), 3, "{held:?}");
    for g in held {
        let email = g["capability"].as_str().unwrap().starts_with("email.send@");
        assert_eq!(g["active"], !email, "{g}");
    }
    let why = refused(&s, &helper, "email.send", "mailbox:team", || {
        inside(&s, "lab/helper", &["act", "email.send", "mailbox:team"])
    });
    says(&why, &["revoked"]);
}

#[test]
fn from_inside_a_container_a_hirer_retires_its_hire_and_a_hire_cannot_retire_its_hirer() {
    let Boss {
        boss, helper, s, ..
    } = boss();

    // The hire cannot depose its hirer.
    let why = refused(&s, &helper, "agent.retire", "team:lab", || {
        inside(&s, "lab/helper", &["retire", &boss])
    });
    says(&why, &["no grant allows agent.retire on team:lab"]);
    // The boss retires its hire from inside: its container goes away.
    let out = inside(&s, "lab/boss", &["retire", &helper]).unwrap();
    assert_eq!(answered(&out, "AgentRetired").len(), 1, "{out}");
    assert_eq!(s.agent("helper")["status"], "retired");
    wait_for("helper's container to go", Duration::from_secs(60), || {
        !s.agent("helper")["container"]
            .as_str()
            .is_some_and(|c| c.starts_with("up"))
    });
}

#[test]
fn an_agent_cannot_tell_whether_another_team_exists() {
    let mut lab = lab();
    // Team ops exists, team nowhere does not. The lead may not propose shares, and no share
    // is open: each probe of either is refused, and recorded, the same way, but for the name
    // it gave.
    let params = |method: &str, to: &str| match method {
        "share_propose" => json!({ "to": to, "topics": "findings/**" }),
        _ => json!({ "topic": "findings/daily", "message": "hello", "team": to }),
    };
    for what in ["share_propose", "publish"] {
        let mut seen = Vec::new();
        for to in ["ops", "nowhere"] {
            let before = lab.s.events().len();
            let e = lab.g.call(what, params(what, to)).expect_err(what);
            let events = lab.s.events();
            assert_eq!(events.len(), before + 1, "{what} to {to}: one record");
            let mut record = events[before].clone();
            for field in ["id", "seq", "at", "hash", "prev_hash", "version"] {
                record[field] = Value::Null;
            }
            let text = |v: &Value| v.to_string().replace(to, "TEAM");
            seen.push((text(&e), text(&record)));
        }
        assert_eq!(seen[0], seen[1], "{what}: ops and nowhere told apart");
    }
}

#[test]
fn an_agent_refused_at_line_rate_writes_the_log_only_at_its_budget() {
    let s = served();
    s.ok(&["team", "create", "lab"]);
    let pest = s.hire_into("lab", "pest", &[]);
    let mut g = Gateway::connect(&s, &pest);
    let denials = |s: &Served| -> Vec<Value> {
        s.events()
            .into_iter()
            .filter(|e| e["event"].get("AccessDenied").is_some())
            .collect()
    };
    let before = denials(&s).len();
    // Asked as fast as the socket answers: each one refused.
    let started = std::time::Instant::now();
    let asked = 150;
    for i in 0..asked {
        let e = g
            .call("hire", json!({ "name": format!("h{i}") }))
            .unwrap_err();
        assert_eq!(e["code"], "denied", "{e}");
    }
    let secs = started.elapsed().as_secs();
    let recorded = denials(&s).len() - before;
    // The burst (20), then one a second at most.
    assert!(
        recorded >= 20 && recorded as u64 <= 20 + secs + 1,
        "{recorded} of {asked} recorded in {secs} s"
    );
    // Once its budget allows, records account for those that were not (a record of its own,
    // by the runtime, though the agent asks nothing more): every refusal is counted once.
    let accounted = |s: &Served| -> usize {
        denials(s)[before..]
            .iter()
            .map(|e| {
                let reason = e["event"]["AccessDenied"]["reason"].as_str().unwrap();
                let left_out: usize = reason
                    .strip_prefix('[')
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let own = usize::from(e["actor"] != "Runtime");
                own + left_out
            })
            .sum()
    };
    wait_for(
        "every refusal accounted for",
        Duration::from_secs(10),
        || accounted(&s) == asked,
    );
    assert!(
        denials(&s).len() - before <= recorded + 2,
        "a record or two for the rest"
    );
}

/// Runs the static `roster-agent` on the host as `uid` (setpriv), asking `whoami` of the socket
/// at `socket`: its exit status and what it said.
fn whoami_as(uid: u32, socket: &std::path::Path) -> (bool, String) {
    whoami_with(uid, &[], socket)
}

/// [`whoami_as`], with more `setpriv` options (capabilities).
fn whoami_with(uid: u32, options: &[&str], socket: &std::path::Path) -> (bool, String) {
    use std::os::unix::fs::PermissionsExt;
    // A copy any uid may run, wherever the build put the original.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let client = dir.path().join("roster-agent");
    std::fs::copy(common::agent_binary(), &client).unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_string(),
        ])
        .args(options)
        .arg("--")
        .arg(&client)
        .args(["--socket"])
        .arg(socket)
        .arg("whoami")
        .output()
        .expect("setpriv (util-linux) runs a host process as another uid");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

/// The review found every runc agent ran as host uid 1000: any host process of that uid reached
/// an agent's gateway through `/proc/PID/root/run/roster/gateway.sock` and acted as the agent.
/// Now each agent runs as a uid of its own, which owns its gateway socket with root: no host
/// user but root reaches it, by any path.
#[test]
fn no_host_user_reaches_an_agents_gateway() {
    let s = served();
    s.ok(&["team", "create", "lab"]);
    let solo = s.hire_into("lab", "solo", &[]);
    let mate = s.hire_into("lab", "mate", &[]);
    let pid_of = |id: &str| -> u32 {
        let out = common::docker(&["ps", "-q", "--filter", &format!("label=roster.agent={id}")]);
        let container = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let out = common::docker(&["inspect", "-f", "{{.State.Pid}}", &container]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let uid_of = |pid: u32| -> u32 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let (pid, mate_pid) = (pid_of(&solo), pid_of(&mate));
    let (uid, mate_uid) = (uid_of(pid), uid_of(mate_pid));
    assert!(uid >= 0x7000_0000, "solo runs as host uid {uid}");
    assert_ne!(uid, mate_uid, "two agents, one host uid");

    let through_proc =
        std::path::PathBuf::from(format!("/proc/{pid}/root/run/roster/gateway.sock"));
    let direct = s.dir.join("gateways").join(&solo).join("gateway.sock");
    for socket in [&through_proc, &direct] {
        for stranger in [1000, 65534, mate_uid] {
            let (ok, said) = whoami_as(stranger, socket);
            assert!(
                !ok,
                "host uid {stranger} reached solo's gateway at {}: {said}",
                socket.display()
            );
        }
    }
    // The directories alone are not the guard: a host process that may search every directory
    // (CAP_DAC_READ_SEARCH, which does not let it write a file) still needs the socket's write
    // bit, which only root and the agent's uid have.
    let searcher = [
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
    ];
    let (ok, said) = whoami_with(1000, &searcher, &direct);
    assert!(
        !ok,
        "a host user past the directories reached solo's socket: {said}"
    );
    assert!(
        said.contains("ermission denied"),
        "refused by the socket's mode, not something else: {said}"
    );
    // The agent's own uid is let in (as in its container), so the refusals above are not the
    // client failing for some other reason.
    for socket in [&through_proc, &direct] {
        let (ok, said) = whoami_with(uid, &searcher, socket);
        assert!(
            ok,
            "solo's own uid is refused its gateway at {}: {said}",
            socket.display()
        );
        assert!(said.contains(&solo), "{said}");
    }
}

/// An agent filling its home, in bytes and then in files, hits its own quota: the runtime's data
/// directory loses nothing to it (its disk was allocated whole when it was made), and the
/// runtime, its log and the agent's own gateway go on. A quota the host cannot give, or above
/// the hirer's, is refused before anything is recorded.
#[test]
fn a_full_home_fails_inside_its_container_only() {
    roster_sandbox::disk::Disks::usable()
        .expect("home disks need root, loop devices and e2fsprogs: run scripts/setup");
    let s = served();
    s.ok(&["team", "create", "lab"]);
    let filler = s.hire_into(
        "lab",
        "filler",
        &["--disk", "64", "--grant", "agent.hire@team:lab"],
    );
    let image = s
        .dir
        .join("homes")
        .join(format!("roster-{}-{filler}-home.ext4", s.ns));
    let allocated = || {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&image).unwrap().blocks() * 512
    };
    let before = allocated();
    assert!(
        before >= 64 << 20,
        "{} allocated whole: {before}",
        image.display()
    );
    let out = s.exec(
        "lab/filler",
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/home/agent/fill bs=1M count=512 2>&1 | head -1; \
             echo bytes=$(wc -c < /home/agent/fill); mkdir /home/agent/many; cd /home/agent/many; \
             seq 1 20000 | xargs touch 2>/dev/null; echo files=$(ls | wc -l); \
             echo more > /home/agent/more || echo full",
        ],
    );
    let field = |k: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {out}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(out.contains("No space left on device"), "{out}");
    assert!(field("bytes") <= 64 << 20, "{out}");
    assert!(field("files") < 64 * 64 + 64, "{out}");
    assert!(out.trim_end().ends_with("full"), "{out}");
    assert_eq!(
        allocated(),
        before,
        "the host's disk gave the home nothing more"
    );

    // The runtime goes on: the agent's gateway answers, the log takes new events.
    let mut g = Gateway::connect(&s, &filler);
    let me = g.call("whoami", json!({})).unwrap();
    assert_eq!(me["disk_mib"], 64, "{me}");
    s.ok(&["team", "create", "after"]);
    s.ok(&["verify"]);

    // More than the hirer has, from inside; more than the host can give, from the operator.
    let hires = s.count("AgentHired");
    let e = g
        .call(
            "hire",
            json!({"name": "wider", "role": "r", "disk_mib": 128}),
        )
        .unwrap_err();
    assert!(e.to_string().contains("home disk 128 MiB is above"), "{e}");
    let out = s.run(&[
        "hire", "--team", "lab", "--name", "huge", "--disk", "1048576",
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a 1 TiB home was hired");
    assert!(said.contains("a home disk of 1048576 MiB"), "{said}");
    assert_eq!(s.count("AgentHired"), hires, "nothing hired");
}
