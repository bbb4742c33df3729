//! The checks of the escape suite, each a busybox script run inside the probe agent's container
//! and a judgement of what it printed.
//!
//! Scripts print `key=value` lines; a check passes only on positive evidence (a `done` line, a
//! write that works where it should, a search that finds a known file), so that a script that
//! did not run never looks like a denial.

use std::collections::HashMap;
use std::time::Duration;

use roster_core::event::RuntimeKind;

use super::{Check, Suite, SUITE_RESOURCES};
use crate::sweep::Sweep;

/// Everything in one line, cut to a length a terminal shows.
fn line(s: &str) -> String {
    let joined = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if joined.chars().count() > 400 {
        let mut cut: String = joined.chars().take(397).collect();
        cut.push_str("...");
        cut
    } else {
        joined
    }
}

/// The `key=value` lines of a script's output (the first value of each key).
fn fields(out: &str) -> HashMap<&str, &str> {
    let mut map = HashMap::new();
    for l in out.lines() {
        if let Some((k, v)) = l.split_once('=') {
            map.entry(k.trim()).or_insert(v.trim());
        }
    }
    map
}

/// The values of every `key=value` line with this key.
fn all<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

fn check(name: &'static str, passed: bool, seen: impl Into<String>) -> Check {
    Check {
        name,
        passed,
        seen: seen.into(),
    }
}

/// Prunes the kernel's pseudo filesystems from a `find /`.
const PRUNE: &str = r"\( -path /proc -o -path /sys -o -path /dev \) -prune -o";

/// Runs every check but the last, in DESIGN.md's order.
pub(super) async fn run_all(s: &Suite<'_>) -> Vec<Check> {
    let mut out = vec![
        host_files(s).await,
        proc_root(s).await,
        docker_socket(s).await,
        network(s).await,
        read_only_root(s).await,
        privileges(s).await,
        own_uid(s).await,
        home_bounded(s).await,
    ];
    // The other agent's home is looked for before the fork bomb and the memory hog disturb the
    // container, and reported in its place.
    let home = other_home(s).await;
    out.push(fork_bomb(s).await);
    out.push(memory_hog(s).await);
    out.push(home);
    out
}

async fn host_files(s: &Suite<'_>) -> Check {
    let name = "host files unreadable";
    let marker = s
        .host_marker
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let script = format!(
        "if cat /etc/shadow >/dev/null 2>&1; then echo shadow=readable; else echo shadow=absent; fi\n\
         echo \"hostname=$(cat /etc/hostname)\"\n\
         echo \"byname=$(find / {PRUNE} -name '{marker}' -print 2>/dev/null | tr '\\n' ' ')\"\n\
         echo \"bycontent=$(find / {PRUNE} -type f -exec grep -l '{token}' {{}} + 2>/dev/null | tr '\\n' ' ')\"\n\
         echo \"selftest=$(find / {PRUNE} -type f -exec grep -l '^agent:x:1000' {{}} + 2>/dev/null | tr '\\n' ' ')\"\n",
        token = s.host_token,
    );
    let out = match s.sh(&script, 60).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let host_name = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let own_name = f.get("hostname").copied().unwrap_or_default();
    let passed = f.get("shadow") == Some(&"absent")
        && !own_name.is_empty()
        && own_name != host_name
        && f.get("byname") == Some(&"")
        && f.get("bycontent") == Some(&"")
        && f.get("selftest").is_some_and(|t| t.contains("/etc/passwd"));
    let seen = format!(
        "/etc/shadow {}; hostname {own_name} (host: {host_name}); host marker by name: [{}], by \
         content: [{}] (the same search finds [{}])",
        f.get("shadow").copied().unwrap_or("?"),
        f.get("byname").copied().unwrap_or("?"),
        f.get("bycontent").copied().unwrap_or("?"),
        f.get("selftest").copied().unwrap_or("?"),
    );
    check(name, passed, seen)
}

