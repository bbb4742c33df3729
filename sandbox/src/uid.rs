//! Each agent's own host uid.
//!
//! Without a user namespace an agent's processes run as the same uid on the host as in their
//! container. Were that one shared uid (every agent 1000), any host process of that uid could
//! reach an agent's gateway through `/proc/PID/root`, write its home and trace it, and per-uid
//! kernel limits (inotify instances, message-queue bytes, RLIMIT_NPROC) would be shared by every
//! agent and that host user. So every agent gets a uid (and the gid of the same number) of its
//! own, from a range no host account uses:
//!
//! - the range is 0x70000000..0x7FFFFFFF, which systemd's allocation leaves unused (its
//!   container ranges end at 0x6FFFFFFF) and which stays below 2^31 for tools that read uids as
//!   signed numbers;
//! - a uid is never one that `/etc/passwd`, `/etc/group`, `/etc/subuid` or `/etc/subgid` names,
//!   nor one a host process runs as when it is chosen;
//! - the engine is the registry, across every namespace that uses it: an agent's uid is the
//!   `roster.uid` label of its uid volume (`roster-NS-AGENTID-uid`, empty), which lives and dies
//!   with its home ([`Engine::home`](crate::Engine::home)); while it is being given it is the
//!   label of the first thing made for it (that volume, or the home's preparation container).
//!   Two runtimes choosing at once both look again after labelling, and a choice another label
//!   also carries is given up and made again.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};

use roster_core::id::AgentId;
use roster_core::name::Name;

/// The label carrying an agent's host uid, on its uid volume and on its home's preparation
/// container.
pub const UID_LABEL: &str = "roster.uid";

/// The first uid of roster's range.
pub const FIRST: u32 = 0x7000_0000;
/// The last uid of roster's range.
pub const LAST: u32 = 0x7FFF_FFFE;
/// The last uid given to an agent: the top of the range is left to the raw baselines of
/// `roster bench` ([`baseline`]), which are not agents.
pub const AGENTS_LAST: u32 = 0x7FFE_FFFF;

/// The uid of the `i`th raw baseline container of a benchmark: each its own, so that
/// RLIMIT_NPROC counts each alone, and never an agent's.
pub fn baseline(i: usize) -> AgentUid {
    let span = LAST - AGENTS_LAST;
    let offset = u32::try_from(i % span as usize).unwrap_or(0);
    AgentUid(AGENTS_LAST + 1 + offset)
}

/// An agent's host uid, which is also its gid: one of roster's range, never root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentUid(u32);

impl AgentUid {
    /// The uid, if `n` is in roster's range.
    pub fn new(n: u32) -> Option<Self> {
        (FIRST..=LAST).contains(&n).then_some(Self(n))
    }

    /// Parses a label's text: decimal digits naming a uid of roster's range.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().and_then(Self::new)
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The engine's `User` for it: `UID:GID`, the same number twice.
    pub fn user(self) -> String {
        format!("{0}:{0}", self.0)
    }

    /// The uid after this one in the range, wrapping around.
    fn next(self) -> Self {
        Self(if self.0 >= AGENTS_LAST {
            FIRST
        } else {
            self.0 + 1
        })
    }
}

impl fmt::Display for AgentUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where the search for `agent`'s uid starts: a hash of the namespace and the agent, so that
/// two runtimes rarely start at the same place, and `salt` to start elsewhere after a clash.
pub fn start(ns: &Name, agent: AgentId, salt: u64) -> AgentUid {
    let mut h = std::hash::DefaultHasher::new();
    (ns.as_str(), agent.to_string(), salt).hash(&mut h);
    let span = u64::from(AGENTS_LAST - FIRST) + 1;
    let offset = u32::try_from(h.finish() % span).unwrap_or(0);
    AgentUid(FIRST + offset)
}

/// The first uid from `from` on that `taken` does not refuse, or `None` if the whole range is
/// taken (or the search gave up after `limit` tries).
pub(crate) fn pick(
    from: AgentUid,
    limit: u32,
    taken: impl Fn(AgentUid) -> bool,
) -> Option<AgentUid> {
    let mut uid = from;
    for _ in 0..limit {
        if !taken(uid) {
            return Some(uid);
        }
        uid = uid.next();
    }
    None
}

/// The ids the host uses: named in its account files, or those of its running processes.
#[derive(Debug, Default)]
pub struct HostIds {
    named: HashSet<u32>,
    ranges: Vec<(u32, u32)>,
    running: HashSet<u32>,
}

impl HostIds {
    /// Reads `/etc/passwd`, `/etc/group`, `/etc/subuid`, `/etc/subgid` and every readable
    /// `/proc/PID/status`. A file that does not exist names nothing.
    pub fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mut host = Self::default();
        host.add_accounts(&read("/etc/passwd"), 2);
        host.add_accounts(&read("/etc/passwd"), 3);
        host.add_accounts(&read("/etc/group"), 2);
        host.add_ranges(&read("/etc/subuid"));
        host.add_ranges(&read("/etc/subgid"));
        for pid in processes() {
            let status = read(&format!("/proc/{pid}/status"));
            host.running.extend(process_ids(&status));
        }
        host
    }

    /// Adds field `field` (0-based) of each `:`-separated line of an account file.
    fn add_accounts(&mut self, text: &str, field: usize) {
        for line in text.lines() {
            if let Some(n) = line.split(':').nth(field).and_then(|f| f.parse().ok()) {
                self.named.insert(n);
            }
        }
    }

    /// Adds the `name:first:count` ranges of a subordinate-id file.
    fn add_ranges(&mut self, text: &str) {
        for line in text.lines() {
            let mut f = line.split(':').skip(1);
            let first = f.next().and_then(|s| s.parse::<u32>().ok());
            let count = f.next().and_then(|s| s.parse::<u32>().ok());
            if let (Some(first), Some(count)) = (first, count) {
                if count > 0 {
                    self.ranges
                        .push((first, first.saturating_add(count.saturating_sub(1))));
                }
            }
        }
    }

    /// Whether the host uses `n` as a uid or gid: [`names`](Self::names) it, or a process runs
    /// with it.
    pub fn uses(&self, n: u32) -> bool {
        self.names(n) || self.running.contains(&n)
    }

    /// Whether an account file of the host names `n`, as an account, a group or in a range of
    /// subordinate ids.
    pub fn names(&self, n: u32) -> bool {
        self.named.contains(&n) || self.ranges.iter().any(|&(a, b)| (a..=b).contains(&n))
    }
}

