//! `roster demo`: a guided tour of the operator commands in a temporary data directory.
//!
//! Every step runs this very binary as a child process with real arguments, prints the command
//! and what it answered, and checks that it succeeded or was refused as the story says — so the
//! demo fails loudly if the product stops behaving as shown.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

use crate::output::Out;

mod sandbox;

/// What a step must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Ok,
    Refused,
}

struct Tour<'a> {
    data_dir: &'a Path,
    out: Out,
    step: usize,
}

impl Tour<'_> {
    /// Runs `roster ARGS` in the tour's data directory, shown as a step; returns its output.
    fn run(&mut self, what: &str, args: &[&str], expect: Expect) -> anyhow::Result<String> {
        self.step += 1;
        self.exec(what, args, expect, true)
    }

    /// Runs `roster ARGS` behind the scenes (to look up an id); nothing is shown.
    fn look_up(&mut self, args: &[&str]) -> anyhow::Result<String> {
        self.exec("", args, Expect::Ok, false)
    }

    fn exec(
        &mut self,
        what: &str,
        args: &[&str],
        expect: Expect,
        show: bool,
    ) -> anyhow::Result<String> {
        let exe = std::env::current_exe().context("cannot find the roster binary itself")?;
        let output = Command::new(exe)
            .arg("--data-dir")
            .arg(self.data_dir)
            .arg("--as")
            .arg("ada")
            .args(args)
            .env_remove("ROSTER_JSON")
            .output()
            .context("cannot run roster")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if show && !self.out.json {
            println!("\n{}. {what}", self.step);
            println!(
                "   $ roster {}",
                args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
            );
            for l in stdout.lines().chain(stderr.lines()) {
                println!("     {l}");
            }
        }
        let ok = output.status.success();
        match (expect, ok) {
            (Expect::Ok, true) | (Expect::Refused, false) => Ok(stdout),
            (Expect::Ok, false) => {
                bail!("step {} failed but should have worked: {stderr}", self.step)
            }
            (Expect::Refused, true) => {
                bail!("step {} worked but should have been refused", self.step)
            }
        }
    }
}

fn quote(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@=".contains(c))
    {
        a.to_string()
    } else if a.contains('\'') {
        format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("'{a}'")
    }
}

/// Finds the first `"key":"value"` string value in JSON lines.
fn json_field(text: &str, key: &str) -> anyhow::Result<String> {
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if let Some(found) = find(&v, key) {
            return Ok(found);
        }
    }
    bail!("no `{key}` in the output")
}