async fn proc_root(s: &Suite<'_>) -> Check {
    let name = "/proc/1/root confined";
    let script = format!(
        "echo \"link=$(readlink /proc/1/root 2>&1)\"\n\
         if ls /proc/1/root/ >/dev/null 2>&1; then echo access=yes; else echo access=denied; fi\n\
         if grep -q '^agent:x:1000' /proc/1/root/etc/passwd 2>/dev/null; then echo passwd=container; else echo passwd=none; fi\n\
         if [ -e '/proc/1/root{marker}' ]; then echo hostmarker=visible; else echo hostmarker=absent; fi\n\
         if [ -e /proc/1/root/etc/shadow ]; then echo shadow=present; else echo shadow=absent; fi\n",
        marker = s.host_marker.display(),
    );
    let out = match s.sh(&script, 30).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let access = f.get("access").copied().unwrap_or("?");
    let confined = match access {
        "denied" => true,
        "yes" => f.get("passwd") == Some(&"container"),
        _ => false,
    };
    let passed =
        confined && f.get("hostmarker") == Some(&"absent") && f.get("shadow") == Some(&"absent");
    let seen = format!(
        "/proc/1/root -> {} (access {access}, its /etc/passwd: {}); host marker {}; /etc/shadow {}",
        f.get("link").copied().unwrap_or("?"),
        f.get("passwd").copied().unwrap_or("?"),
        f.get("hostmarker").copied().unwrap_or("?"),
        f.get("shadow").copied().unwrap_or("?"),
    );
    check(name, passed, seen)
}

async fn docker_socket(s: &Suite<'_>) -> Check {
    let name = "no Docker socket";
    let script = format!(
        "for p in /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock \
         /var/run/containerd/containerd.sock /var/lib/docker; do [ -e $p ] && echo present=$p; done\n\
         awk '{{print $2}}' /proc/mounts | grep -i -e docker.sock -e containerd -e '\\.sock$' | sed 's/^/mount=/'\n\
         find / {PRUNE} -type s -print 2>/dev/null | sed 's/^/socket=/'\n\
         echo done=yes\n"
    );
    let out = match s.sh(&script, 60).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let present = all(&out, "present");
    let mounts = all(&out, "mount");
    let sockets: Vec<&str> = all(&out, "socket")
        .into_iter()
        .filter(|p| !p.starts_with("/run/roster/"))
        .collect();
    let passed = fields(&out).get("done") == Some(&"yes")
        && present.is_empty()
        && mounts.is_empty()
        && sockets.is_empty();
    let seen = format!(
        "engine socket paths present: [{}]; socket mounts: [{}]; socket files outside \
         /run/roster: [{}]",
        present.join(" "),
        mounts.join(" "),
        sockets.join(" ")
    );
    check(name, passed, seen)
}

async fn network(s: &Suite<'_>) -> Check {
    let name = "no network";
    let script =
        "echo \"ifaces=$(awk 'NR>2 {sub(\":\",\"\",$1); printf \"%s \", $1}' /proc/net/dev)\"\n\
        out=$(nc -w 2 169.254.169.254 80 </dev/null 2>&1); echo \"metadata=$? $out\"\n\
        out=$(nc -w 2 1.1.1.1 443 </dev/null 2>&1); echo \"public=$? $out\"\n\
        out=$(nc -w 2 8.8.8.8 53 </dev/null 2>&1); echo \"dns=$? $out\"\n";
    let out = match s.sh(script, 30).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let ifaces = f.get("ifaces").copied().unwrap_or("?");
    let failed = |k: &str| {
        f.get(k)
            .and_then(|v| v.split_whitespace().next())
            .is_some_and(|code| code != "0")
    };
    let passed = ifaces == "lo" && failed("metadata") && failed("public") && failed("dns");
    let seen = format!(
        "interfaces: {ifaces}; 169.254.169.254:80 → {}; 1.1.1.1:443 → {}; 8.8.8.8:53 → {}",
        f.get("metadata").copied().unwrap_or("?"),
        f.get("public").copied().unwrap_or("?"),
        f.get("dns").copied().unwrap_or("?"),
    );
    check(name, passed, seen)
}

async fn read_only_root(s: &Suite<'_>) -> Check {
    let name = "root filesystem read-only";
    // `: >>` opens for writing without changing a byte, so a failure of this check never damages
    // the host's roster-agent behind the read-only bind.
    let script = "for d in / /etc /usr /bin /sbin /usr/local/bin /run; do \
           if touch $d/.roster-probe 2>/dev/null; then echo writable=$d; rm -f $d/.roster-probe; fi; done\n\
        if (: >> /usr/local/bin/roster-agent) 2>/dev/null; then echo writable=/usr/local/bin/roster-agent; fi\n\
        touch /home/agent/.roster-probe && rm /home/agent/.roster-probe && echo home=writable\n\
        touch /tmp/.roster-probe && rm /tmp/.roster-probe && echo tmp=writable\n\
        out=$(touch /etc/.roster-probe 2>&1); echo \"why=$out\"\n";
    let out = match s.sh(script, 30).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let writable = all(&out, "writable");
    let f = fields(&out);
    let passed = writable.is_empty()
        && f.get("home") == Some(&"writable")
        && f.get("tmp") == Some(&"writable");
    let seen = format!(
        "writable outside home and /tmp: [{}] ({}); home {}, /tmp {}",
        writable.join(" "),
        f.get("why").copied().unwrap_or("?"),
        f.get("home").copied().unwrap_or("NOT writable"),
        f.get("tmp").copied().unwrap_or("NOT writable"),
    );
    check(name, passed, seen)
}

