//! Each agent's own host uid, on a real engine: given once, never one the host or another agent
//! has, owning its home — a home made by an older roster (owned by 1000) included — and given
//! again to a home whose preparation was cut short.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};

use bollard::container::{Config, CreateContainerOptions};
use bollard::volume::CreateVolumeOptions;
use roster_core::event::AgentSpec;
use roster_core::name::ImageRef;
use roster_sandbox::plan::labels;
use roster_sandbox::uid::{self, HostIds, UID_LABEL};

use common::sh;

/// Creates volume `name` with `labels`, bypassing roster (what another runtime, an older
/// version or a crash left).
async fn make_volume(name: &str, labels: [(String, String); 2]) {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    docker
        .create_volume(CreateVolumeOptions {
            name: name.to_string(),
            driver: "local".to_string(),
            driver_opts: HashMap::new(),
            labels: HashMap::from(labels),
        })
        .await
        .unwrap();
}

/// A test's world whose engine looks into its volumes (a daemon run by root), or not.
async fn ctx_seeing_homes(sees: bool) -> common::Ctx {
    let mut c = common::ctx().await;
    if !sees {
        c.engine = c.engine.clone().blind_to_homes();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_gets_a_host_uid_no_one_else_has() {
    every_agent_gets_a_host_uid_no_one_else_has_as(false).await;
}

/// The same, as a daemon that cannot look into the engine's volumes prepares homes: always in a
/// preparation container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_gets_a_host_uid_no_one_else_has_out_of_sight() {
    every_agent_gets_a_host_uid_no_one_else_has_as(true).await;
}

async fn every_agent_gets_a_host_uid_no_one_else_has_as(blind: bool) {
    let c = ctx_seeing_homes(!blind).await;
    c.base().await;
    let e = &c.engine;
    let mut agents = Vec::new();
    for _ in 0..4 {
        agents.push(c.ready(&AgentSpec::base()).await);
    }
    let host = HostIds::read();
    let in_use = e.uids_in_use().await.unwrap();
    let mut seen = HashSet::new();
    for (plan, agent) in &agents {
        let uid = e.home_uid(*agent).await.unwrap().expect("a uid recorded");
        assert!((uid::FIRST..=uid::LAST).contains(&uid.get()));
        assert!(seen.insert(uid), "{uid} given twice");
        assert_eq!(
            in_use.get(&uid),
            Some(&1),
            "{uid} on one label of the engine only"
        );
        assert!(!host.names(uid.get()), "{uid} is a host account's");
        assert_eq!(plan.config.user.as_deref(), Some(uid.user().as_str()));
        // Asking again gives the same, and prepares nothing.
        assert_eq!(c.home(*agent).await.unwrap().uid, uid);
        e.create(plan).await.unwrap();
        e.start(*agent).await.unwrap();
        let out = e
            .exec(
                *agent,
                sh("id -u; id -g; stat -c '%u:%g %a' /home/agent"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            out.stdout_text(),
            format!("{uid}\n{uid}\n{uid}:{uid} 755\n")
        );
    }
    // Its processes on the host run as its uid: no host account's, and no other agent's.
    let (_, first) = &agents[0];
    let uid = e.home_uid(*first).await.unwrap().unwrap();
    let container = e.inspect(*first).await.unwrap().unwrap().id;
    let procs = uid::processes_with(uid.get());
    assert!(!procs.is_empty(), "no host process runs as {uid}");
    for (pid, cgroup) in procs {
        assert!(
            cgroup.contains(&container),
            "pid {pid} with {uid} outside its container: {cgroup}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_another_label_holds_is_never_given() {
    let c = common::ctx().await;
    c.base().await;
    let agent = common::agent_id();
    // Where the search for this agent starts, held by a volume of another namespace.
    let wanted = uid::start(&c.ns, agent, 0);
    let other = common::ctx().await;
    let holder = format!("roster-{}-holder", other.ns);
    make_volume(
        &holder,
        [
            (labels::NS.to_string(), other.ns.to_string()),
            (UID_LABEL.to_string(), wanted.to_string()),
        ],
    )
    .await;
    let home = c.home(agent).await.unwrap();
    assert_ne!(home.uid, wanted, "the label on {holder} holds {wanted}");
    assert_eq!(c.engine.uids_in_use().await.unwrap().get(&wanted), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_an_older_roster_made_is_given_to_the_agents_uid() {
    a_home_an_older_roster_made_is_given_to_the_agents_uid_as(false).await;
}

/// The same, as a daemon that cannot look into the engine's volumes prepares homes: always in a
/// preparation container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_an_older_roster_made_is_given_to_the_agents_uid_out_of_sight() {
    a_home_an_older_roster_made_is_given_to_the_agents_uid_as(true).await;
}

async fn a_home_an_older_roster_made_is_given_to_the_agents_uid_as(blind: bool) {
    let c = ctx_seeing_homes(!blind).await;
    c.base().await;
    let e = &c.engine;
    let agent = common::agent_id();
    let volume = e.volume_name(agent);
    // What an older roster left: a home with no uid volume, filled by uid 1000, with a
    // directory only 1000 may enter.
    make_volume(
        &volume,
        [
            (labels::NS.to_string(), c.ns.to_string()),
            (labels::AGENT.to_string(), agent.to_string()),
        ],
    )
    .await;
    common::as_user(c.ns.as_str(), "0:0", &volume, "chown 1000:1000 /home/agent").await;
    common::as_user(
        c.ns.as_str(),
        "1000:1000",
        &volume,
        "mkdir -m 700 /home/agent/private && echo old > /home/agent/private/note && \
         ln -s /etc/passwd /home/agent/link",
    )
    .await;
    assert_eq!(e.home_uid(agent).await.unwrap(), None);

    let home = c.home(agent).await.unwrap();
    let uid = home.uid;
    let owners = common::as_user(
        c.ns.as_str(),
        "0:0",
        &volume,
        "stat -c '%n %u' /home/agent /home/agent/private /home/agent/private/note \
         /home/agent/link",
    )
    .await;
    // A link followed would have failed the walk (its target is on the preparation
    // container's read-only root): the link itself is given.
    assert_eq!(
        owners,
        format!(
            "/home/agent {uid}\n/home/agent/private {uid}\n/home/agent/private/note {uid}\n\
             /home/agent/link {uid}\n"
        ),
        "everything in the home is the agent's, links included"
    );
    let mut spec = AgentSpec::base();
    spec.resources.pids = 64;
    let (plan, _) = {
        // The plan of this very agent, as its own uid.
        let paths = roster_sandbox::plan::HostPaths {
            gateway_dir: c.dir.path().join("gw"),
            agent_binary: common::busybox(),
        };
        std::fs::create_dir_all(&paths.gateway_dir).unwrap();
        (
            roster_sandbox::plan::plan(&c.ns, &c.team, agent, &spec, &paths, uid).unwrap(),
            agent,
        )
    };
    e.create(&plan).await.unwrap();
    e.start(agent).await.unwrap();
    let out = e
        .exec(
            agent,
            sh("cat private/note && echo new > private/more && echo ok"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "old\nok\n", "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preparation_cut_short_is_done_again() {
    a_preparation_cut_short_is_done_again_as(false).await;
}

/// The same, as a daemon that cannot look into the engine's volumes prepares homes: always in a
/// preparation container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preparation_cut_short_is_done_again_out_of_sight() {
    a_preparation_cut_short_is_done_again_as(true).await;
}

async fn a_preparation_cut_short_is_done_again_as(blind: bool) {
    let c = ctx_seeing_homes(!blind).await;
    c.base().await;
    let e = &c.engine;
    let agent = common::agent_id();
    let home = c.home(agent).await.unwrap();
    if !blind {
        // In sight, the owner is the proof: a home whose uid volume was made but which was not
        // given yet (a runtime killed in between) is given at the next look.
        common::as_user(c.ns.as_str(), "0:0", &home.volume, "chown 0:0 /home/agent").await;
        assert_eq!(c.home(agent).await.unwrap(), home);
        let owner =
            common::as_user(c.ns.as_str(), "0:0", &home.volume, "stat -c %u /home/agent").await;
        assert_eq!(owner, format!("{}\n", home.uid));
    }
    // A runtime killed while preparing: its preparation container is left, the home not
    // given yet.
    common::as_user(c.ns.as_str(), "0:0", &home.volume, "chown 0:0 /home/agent").await;
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    docker
        .create_container(
            Some(CreateContainerOptions {
                name: format!("{}-prep", home.volume),
                platform: None,
            }),
            Config {
                image: Some(ImageRef::base().to_string()),
                labels: Some(HashMap::from([
                    (labels::NS.to_string(), c.ns.to_string()),
                    (roster_sandbox::PREP_LABEL.to_string(), home.volume.clone()),
                ])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        e.list().await.unwrap().is_empty(),
        "a preparation is no agent's container"
    );
    let again = c.home(agent).await.unwrap();
    assert_eq!(again, home, "the same uid");
    let owner = common::as_user(c.ns.as_str(), "0:0", &home.volume, "stat -c %u /home/agent").await;
    assert_eq!(owner, format!("{}\n", home.uid));
    let ns = format!("{}={}", labels::NS, c.ns);
    assert_eq!(
        common::labelled(&[roster_sandbox::PREP_LABEL, &ns]).await,
        Vec::<String>::new()
    );
}

/// A uid another uid volume also carries (two runtimes that chose it at once, one killed before
/// it looked again) is given up by the agent whose volume sorts last, and its home follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_found_twice_is_given_up_by_one_of_them() {
    let c = common::ctx().await;
    c.base().await;
    let e = &c.engine;
    let agent = common::agent_id();
    let home = c.home(agent).await.unwrap();
    common::as_user(
        c.ns.as_str(),
        &home.uid.user(),
        &home.volume,
        "echo kept > /home/agent/note",
    )
    .await;
    let clash = format!("roster-0-{}-clash", c.ns);
    make_volume(
        &clash,
        [
            (labels::NS.to_string(), c.ns.to_string()),
            (UID_LABEL.to_string(), home.uid.to_string()),
        ],
    )
    .await;
    let again = c.home(agent).await.unwrap();
    assert_ne!(
        again.uid, home.uid,
        "{clash} sorts first and keeps {}",
        home.uid
    );
    assert_eq!(e.home_uid(agent).await.unwrap(), Some(again.uid));
    let seen = common::as_user(
        c.ns.as_str(),
        "0:0",
        &home.volume,
        "stat -c %u /home/agent/note",
    )
    .await;
    assert_eq!(seen, format!("{}\n", again.uid), "its files follow it");
}

/// Removes a host account when dropped, even if the test fails.
struct Account(String);

impl Drop for Account {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel").arg(&self.0).status();
    }
}

/// An account the host makes later with an agent's uid takes it from the agent at its next
/// start: the agent gets another, and its home follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_the_host_names_later_is_given_up() {
    let c = common::ctx().await;
    c.base().await;
    let agent = common::agent_id();
    let home = c.home(agent).await.unwrap();
    let name = format!("rt{}", common::hex(4));
    let made = std::process::Command::new("useradd")
        .args(["--no-create-home", "--uid", &home.uid.to_string(), &name])
        .status()
        .expect("useradd (passwd) makes a host account");
    assert!(made.success(), "useradd failed");
    let _account = Account(name);
    assert!(uid::named_by_host(home.uid.get()));
    let again = c.home(agent).await.unwrap();
    assert_ne!(again.uid, home.uid);
    let owner = common::as_user(c.ns.as_str(), "0:0", &home.volume, "stat -c %u /home/agent").await;
    assert_eq!(owner, format!("{}\n", again.uid));
}