fn find(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_str().map(str::to_owned))
            .or_else(|| m.values().find_map(|x| find(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// Runs the tour.
pub fn run(out: Out, bus: roster_bus::BusUrl) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new().prefix("roster-demo-").tempdir()?;
    let dir = tmp.path().join("data");
    let mut t = Tour {
        data_dir: &dir,
        out: out.clone(),
        step: 0,
    };
    println!(
        "roster demo: a tour of the event log, the permission core and the sandbox in {}",
        dir.display()
    );

    t.run(
        "Create an empty, hash-chained event log.",
        &["init"],
        Expect::Ok,
    )?;
    t.run(
        "An operator creates two teams.",
        &["team", "create", "research"],
        Expect::Ok,
    )?;
    t.run("", &["team", "create", "product"], Expect::Ok)?;
    t.run(
        "The operator hires a research lead with root grants: hire up to 2 teammates, any email, spend up to 100.",
        &["hire", "--team", "research", "--name", "lead", "--role", "research lead",
          "--grant", "agent.hire@team:research,budget=2", "--grant", "email.*@mailbox:*",
          "--grant", "spend.usd@*,budget=100"],
        Expect::Ok,
    )?;
    t.run(
        "The lead hires a scout with narrower grants (derived from its own).",
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
            "--grant",
            "spend.usd@*,budget=30",
        ],
        Expect::Ok,
    )?;
    t.run(
        "The lead tries to give a teammate more than it has: refused, and the refusal is recorded.",
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
        Expect::Refused,
    )?;
    t.run(
        "",
        &[
            "hire",
            "--team",
            "research",
            "--name",
            "rogue",
            "--by",
            "research/lead",
            "--grant",
            "spend.usd@*,budget=500",
        ],
        Expect::Refused,
    )?;
    t.run(
        "A malformed capability never reaches the log.",
        &["grant", "research/scout", "email.send@"],
        Expect::Refused,
    )?;
    t.run(
        "What the scout holds, and what it derives from.",
        &["grants", "research/scout"],
        Expect::Ok,
    )?;
    t.run(
        "May the scout mail alice? And bob?",
        &["check", "research/scout", "email.send", "mailbox:alice"],
        Expect::Ok,
    )?;
    t.run(
        "",
        &["check", "research/scout", "email.send", "mailbox:bob"],
        Expect::Refused,
    )?;
    t.run(
        "The scout spends 25 of its 30.",
        &[
            "act",
            "research/scout",
            "spend.usd",
            "vendor:acme",
            "--amount",
            "25",
        ],
        Expect::Ok,
    )?;
    t.run(
        "10 more does not fit its budget.",
        &[
            "act",
            "research/scout",
            "spend.usd",
            "vendor:acme",
            "--amount",
            "10",
        ],
        Expect::Refused,
    )?;
    t.run(
        "Product's lead may send email only with a human's approval.",
        &[
            "hire",
            "--team",
            "product",
            "--name",
            "lead",
            "--grant",
            "email.send@mailbox:*,approval",
        ],
        Expect::Ok,
    )?;
    let asked = t.run(
        "It asks to send: the runtime records an approval request instead of acting.",
        &[
            "--json",
            "act",
            "product/lead",
            "email.send",
            "mailbox:customers",
        ],
        Expect::Ok,
    )?;
    let approval = json_field(&asked, "approval")?;
    t.run("What waits for a human.", &["approvals"], Expect::Ok)?;
    t.run(
        "The operator approves, for one use.",
        &["approve", &approval, "--note", "launch mail"],
        Expect::Ok,
    )?;
    t.run(
        "",
        &[
            "act",
            "product/lead",
            "email.send",
            "mailbox:customers",
            "--approval",
            &approval,
        ],
        Expect::Ok,
    )?;
    t.run(
        "The same approval cannot be used twice.",
        &[
            "act",
            "product/lead",
            "email.send",
            "mailbox:customers",
            "--approval",
            &approval,
        ],
        Expect::Refused,
    )?;
    let lead_grants = t.look_up(&["--json", "grants", "research/lead"])?;
    let email_grant = lead_grants
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["capability"]
                .as_str()
                .is_some_and(|c| c.starts_with("email."))
        })
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .context("the lead's email grant is missing")?;
    t.run(
        "Revoking the lead's email grant cascades to the scout's.",
        &["revoke", &email_grant],
        Expect::Ok,
    )?;
    t.run(
        "",
        &["check", "research/scout", "email.send", "mailbox:alice"],
        Expect::Refused,
    )?;
    t.run("The whole history, oldest first.", &["log"], Expect::Ok)?;
    t.run(
        "The team as it stood after its sixth event.",
        &["replay", "--at", "5", "--team", "research"],
        Expect::Ok,
    )?;
    t.run("Prove that nothing was altered.", &["verify"], Expect::Ok)?;
    let export = tmp.path().join("log.jsonl");
    let export_s = export.display().to_string();
    t.run(
        "Export the log as JSON lines.",
        &["export", &export_s],
        Expect::Ok,
    )?;
    let tampered = tmp.path().join("tampered.jsonl");
    let text = std::fs::read_to_string(&export)?;
    std::fs::write(&tampered, text.replacen("\"scout\"", "\"spy\"", 1))?;
    let mut t2 = Tour {
        data_dir: &tmp.path().join("copy"),
        out,
        step: t.step,
    };
    t2.run(
        "Someone renames the scout in the export: importing it is refused.",
        &["import", &tampered.display().to_string()],
        Expect::Refused,
    )?;
    t2.run(
        "The untouched export imports, every hash re-verified.",
        &["import", &export_s],
        Expect::Ok,
    )?;
    t2.run("", &["verify"], Expect::Ok)?;
    t.step = t2.step;
    sandbox::tour(&mut t, &bus)?;
    println!("\nroster demo: all {} steps behaved as expected.", t.step);
    Ok(())
}