async fn privileges(s: &Suite<'_>) -> Check {
    let name = "no privilege escalation";
    let script = "echo \"uid=$(id -u)\"\n\
        grep -E '^(CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -d ' \\t' | tr ':' '='\n\
        out=$(su -c id root </dev/null 2>&1); echo \"su=$? $out\"\n\
        cp /bin/busybox /home/agent/.roster-suid 2>/dev/null; out=$(chown 0:0 /home/agent/.roster-suid 2>&1); echo \"chown=$? $out\"; rm -f /home/agent/.roster-suid\n\
        mkdir -p /tmp/roster-mnt; out=$(mount -t tmpfs none /tmp/roster-mnt 2>&1); echo \"mount=$? $out\"\n\
        out=$(unshare -U id -u 2>&1); echo \"userns=$? $out\"\n";
    let out = match s.sh(script, 30).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let zero = |k: &str| {
        f.get(k)
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b == b'0'))
    };
    let refused = |k: &str| {
        f.get(k)
            .and_then(|v| v.split_whitespace().next())
            .is_some_and(|code| code != "0")
    };
    let runc = s.runtime == RuntimeKind::Runc;
    // gVisor does not report NoNewPrivs or CapAmb, and implements user namespaces in its own
    // kernel (capabilities over nothing but the new namespace); runc must deny them outright.
    let nnp_ok = match f.get("NoNewPrivs") {
        Some(v) => *v == "1",
        None => !runc,
    };
    let amb_ok = f.get("CapAmb").is_none_or(|_| zero("CapAmb"));
    let userns_ok = !runc || refused("userns");
    let own = s.probe_uid.to_string();
    let passed = f.get("uid") == Some(&own.as_str())
        && zero("CapEff")
        && zero("CapPrm")
        && zero("CapBnd")
        && amb_ok
        && nnp_ok
        && refused("su")
        && refused("chown")
        && refused("mount")
        && userns_ok;
    let get = |k: &str| f.get(k).copied().unwrap_or("(not reported)");
    let seen = format!(
        "uid {}; CapEff {} CapPrm {} CapBnd {} CapAmb {}; NoNewPrivs {}; Seccomp {}; su → {}; \
         chown to root → {}; mount → {}; new user namespace → {}",
        get("uid"),
        get("CapEff"),
        get("CapPrm"),
        get("CapBnd"),
        get("CapAmb"),
        get("NoNewPrivs"),
        get("Seccomp"),
        get("su"),
        get("chown"),
        get("mount"),
        get("userns"),
    );
    check(name, passed, line(&seen))
}

