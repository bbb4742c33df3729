//! The story `roster demo` tells: a research team and a product team, one working day, a night
//! in which the machine loses power, and the morning after.
//!
//! The agents are small shell scripts (busybox `sh` in the runtime's base image) that use
//! `roster-agent` — what a real agent's process would do. The operator's part is the `roster`
//! CLI; the two tool providers are programs on the host, configured in `roster.toml`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::serve::Serve;
use super::{json_field, Tour};

const RESEARCH_LEAD: &str = "research/lead";
const RESEARCHER: &str = "research/researcher";
const PRODUCT_LEAD: &str = "product/lead";

/// What the researcher finds, writes down, and shares.
const FINDING: &str = "acme sells the EU pricing dataset for 25";

/// The demo's `roster.toml`: a mail provider that appends each call to `OUTBOX` and says it was
/// sent, and a shop that confirms every order. Both read the call as JSON on stdin.
fn config(outbox: &Path) -> String {
    let mail = format!(
        "cat >> '{}'; echo >> '{}'; printf '{{\"sent\":true}}'",
        outbox.display(),
        outbox.display()
    );
    let shop = "cat > /dev/null; printf '{\"order\":\"confirmed\"}'";
    format!(
        "[tools.\"email.send\"]\nexec = [\"/bin/sh\", \"-c\", {mail:?}]\n\n\
         [tools.\"dataset.buy\"]\nexec = [\"/bin/sh\", \"-c\", {shop:?}]\n"
    )
}

pub(super) fn tell(t: &mut Tour, tmp: &Path, bus: &roster_bus::BusUrl) -> anyhow::Result<()> {
    println!(
        "roster demo: two teams of agents, one working day, a power cut, and the morning after"
    );
    println!(
        "(data directory {}; --verbose shows every command)\n",
        t.data_dir.display()
    );
    t.ok(&["init"])?;
    let outbox = tmp.join("outbox.jsonl");
    std::fs::write(t.data_dir.join("roster.toml"), config(&outbox))?;
    t.note("starting the runtime (the first run also builds the agents' base image)…");
    let mut serve = Serve::start(&t.data_dir, bus)?;
    t.say(format_args!(
        "the runtime runs: `roster serve`, namespace {}, {} bus; tool providers for email.send and dataset.buy are programs on the host",
        serve.ns,
        if bus.is_memory() { "in-process" } else { "NATS" }
    ));

    let researcher = day(t, &outbox)?;

    let removed = serve.power_cut()?;
    t.say(format_args!(
        "night: the power fails — the runtime is killed (SIGKILL) and all {removed} containers are gone; the data directory and the agents' homes remain"
    ));
    let since = Instant::now();
    serve.restart()?;
    t.wait_running(&[RESEARCH_LEAD, RESEARCHER, PRODUCT_LEAD])?;
    t.ok(&["agents"])?;
    t.say(format_args!(
        "morning: `roster serve` again — every agent the log wants runs again, each in a new container ({:.1} s)",
        since.elapsed().as_secs_f64()
    ));

    morning(t, &researcher)?;

    if !bus.is_memory() {
        let url = bus.to_string();
        let out = t.ok(&[
            "subscribe",
            "--bus",
            &url,
            "--ns",
            serve.ns.as_str(),
            "--team",
            "research",
            "--type",
            "ActionPerformed",
            "--count",
            "3",
        ])?;
        t.say(format_args!(
            "every event also went to NATS: an outside subscriber read research's {} uses of its grants back from JetStream",
            out.lines().count()
        ));
    }

    let history = t.ok(&["log", "--team", "research"])?;
    t.say("research's history, every event in order (who did what, through which grant, and every refusal):");
    for l in history.lines() {
        t.note(l);
    }
    let verified = t.ok(&["verify"])?;
    t.say(format_args!(
        "roster verify: {}",
        verified.lines().next().unwrap_or("the hash chain holds")
    ));
    serve.stop();
    serve.remove_stream()?;
    Ok(())
}

