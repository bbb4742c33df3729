//! Home disks on a real engine and real loop devices: a home bounded in bytes and files, kept
//! across containers and across its loop device's loss, never made again empty in silence,
//! refused whole when it does not fit, and gone without a trace with its agent. A home made
//! before disks stays as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::process::Command;

use roster_core::event::AgentSpec;
use roster_sandbox::disk::Disks;
use roster_sandbox::SandboxError;

/// The loop devices `image` is attached to.
fn loops_of(image: &std::path::Path) -> Vec<String> {
    let out = Command::new("losetup")
        .args(["--noheadings", "--output", "NAME", "--associated"])
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The engine's options of `volume`.
async fn volume_options(volume: &str) -> Option<HashMap<String, String>> {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    docker.inspect_volume(volume).await.ok().map(|v| v.options)
}

/// A test's world whose engine gives homes disks (failing loudly where the host cannot), with
/// the base image.
async fn disk_ctx() -> common::Ctx {
    Disks::usable().expect("home disks need root, loop devices and e2fsprogs: run scripts/setup");
    let c = common::ctx().await.with_disks();
    c.base().await;
    c
}

/// Detaches loop device `dev`, as a reboot would.
fn detach(dev: &str) {
    let status = Command::new("losetup")
        .args(["--detach", dev])
        .status()
        .unwrap();
    assert!(status.success(), "detaching {dev}");
}

fn disks(c: &common::Ctx) -> Disks {
    c.engine.disks().expect("an engine with disks").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_disk_bounds_bytes_and_files_and_outlives_its_loop_device() {
    let c = disk_ctx().await;
    let e = &c.engine;
    let (plan, agent) = c.ready(&AgentSpec::base()).await;
    let uid = e.home_uid(agent).await.unwrap().unwrap();
    let volume = e.volume_name(agent);
    let image = disks(&c).image(&volume);
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), u64::from(common::DISK_MIB) << 20);
    assert!(
        meta.blocks() * 512 >= u64::from(common::DISK_MIB) << 20,
        "allocated whole: {} of {} bytes",
        meta.blocks() * 512,
        meta.len()
    );
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(disks(&c).dir()).unwrap().mode() & 0o777,
        0o700
    );
    let options = volume_options(&volume).await.unwrap();
    assert!(Disks::is_disk(&options), "{options:?}");

    e.create(&plan).await.unwrap();
    e.start(agent).await.unwrap();
    let mib = common::DISK_MIB;
    let script = format!(
        "cd /home/agent; echo owner=$(stat -c %u .); echo entries=$(ls -A | wc -l)\n\
         dd if=/dev/zero of=fill bs=1M count={} 2>/dev/null; echo bytes=$(wc -c < fill); rm fill\n\
         mkdir many; cd many; seq 1 {} | xargs touch 2>/dev/null; echo files=$(ls | wc -l)\n\
         cd ..; rm -rf many; echo kept > keep; cat keep\n",
        mib * 4,
        mib * 64 * 4
    );
    let out = e.exec(agent, common::sh(&script), None).await.unwrap();
    let text = out.stdout_text();
    let field = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k} in {text:?}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(field("owner"), u64::from(uid.get()), "{text}");
    assert_eq!(field("entries"), 0, "an empty home, no lost+found: {text}");
    let bytes = field("bytes");
    assert!(
        bytes > 32 << 20 && bytes <= u64::from(mib) << 20,
        "{bytes} bytes written in a {mib} MiB home"
    );
    let files = field("files");
    assert!(
        files > 1000 && files < u64::from(mib) * 64 + 64,
        "{files} files made with about {} inodes",
        mib * 64
    );
    assert!(text.ends_with("kept\n"), "{text}");
    e.remove(agent).await.unwrap();

    // A reboot loses loop devices, and the link may name another's by then: a decoy home
    // attached where this one was.
    let before = loops_of(&image);
    assert_eq!(before.len(), 1, "{before:?}");
    detach(&before[0]);
    let decoy = c.dir.path().join("roster-decoy-home.ext4");
    std::fs::write(&decoy, vec![0u8; 1 << 20]).unwrap();
    let decoy_dev = Command::new("losetup")
        .args(["--find", "--show"])
        .arg(&decoy)
        .output()
        .unwrap();
    let decoy_dev = String::from_utf8(decoy_dev.stdout)
        .unwrap()
        .trim()
        .to_string();
    let link = disks(&c).dir().join(format!("{volume}.dev"));
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&decoy_dev, &link).unwrap();

    let again = e.home(&c.team, agent, &HashMap::new(), mib).await.unwrap();
    assert_eq!(again.uid, uid);
    let now = loops_of(&image);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        std::fs::read_link(&link).unwrap().to_string_lossy(),
        now[0],
        "the link names the home's own device again"
    );
    e.create(&plan).await.unwrap();
    e.start(agent).await.unwrap();
    let out = e
        .exec(agent, common::sh("cat /home/agent/keep"), None)
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "kept\n", "{out:?}");
    e.remove(agent).await.unwrap();
    let _ = Command::new("losetup")
        .args(["--detach", &decoy_dev])
        .status();

    // Gone with its agent: volume, image, link and loop device.
    e.remove_home(agent).await.unwrap();
    assert!(volume_options(&volume).await.is_none());
    assert!(!image.exists() && !link.exists());
    assert_eq!(
        std::fs::read_dir("/sys/block")
            .unwrap()
            .flatten()
            .filter_map(|d| std::fs::read_to_string(d.path().join("loop/backing_file")).ok())
            .filter(|b| b.contains(&volume))
            .count(),
        0,
        "no loop device left on the home's image"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_whose_disk_is_gone_is_refused_not_made_again_empty() {
    let c = disk_ctx().await;
    let e = &c.engine;
    let (_, agent) = c.ready(&AgentSpec::base()).await;
    let volume = e.volume_name(agent);
    let image = disks(&c).image(&volume);
    for dev in loops_of(&image) {
        detach(&dev);
    }
    std::fs::remove_file(&image).unwrap();
    let err = c
        .home(agent)
        .await
        .expect_err("a home whose files are gone");
    assert!(
        matches!(err, SandboxError::HomeDisk { .. }) && err.to_string().contains("is gone"),
        "{err}"
    );
    assert!(!image.exists(), "not made again");
    assert!(
        volume_options(&volume).await.is_some(),
        "the volume is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_that_does_not_fit_is_refused_and_changes_nothing() {
    let c = disk_ctx().await;
    let e = &c.engine;
    let agent = common::agent_id();
    let err = e
        .home(&c.team, agent, &HashMap::new(), 1 << 20)
        .await
        .expect_err("a 1 TiB home on this disk");
    assert!(err.to_string().contains("does not fit"), "{err}");
    let ns = format!("{}={}", roster_sandbox::plan::labels::NS, c.ns);
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let left = docker
        .list_volumes(Some(bollard::volume::ListVolumesOptions {
            filters: HashMap::from([("label".to_string(), vec![ns])]),
        }))
        .await
        .unwrap();
    assert_eq!(left.volumes.unwrap_or_default().len(), 0, "no volume made");
    assert!(!disks(&c).image(&e.volume_name(agent)).exists());
    assert_eq!(e.home_uid(agent).await.unwrap(), None, "no uid taken");
}

/// A plain home as a roster before disks left it, with files of every kind the agent can make;
/// the context now with disks, the agent, and the home.
async fn home_before_disks(
    fill: &str,
) -> (common::Ctx, roster_core::id::AgentId, roster_sandbox::Home) {
    Disks::usable().expect("home disks need root, loop devices and e2fsprogs: run scripts/setup");
    let c = common::ctx().await;
    c.base().await;
    let agent = common::agent_id();
    let old = c.home(agent).await.unwrap();
    let made = common::as_user(c.ns.as_str(), &old.uid.user(), &old.volume, fill).await;
    assert!(made.ends_with("made\n"), "{made}");
    (c.with_disks(), agent, old)
}

/// What the agent's files look like, from inside.
const LOOK: &str = "cd /home/agent && find . | sort | while read f; do \
    echo \"$f $(stat -c '%u %a %F' \"$f\")\"; done; cat notes; readlink link; cat closed/inside";

const FILL: &str = "cd /home/agent && echo mine > notes && ln -s notes link && mkfifo pipe && \
    mkdir closed && echo deep > closed/inside && chmod 500 closed && echo secret > private && \
    chmod 000 private && touch -d '2001-02-03 04:05:06' notes && echo made";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_made_before_disks_moves_into_one_whole() {
    let (c, agent, old) = home_before_disks(FILL).await;
    let before = common::as_user(c.ns.as_str(), &old.uid.user(), &old.volume, LOOK).await;
    let mtime = "stat -c %Y /home/agent/notes";
    let old_mtime = common::as_user(c.ns.as_str(), "0:0", &old.volume, mtime).await;
    // The agent's last container is left, stopped, naming the plain volume (as a daemon leaves
    // it until its next start): it must not keep the home from moving.
    let (plan, _) = c.plan_as(agent, &AgentSpec::base(), old.uid);
    c.engine.create(&plan).await.unwrap();
    let now = c.home(agent).await.unwrap();
    assert_eq!(now, old, "the same volume, the same uid");
    assert!(
        c.engine.inspect(agent).await.unwrap().is_none(),
        "the stopped container went"
    );
    let options = volume_options(&old.volume).await.unwrap();
    assert!(Disks::is_disk(&options), "moved into a disk: {options:?}");
    let after = common::as_user(c.ns.as_str(), &old.uid.user(), &old.volume, LOOK).await;
    assert_eq!(after, before, "every file, owner, mode and kind kept");
    assert!(
        before.contains("./pipe") && before.contains("mine\nnotes\ndeep"),
        "{before}"
    );
    let new_mtime = common::as_user(c.ns.as_str(), "0:0", &old.volume, mtime).await;
    assert_eq!(new_mtime, old_mtime, "times kept");
    let df = common::as_user(
        c.ns.as_str(),
        "0:0",
        &old.volume,
        "df -k /home/agent | tail -1",
    )
    .await;
    let size_kib: u64 = df.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(size_kib <= u64::from(common::DISK_MIB) * 1024, "{df}");
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    for left in [format!("{}-disk", old.volume)] {
        assert!(docker.inspect_volume(&left).await.is_err(), "{left} left");
    }
    assert!(docker
        .inspect_container(&format!("{}-move", old.volume), None)
        .await
        .is_err());
    // And it stays so: the next start finds a disk.
    let again = c.home(agent).await.unwrap();
    assert_eq!(again, old);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_made_before_disks_that_does_not_fit_stays_as_it_was() {
    let fill = format!(
        "dd if=/dev/zero of=/home/agent/big bs=1M count={} 2>/dev/null && echo made",
        common::DISK_MIB + 8
    );
    let (c, agent, old) = home_before_disks(&fill).await;
    for _ in 0..2 {
        let now = c.home(agent).await.unwrap();
        assert_eq!(now, old, "the agent keeps its home");
        let options = volume_options(&old.volume).await.unwrap();
        assert!(!Disks::is_disk(&options), "{options:?}");
        assert!(!disks(&c).image(&old.volume).exists(), "no disk left");
        let size =
            common::as_user(c.ns.as_str(), "0:0", &old.volume, "wc -c < /home/agent/big").await;
        assert_eq!(
            size.trim(),
            ((u64::from(common::DISK_MIB) + 8) << 20).to_string()
        );
    }
    assert!(
        disks(&c)
            .dir()
            .join(format!("{}.unfit", old.volume))
            .exists(),
        "not tried again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_cut_short_is_begun_again_and_one_copied_is_finished() {
    let (c, agent, old) = home_before_disks(FILL).await;
    let before = common::as_user(c.ns.as_str(), &old.uid.user(), &old.volume, LOOK).await;
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let ns_label = (
        roster_sandbox::plan::labels::NS.to_string(),
        c.ns.to_string(),
    );
    // Cut short: a half-made disk and its volume left, no mark.
    let temp = format!("{}-disk", old.volume);
    docker
        .create_volume(bollard::volume::CreateVolumeOptions {
            name: temp.clone(),
            driver: "local".to_string(),
            driver_opts: HashMap::new(),
            labels: HashMap::from([ns_label.clone()]),
        })
        .await
        .unwrap();
    std::fs::create_dir_all(disks(&c).dir()).unwrap();
    std::fs::write(disks(&c).image(&old.volume), b"half").unwrap();
    let now = c.home(agent).await.unwrap();
    assert_eq!(now, old);
    assert!(Disks::is_disk(&volume_options(&old.volume).await.unwrap()));
    assert_eq!(
        common::as_user(c.ns.as_str(), &old.uid.user(), &old.volume, LOOK).await,
        before
    );

    // Copied, then cut short before the disk took the home's name: finished, not copied again.
    let (c2, agent2, old2) = home_before_disks(FILL).await;
    let d2 = disks(&c2);
    std::fs::create_dir_all(d2.dir()).unwrap();
    let d = d2.clone();
    let v = old2.volume.clone();
    let uid = old2.uid;
    tokio::task::spawn_blocking(move || {
        d.make(&v, common::DISK_MIB, uid).unwrap();
        d.attach(&v).unwrap();
    })
    .await
    .unwrap();
    let temp2 = format!("{}-disk", old2.volume);
    docker
        .create_volume(bollard::volume::CreateVolumeOptions {
            name: temp2.clone(),
            driver: "local".to_string(),
            driver_opts: d2.volume_options(&old2.volume),
            labels: HashMap::from([(
                roster_sandbox::plan::labels::NS.to_string(),
                c2.ns.to_string(),
            )]),
        })
        .await
        .unwrap();
    let copied = common::as_user(
        c2.ns.as_str(),
        "0:0",
        &temp2,
        "echo only-in-the-copy > /home/agent/copied && echo ok",
    )
    .await;
    assert_eq!(copied, "ok\n");
    std::fs::write(d2.dir().join(format!("{}.moved", old2.volume)), b"").unwrap();
    c2.home(agent2).await.unwrap();
    assert!(Disks::is_disk(&volume_options(&old2.volume).await.unwrap()));
    assert_eq!(
        common::as_user(c2.ns.as_str(), "0:0", &old2.volume, "ls /home/agent").await,
        "copied\n",
        "the copy took the home's name, and was not made again"
    );
    assert!(docker.inspect_volume(&temp2).await.is_err());
    assert!(!d2.dir().join(format!("{}.moved", old2.volume)).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_whose_volume_is_lost_or_points_elsewhere_is_kept_and_pointed_back() {
    let c = disk_ctx().await;
    let e = &c.engine;
    let (_, agent) = c.ready(&AgentSpec::base()).await;
    let home = c.home(agent).await.unwrap();
    let wrote = common::as_user(
        c.ns.as_str(),
        &home.uid.user(),
        &home.volume,
        "echo kept > /home/agent/notes && echo ok",
    )
    .await;
    assert_eq!(wrote, "ok\n");
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    let ours = disks(&c).volume_options(&home.volume);

    // Its volume and its uid volume pruned: the disk is the home, never made again empty.
    docker.remove_volume(&home.volume, None).await.unwrap();
    docker
        .remove_volume(&e.uid_volume_name(agent), None)
        .await
        .unwrap();
    let again = c.home(agent).await.unwrap();
    let read = common::as_user(
        c.ns.as_str(),
        &again.uid.user(),
        &again.volume,
        "cat /home/agent/notes; stat -c %u /home/agent/notes",
    )
    .await;
    assert_eq!(
        read,
        format!("kept\n{}\n", again.uid),
        "the same files, given to its uid"
    );

    // Its volume made again naming another device (its homes moved, say): pointed back.
    docker.remove_volume(&home.volume, None).await.unwrap();
    let mut elsewhere = ours.clone();
    elsewhere.insert("device".into(), "/elsewhere/roster-x-home.dev".into());
    docker
        .create_volume(bollard::volume::CreateVolumeOptions {
            name: home.volume.clone(),
            driver: "local".to_string(),
            driver_opts: elsewhere,
            labels: HashMap::from([(
                roster_sandbox::plan::labels::NS.to_string(),
                c.ns.to_string(),
            )]),
        })
        .await
        .unwrap();
    c.home(agent).await.unwrap();
    assert_eq!(
        volume_options(&home.volume).await.unwrap().get("device"),
        ours.get("device")
    );
    let read = common::as_user(
        c.ns.as_str(),
        &again.uid.user(),
        &home.volume,
        "cat /home/agent/notes",
    )
    .await;
    assert_eq!(read, "kept\n");
}