/// The pids of the host's processes (every numeric entry of `/proc`).
pub fn processes() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The host processes running with `n` among their uids or gids, each with its
/// `/proc/PID/cgroup` text (which names the container it runs in).
pub fn processes_with(n: u32) -> Vec<(u32, String)> {
    processes()
        .into_iter()
        .filter(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            process_ids(&status).contains(&n)
        })
        .map(|pid| {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            (pid, cgroup)
        })
        .collect()
}

/// Whether the host's name service knows `n` as a user or a group now — `getent`, so that
/// accounts from a directory (LDAP, SSSD, FreeIPA, winbind: often uids far above 65535) count
/// like those of `/etc/passwd` — or a subordinate-id range of `/etc/subuid` or `/etc/subgid`
/// holds it. A host where `getent` cannot answer is read from its files only.
pub fn named_by_host(n: u32) -> bool {
    let knows = |db: &str| {
        std::process::Command::new("getent")
            .args([db, &n.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let mut files = HostIds::default();
    files.add_accounts(&read("/etc/passwd"), 2);
    files.add_accounts(&read("/etc/passwd"), 3);
    files.add_accounts(&read("/etc/group"), 2);
    files.add_ranges(&read("/etc/subuid"));
    files.add_ranges(&read("/etc/subgid"));
    files.names(n) || knows("passwd") || knows("group")
}

/// The uids and gids (real, effective, saved, filesystem) and supplementary groups of a
/// `/proc/PID/status` text.
pub fn process_ids(status: &str) -> Vec<u32> {
    status
        .lines()
        .filter_map(|l| {
            l.strip_prefix("Uid:")
                .or_else(|| l.strip_prefix("Gid:"))
                .or_else(|| l.strip_prefix("Groups:"))
        })
        .flat_map(|rest| rest.split_whitespace().filter_map(|n| n.parse().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_roster_range_parses() {
        assert_eq!(
            AgentUid::parse("1879048192").map(AgentUid::get),
            Some(FIRST)
        );
        assert_eq!(AgentUid::parse("2147483646").map(AgentUid::get), Some(LAST));
        for bad in [
            "",
            "0",
            "1000",
            "1879048191",
            "2147483647",
            "+1879048192",
            " 1879048192",
        ] {
            assert_eq!(AgentUid::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            AgentUid::new(FIRST).map(|u| u.user()),
            Some("1879048192:1879048192".into())
        );
    }

    #[test]
    fn the_search_skips_what_is_taken_and_wraps() {
        let at = |n| AgentUid::new(n).unwrap();
        assert_eq!(
            pick(at(AGENTS_LAST), 10, |u| u == at(AGENTS_LAST)),
            Some(at(FIRST)),
            "the baselines' uids are never given"
        );
        assert_eq!(
            pick(at(FIRST), 10, |u| u.get() < FIRST + 3),
            Some(at(FIRST + 3))
        );
        assert_eq!(pick(at(FIRST), 10, |_| true), None);
    }

    #[test]
    fn host_accounts_ranges_and_processes_are_read() {
        let mut h = HostIds::default();
        h.add_accounts(
            "root:x:0:0::/root:/bin/sh\nbad line\nu:x:1879048200:7::/:/bin/sh\n",
            2,
        );
        h.add_accounts(
            "root:x:0:0::/root:/bin/sh\nu:x:1879048200:1879048300::/:/bin/sh\n",
            3,
        );
        h.add_ranges("u:1879048400:10\nv:x:y\nw:5:0\n");
        h.running.extend(process_ids(
            "Name:\tx\nUid:\t1879048500\t1879048501\t1879048500\t1879048500\nGid:\t9\t9\t9\t9\n",
        ));
        for used in [
            0, 1879048200, 1879048300, 1879048400, 1879048409, 1879048501, 9,
        ] {
            assert!(h.uses(used), "{used}");
        }
        for free in [1, 1879048201, 1879048410, 1879048399, 5] {
            assert!(!h.uses(free), "{free}");
        }
        assert!(
            h.uses(1879048501) && !h.names(1879048501),
            "a process, not an account"
        );
    }

    #[test]
    fn starts_spread_over_the_range() {
        let ns = Name::parse("t").unwrap();
        let mut e = roster_core::id::CountingEntropy::new(1);
        let now = roster_core::time::Timestamp::from_millis(1_700_000_000_000);
        let a = AgentId::mint(now, &mut e);
        let b = AgentId::mint(now, &mut e);
        assert_eq!(start(&ns, a, 0), start(&ns, a, 0));
        assert_ne!(start(&ns, a, 0), start(&ns, b, 0));
        assert_ne!(start(&ns, a, 0), start(&ns, a, 1));
    }
}