/// Waits until the probe container answers an exec again (after a fork bomb or an OOM kill).
async fn answers(s: &Suite<'_>) -> bool {
    for _ in 0..20 {
        if let Ok(o) = s.sh("echo alive", 10).await {
            if o.stdout_text().trim() == "alive" {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

async fn fork_bomb(s: &Suite<'_>) -> Check {
    let name = "fork bomb stopped by the pids limit";
    let limit = SUITE_RESOURCES.pids;
    let tries = limit + 136;
    // ash exits when a fork fails, so the bomb runs in a subshell and its children's pids go to a
    // file; the parent counts and kills them with builtins only (it cannot fork at the limit).
    let script = format!(
        "rm -f /tmp/fb.pids /tmp/fb.err\n\
         ( i=0; while [ $i -lt {tries} ]; do sleep 30 & echo $! >> /tmp/fb.pids; i=$((i+1)); done ) 2>/tmp/fb.err\n\
         set -- /proc/[0-9]*; echo \"peak=$#\"\n\
         n=0; while read p; do kill $p 2>/dev/null; n=$((n+1)); done < /tmp/fb.pids; echo \"spawned=$n\"\n\
         f=0; while read l; do case \"$l\" in *\"can't fork\"*) f=1;; esac; done < /tmp/fb.err; echo \"forkfailed=$f\"\n"
    );
    let out = match s.sh(&script, 90).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u32>().ok());
    let alive = answers(s).await;
    let (peak, spawned) = (num("peak"), num("spawned"));
    let passed = f.get("forkfailed") == Some(&"1") && peak.is_some_and(|p| p <= limit) && alive;
    let seen = format!(
        "{} of {tries} background sleeps started, fork {}, peak {} processes (limit {limit}); \
         container {}",
        spawned.map_or("?".to_string(), |n| n.to_string()),
        if f.get("forkfailed") == Some(&"1") {
            "refused"
        } else {
            "never refused"
        },
        peak.map_or("?".to_string(), |n| n.to_string()),
        if alive {
            "answers afterwards"
        } else {
            "does NOT answer afterwards"
        },
    );
    check(name, passed, seen)
}

/// The memory cgroup's count of OOM kills, where the container can see it (runc, cgroup v1).
async fn oom_kills(s: &Suite<'_>) -> Option<u64> {
    let out = s
        .sh(
            "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null",
            10,
        )
        .await
        .ok()?
        .stdout_text();
    out.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

async fn memory_hog(s: &Suite<'_>) -> Check {
    let name = "memory hog OOM-killed, host unharmed";
    // The hog is four times what the container may hold on the host (under gVisor that includes
    // the sandbox's own kernel: `HostLimits`).
    let mut spec = roster_core::event::AgentSpec::base();
    spec.runtime = s.runtime;
    spec.resources = SUITE_RESOURCES;
    let limit = crate::plan::HostLimits::of(&spec).memory_mib;
    let hog = limit * 4;
    // `tail` keeps a newline-free input in memory until it ends: it grows to the hog's size. It
    // offers itself to the OOM killer first (raising one's own oom_score_adj needs no privilege),
    // so the shell reporting its status survives; if the shell is killed anyway, the exec's own
    // exit code tells.
    let script = format!(
        "head -c {hog}m /dev/zero | (echo 1000 > /proc/self/oom_score_adj; exec tail >/dev/null); \
         echo \"status=$?\""
    );
    let before = oom_kills(s).await;
    // Under gVisor the whole sandbox may be killed, and an exec into a dead sandbox does not
    // always end: stop waiting for it once the container has stopped.
    let stopped = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if matches!(s.engine.inspect(s.probe).await, Ok(Some(st)) if !st.running) {
                return;
            }
        }
    };
    let ran = tokio::select! {
        r = s.sh(&script, 120) => Some(r),
        () = stopped => None,
    };
    let hog_killed_inside =
        matches!(&ran, Some(Ok(o)) if fields(&o.stdout_text()).get("status") == Some(&"137"));
    if s.runtime == RuntimeKind::Runsc && !hog_killed_inside {
        // The kernel's OOM kill of the sandbox may still be under way: give it time to land.
        for _ in 0..100 {
            if matches!(s.engine.inspect(s.probe).await, Ok(Some(st)) if !st.running) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let state = s.engine.inspect(s.probe).await.ok().flatten();
    let running = state.as_ref().is_some_and(|st| st.running);
    let engine = s.engine.ping().await.is_ok();
    // Under gVisor the container's memory cgroup holds the sandbox's own kernel too: the kernel
    // OOM-kills the sandbox as a whole, and the engine records it as the container's OOM kill.
    if s.runtime == RuntimeKind::Runsc && !running {
        let oom = state.as_ref().is_some_and(|st| st.oom_killed);
        let passed = oom && engine;
        let seen = format!(
            "a {hog} MiB hog under a {limit} MiB limit: the sandbox {}; engine {}",
            if oom {
                "was OOM-killed as a whole (gVisor's kernel is inside the memory cgroup)"
            } else {
                "stopped, but NOT for memory"
            },
            if engine { "answers" } else { "does NOT answer" },
        );
        return check(name, passed, seen);
    }
    let (status, exec_code) = match ran {
        Some(Ok(o)) => (
            fields(&o.stdout_text())
                .get("status")
                .map(|v| v.to_string()),
            o.exit_code,
        ),
        Some(Err(e)) => return check(name, false, e),
        None => (None, None),
    };
    let after = oom_kills(s).await;
    let alive = answers(s).await;
    let killed = status.as_deref() == Some("137") || (status.is_none() && exec_code == Some(137));
    let counted = match (before, after) {
        (Some(b), Some(a)) => a > b,
        // Not visible (gVisor has no host memory cgroup to show): the exit code decides.
        _ => true,
    };
    let passed = killed && counted && alive && running && engine;
    let seen = format!(
        "a {hog} MiB hog under a {limit} MiB limit {}; OOM kills in the container's cgroup: {}; \
         container {} and {}; engine {}",
        match (status.as_deref(), exec_code) {
            (Some("137"), _) => "was killed (exit 137)".to_string(),
            (Some("0"), _) =>
                "ran to the end (exit 0): the memory limit is not enforced".to_string(),
            (Some(other), _) => format!("ended with {other}"),
            (None, Some(137)) =>
                "was killed with the shell that ran it (exec exit 137)".to_string(),
            (None, code) => format!("printed no status (exec exit {code:?})"),
        },
        match (before, after) {
            (Some(b), Some(a)) => format!("{b} before, {a} after"),
            _ => "not visible".to_string(),
        },
        if running {
            "still running"
        } else {
            "NOT running"
        },
        if alive { "answers" } else { "does NOT answer" },
        if engine { "answers" } else { "does NOT answer" },
    );
    check(name, passed, seen)
}

async fn other_home(s: &Suite<'_>) -> Check {
    let name = "another agent's home not visible";
    let (marker, token) = (&s.other_marker, &s.other_token);
    let write = format!("echo {token} > /home/agent/{marker} && cat /home/agent/{marker}");
    match s.sh_in(s.other, &write, 30).await {
        Ok(o) if o.stdout_text().trim() == token.as_str() => {}
        Ok(o) => {
            let seen = format!(
                "could not write the marker in the other agent's home: {}",
                line(&(o.stdout_text() + &o.stderr_text()))
            );
            return check(name, false, seen);
        }
        Err(e) => return check(name, false, format!("the other agent does not answer: {e}")),
    }
    let script = format!(
        "echo \"homes=$(ls -A /home | tr '\\n' ' ')\"\n\
         echo \"byname=$(find / {PRUNE} -name '{marker}' -print 2>/dev/null | tr '\\n' ' ')\"\n\
         echo \"bycontent=$(find / {PRUNE} -type f -exec grep -l '{token}' {{}} + 2>/dev/null | tr '\\n' ' ')\"\n\
         echo \"mountinfo=$(cat /proc/self/mountinfo /proc/mounts 2>/dev/null | grep -c '{volume}')\"\n",
        volume = s.other_volume,
    );
    let out = match s.sh(&script, 60).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let passed = f.get("homes") == Some(&"agent")
        && f.get("byname") == Some(&"")
        && f.get("bycontent") == Some(&"")
        && f.get("mountinfo") == Some(&"0");
    let seen = format!(
        "the other agent reads its marker back; here /home holds [{}], marker by name: [{}], by \
         content: [{}], its volume in the mount table: {} times",
        f.get("homes").copied().unwrap_or("?"),
        f.get("byname").copied().unwrap_or("?"),
        f.get("bycontent").copied().unwrap_or("?"),
        f.get("mountinfo").copied().unwrap_or("?"),
    );
    check(name, passed, seen)
}

/// The probe runs as a host uid of its own: roster's range, the other agent's is another, no
/// host account names it, no other label on the engine gives it, and every host process that
/// has it is in the probe's container.
async fn own_uid(s: &Suite<'_>) -> Check {
    let name = "its own host uid, used by nothing else";
    let uid = s.probe_uid;
    let out = match s
        .sh("echo \"uid=$(id -u)\"; echo \"gid=$(id -g)\"", 30)
        .await
    {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let own = uid.to_string();
    let inside = f.get("uid") == Some(&own.as_str()) && f.get("gid") == Some(&own.as_str());
    let container = match s.engine.inspect(s.probe).await {
        Ok(Some(st)) => st.id,
        Ok(None) => return check(name, false, "the probe's container is gone"),
        Err(e) => return check(name, false, e.to_string()),
    };
    let labelled = match s.engine.uids_in_use().await {
        Ok(in_use) => in_use.get(&uid).copied().unwrap_or(0),
        Err(e) => return check(name, false, e.to_string()),
    };
    let host = tokio::task::spawn_blocking(move || {
        let named = crate::uid::HostIds::read().names(uid.get());
        let strangers: Vec<u32> = crate::uid::processes_with(uid.get())
            .into_iter()
            .filter(|(_, cgroup)| !cgroup.contains(&container))
            .map(|(pid, _)| pid)
            .collect();
        (named, strangers)
    })
    .await;
    let Ok((named, strangers)) = host else {
        return check(
            name,
            false,
            "reading the host's accounts and processes failed",
        );
    };
    let passed = inside && s.other_uid != uid && !named && strangers.is_empty() && labelled == 1;
    let seen = format!(
        "inside: uid {} gid {} (its own: {uid}); the other agent's: {}; named by a host account: \
         {}; labels on the engine giving it: {labelled}; host processes with it outside the \
         container: {strangers:?}",
        f.get("uid").copied().unwrap_or("?"),
        f.get("gid").copied().unwrap_or("?"),
        s.other_uid,
        if named { "YES" } else { "no" },
    );
    check(name, passed, seen)
}

async fn home_bounded(s: &Suite<'_>) -> Check {
    let name = "home bounded in bytes and files";
    let (mib, files) = (super::SUITE_DISK_MIB, u64::from(super::SUITE_DISK_MIB) * 64);
    // Four times its size in bytes, then far more files than it has inodes; then the home
    // must work again once they are gone.
    let script = format!(
        "cd /home/agent || exit 1\n\
         dd if=/dev/zero of=fill bs=1M count={} 2>/dev/null; echo \"bytes=$(wc -c < fill)\"\n\
         echo \"why=$(dd if=/dev/zero of=more bs=1k count=64 2>&1 | head -1)\"\n\
         rm -f fill more\n\
         mkdir many && cd many && seq 1 {} | xargs touch 2>/dev/null; echo \"files=$(ls | wc -l)\"\n\
         cd .. && rm -rf many\n\
         touch ok && rm ok && echo after=writable\n",
        mib * 4,
        files * 4
    );
    let out = match s.sh(&script, 120).await {
        Ok(o) => o.stdout_text(),
        Err(e) => return check(name, false, e),
    };
    let f = fields(&out);
    let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
    let (bytes, made) = (num("bytes"), num("files"));
    let passed = bytes.is_some_and(|b| b > 0 && b <= u64::from(mib) << 20)
        && made.is_some_and(|n| n > 0 && n < files)
        && f.get("after") == Some(&"writable");
    let seen = format!(
        "wrote {} of {} MiB asked ({}), made {} of {} files asked, quota {mib} MiB; home {} \
         after",
        bytes.map_or("?".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
        mib * 4,
        f.get("why").copied().unwrap_or("?"),
        made.map_or("?".into(), |n| n.to_string()),
        files * 4,
        f.get("after").copied().unwrap_or("NOT writable"),
    );
    check(name, passed, seen)
}

/// Removes both throwaway agents and looks for anything left with the run's label.
pub(super) async fn nothing_left(s: &Suite<'_>, sweep: Sweep) -> Check {
    let name = "nothing left behind after removal";
    let label = sweep.label().to_string();
    let swept = match sweep.run(s.engine).await {
        Ok(sw) => sw,
        Err(e) => return check(name, false, format!("removal failed: {e}")),
    };
    let containers = s.engine.list_labelled(&label).await.map(|l| l.len());
    let volumes = s.engine.volumes_labelled(&label).await.map(|l| l.len());
    let dir_left = s.run_dir.exists();
    // Two agents: each a container, a home and a uid volume.
    let passed = swept.containers == 2
        && swept.volumes == 4
        && matches!(containers, Ok(0))
        && matches!(volumes, Ok(0))
        && !dir_left;
    let count = |r: &Result<usize, crate::SandboxError>| match r {
        Ok(n) => n.to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    let seen = format!(
        "removed {} containers and {} volumes of run {}; left: {} containers, {} volumes, \
         scratch directory {}",
        swept.containers,
        swept.volumes,
        s.run,
        count(&containers),
        count(&volumes),
        if dir_left { "still there" } else { "gone" },
    );
    check(name, passed, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_lines() {
        let out = "a=1\nb= two words \na=3\nnoise\n";
        assert_eq!(fields(out).get("a"), Some(&"1"));
        assert_eq!(fields(out).get("b"), Some(&"two words"));
        assert_eq!(all(out, "a"), vec!["1", "3"]);
        assert_eq!(line("x\n\n  y \n"), "x; y");
        assert!(line(&"z".repeat(1000)).ends_with("..."));
    }
}