/// The working day: hires, a refusal, notes, context inside a team and across a share, an
/// approved email, a spend. The researcher's id.
fn day(t: &mut Tour, outbox: &Path) -> anyhow::Result<String> {
    t.ok(&["team", "create", "research"])?;
    t.ok(&["team", "create", "product"])?;
    t.say("the operator creates two teams: research and product");

    t.ok(&[
        "hire",
        "--team",
        "research",
        "--name",
        "lead",
        "--role",
        "research lead",
        "--grant",
        "agent.hire@team:research,budget=2",
        "--grant",
        "dataset.buy@vendor:*,budget=50",
        "--grant",
        "share.propose@team:research",
    ])?;
    t.ok(&[
        "hire",
        "--team",
        "product",
        "--name",
        "lead",
        "--role",
        "product lead",
        "--grant",
        "email.send@mailbox:*,approval",
        "--grant",
        "share.accept@team:product",
    ])?;
    let took = t.wait_running(&[RESEARCH_LEAD, PRODUCT_LEAD])?;
    t.say(format_args!(
        "the operator hires a lead for each, with root grants — research/lead: hire 2 teammates, buy datasets for up to 50, offer research's findings; product/lead: send email with a human's approval, accept what is offered (both containers up in {:.1} s)",
        took.as_secs_f64()
    ));

    let hired = t.agent_ok(
        RESEARCH_LEAD,
        "roster-agent hire researcher --role 'finds and prices datasets' --grant 'dataset.buy@vendor:*,budget=30'",
    )?;
    let researcher = json_field(&hired, "agent")?;
    let took = t.wait_running(&[RESEARCHER])?;
    t.say(format_args!(
        "research/lead, from inside its container, hires research/researcher ({researcher}) with dataset.buy@vendor:*,budget=30 — a grant derived from its own (container up in {:.1} s)",
        took.as_secs_f64()
    ));

    let why = t.agent_refused(
        RESEARCH_LEAD,
        "roster-agent hire intern --grant 'dataset.buy@vendor:*,budget=500'",
    )?;
    t.say(format_args!(
        "it tries to hire an intern with a budget of 500, more than it has: refused and recorded — {why}"
    ));

    t.agent_ok(
        RESEARCHER,
        &format!("echo '{FINDING}' >> /home/agent/notes.md"),
    )?;
    t.say(format_args!(
        "research/researcher writes a note in its home, its memory: \"{FINDING}\""
    ));
    let why = t.agent_refused(RESEARCHER, "nc -w 2 169.254.169.254 80")?;
    t.say(format_args!(
        "it tries to reach the cloud's metadata service: its container has no network at all ({why}), and no credential to steal"
    ));

    let heard = overheard(t, RESEARCH_LEAD, None)?;
    t.say(format_args!(
        "research/researcher shares the finding with its team; research/lead, listening in its container, hears: \"{heard}\""
    ));

    let why = t.agent_refused(
        RESEARCHER,
        &format!("roster-agent share findings/pricing '{FINDING}' --team product"),
    )?;
    t.say(format_args!(
        "sent to product instead, the same finding is refused and recorded — {why}"
    ));

    let proposed = t.agent_ok(
        RESEARCH_LEAD,
        r#"roster-agent call share_propose '{"to":"product","topics":"findings/**"}'"#,
    )?;
    let share = json_field(&proposed, "share")?;
    t.agent_ok(
        PRODUCT_LEAD,
        &format!(r#"roster-agent call share_accept '{{"share":"{share}"}}'"#),
    )?;
    t.say(format_args!(
        "research/lead offers product the topics findings/**, and product/lead accepts: both teams opened the share ({share})"
    ));

    let heard = overheard(t, PRODUCT_LEAD, Some(&researcher))?;
    t.say(format_args!(
        "research/researcher shares its finding with its team again; now it also crosses the share, and product/lead hears: \"{heard}\" (the crossing is recorded: digest and size, not the text)"
    ));

    let act = t.agent_spawn(
        PRODUCT_LEAD,
        "roster-agent act email.send mailbox:customers --arg subject='EU pricing' --wait 60",
    )?;
    let approval = waiting_approval(t)?;
    t.say(format_args!(
        "product/lead asks to email mailbox:customers — irreversible, so the runtime records the request ({approval}) and the agent waits for a human"
    ));
    t.ok(&["approvals"])?;
    t.ok(&["approve", &approval, "--note", "pricing mail checked"])?;
    let result = t.finish(act, Duration::from_secs(60))?;
    let call = std::fs::read_to_string(outbox).context("the mail provider was not called")?;
    let call: serde_json::Value = serde_json::from_str(call.trim())?;
    t.say(format_args!(
        "the operator approves it (`roster approve`): the mail provider gets exactly the approved call ({} on {}, approval {}) and answers {}",
        call["action"].as_str().unwrap_or("?"),
        call["resource"].as_str().unwrap_or("?"),
        call["approval"].as_str().unwrap_or("?"),
        json_result(&result)
    ));

    let bought = t.agent_ok(
        RESEARCHER,
        "roster-agent act dataset.buy vendor:acme --amount 25",
    )?;
    t.say(format_args!(
        "research/researcher buys the dataset for 25 of its 30; the shop answers {}",
        json_result(&bought)
    ));
    Ok(researcher)
}

/// The morning after: the same agent (`researcher`, its id yesterday), its home, its budget.
fn morning(t: &mut Tour, researcher: &str) -> anyhow::Result<()> {
    let me: serde_json::Value =
        serde_json::from_str(&t.agent_ok(RESEARCHER, "roster-agent whoami")?)?;
    let grants: serde_json::Value =
        serde_json::from_str(&t.agent_ok(RESEARCHER, "roster-agent grants")?)?;
    let budget = grants["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["capability"] == "dataset.buy@vendor:*,budget=30" && g["active"] == true);
    match budget {
        Some(g) if me["id"] == researcher && me["parent_name"] == RESEARCH_LEAD => t.say(format_args!(
            "research/researcher asks who it is: still {researcher}, hired by {RESEARCH_LEAD}, holding {} with {} spent",
            g["capability"].as_str().unwrap_or("?"),
            g["spent"]
        )),
        _ => bail!("the researcher is not who it was yesterday: {me} {grants}"),
    }
    let notes = t.agent_ok(RESEARCHER, "cat /home/agent/notes.md")?;
    if notes.trim() != FINDING {
        bail!("the researcher's note is not what it wrote yesterday: {notes:?}");
    }
    t.say(format_args!(
        "it reads back what it wrote yesterday: \"{}\"",
        notes.trim()
    ));
    let why = t.agent_refused(
        RESEARCHER,
        "roster-agent act dataset.buy vendor:acme --amount 10",
    )?;
    t.say(format_args!(
        "it tries to buy another dataset for 10: yesterday's spending still counts, so it is denied and recorded — {why}"
    ));
    Ok(())
}

/// `listener` listens on `findings/**` in its container while the researcher shares the
/// finding with its team; what the listener heard. The listener subscribes as its command
/// starts, which takes a moment, so the researcher says it again (at most twice) until it is
/// heard. `from`: the sender's id, which the message must name.
fn overheard(t: &mut Tour, listener: &str, from: Option<&str>) -> anyhow::Result<String> {
    let child = t.agent_spawn(listener, "roster-agent listen 'findings/**' --count 1")?;
    let mut child = Some(child);
    std::thread::sleep(Duration::from_millis(800));
    for _ in 0..3 {
        t.agent_ok(
            RESEARCHER,
            &format!("roster-agent share findings/pricing '{FINDING}'"),
        )?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(c) = child.as_mut() {
            if c.try_wait()?.is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(c) = child.take_if(|c| matches!(c.try_wait(), Ok(Some(_)))) {
            let out = t.finish(c, Duration::from_secs(1))?;
            let msg: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or(""))
                .context("the listener printed something that is not JSON")?;
            if let Some(id) = from {
                if msg["sender"] != id || msg["team"] != "research" {
                    bail!("the message did not come from the researcher: {msg}");
                }
            }
            return msg["message"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("the listener heard no message: {msg}"));
        }
    }
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    bail!("{listener} heard nothing from three messages")
}

/// Waits until an approval waits; its id.
fn waiting_approval(t: &mut Tour) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting = t.json_lines(&["approvals"])?;
        if let Some(id) = waiting.iter().find_map(|a| a["id"].as_str()) {
            return Ok(id.to_owned());
        }
        if Instant::now() > deadline {
            bail!("no approval request appeared within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The provider's answer in an `act`'s output (`result`), as compact JSON.
fn json_result(out: &str) -> String {
    serde_json::from_str::<serde_json::Value>(out.trim())
        .ok()
        .and_then(|v| v.get("result").map(ToString::to_string))
        .unwrap_or_else(|| out.trim().to_owned())
}
