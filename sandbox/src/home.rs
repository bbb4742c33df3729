//! Agents' home volumes: their persistent memory, owned by the agent's own host uid.
//!
//! A home is a named volume (`roster-NS-AGENTID-home`) labelled like the agent's container. It
//! outlives the container — removal, recreation, daemon and engine restarts — and goes only with
//! [`Engine::remove_home`] (`roster purge`), together with the agent's uid volume
//! (`roster-NS-AGENTID-uid`, empty, whose `roster.uid` label records the agent's host uid: see
//! [`crate::uid`]).
//!
//! A new volume's root belongs to root with mode 0755, and an image's own `/home/agent` belongs
//! to whatever uid the image says, never to the agent's. So the engine's copy of the image's
//! directory into a new volume is always off, and the runtime gives the home to the agent's uid
//! itself:
//! - where it sees the volume's directory on the host (a daemon run by root beside its engine),
//!   a new, empty home is given with one `lchown`; the home's owner is the proof that it was
//!   given, so a home whose owner is not the agent's uid is given again at the next look;
//! - a home with files in it (one made before agents had uids of their own, owned by 1000), or
//!   any home out of sight, is given by a short-lived container of the base image — the
//!   runtime's, not the agent's — running as root with only `CAP_CHOWN` and
//!   `CAP_DAC_READ_SEARCH` (and so `open_by_handle_at` under the default seccomp profile: the
//!   container runs busybox's `chown` on fixed arguments and nothing of the agent's), no
//!   network, a read-only root, a small log and only the volume mounted:
//!   `chown -R -h UID:UID /home/agent`, never the runtime walking files an agent made. The uid
//!   volume is removed before and made again after, once the walk ended well; meanwhile the
//!   preparation container holds the uid. So out of sight, a uid volume means "given", and at
//!   any interruption the next [`Engine::home`] finds either no uid volume or the container
//!   left over, and gives the home again — waiting for a preparation still running rather than
//!   starting it over.
//!
//! A recorded uid is looked at again at each call: one the host names since (an account made
//! later, from its files or a directory service), or that another uid volume sorting first also
//! carries, is given up, and the home goes to a new uid like a home of an older roster.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bollard::container::{
    Config, CreateContainerOptions, ListContainersOptions, WaitContainerOptions,
};
use bollard::models::HostConfig;
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions};
use futures_util::StreamExt;
use roster_core::id::{AgentId, TeamId};
use roster_core::name::ImageRef;

use crate::disk::Disks;
use crate::engine::Engine;
use crate::error::{is_not_found, status, SandboxError};
use crate::plan::{agent_labels, volume_mount, HOME};
use crate::uid::{self, AgentUid, HostIds, UID_LABEL};

/// How long a call waits for the preparation of a home (a home moved to a new uid is walked
/// whole); a longer one goes on, and the next call waits for it again.
const PREP_TIMEOUT: Duration = Duration::from_secs(120);

/// How many uids a search looks at before it gives up (each taken one is skipped).
const UID_SEARCH: u32 = 1 << 16;

/// How many times a uid is chosen again after another runtime chose the same one at once.
const UID_TRIES: u64 = 8;

/// The label on a home-preparation container, naming the volume it prepares.
pub const PREP_LABEL: &str = "roster.prep";

/// An agent's home, ready for its container: the volume, and the host uid that owns it (which
/// the container must run as).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// The volume's name.
    pub volume: String,
    /// The agent's host uid (and gid).
    pub uid: AgentUid,
}

/// What holds a uid while it is being given: the first thing made with its label.
#[derive(Debug, Clone, Copy)]
enum Holder {
    /// The home's preparation container (which then gives it the home).
    Prep,
    /// The agent's uid volume (the runtime gives the home itself).
    UidVolume,
}

/// A preparation container found left over.
#[derive(Debug)]
struct PrepLeft {
    running: bool,
    /// It ran to its end, and `chown` exited 0.
    succeeded: bool,
    /// The uid it gives the home, from its label.
    uid: Option<AgentUid>,
}

/// A home's directory as this process sees it on the host: only where the engine is local and
/// this process may look into its volumes (root).
#[derive(Debug)]
struct HostDir {
    path: std::path::PathBuf,
    owner: u32,
    empty: bool,
}

impl HostDir {
    /// The directory at the engine's `mountpoint`, if this process sees a real directory there
    /// (not a link).
    fn look(mountpoint: &str) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let path = std::path::PathBuf::from(mountpoint);
        if !path.is_absolute() {
            return None;
        }
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.file_type().is_dir() {
            return None;
        }
        let empty = std::fs::read_dir(&path).ok()?.next().is_none();
        Some(Self {
            path,
            owner: meta.uid(),
            empty,
        })
    }

    /// Gives the (empty) directory to `uid`, group included, without following a link.
    fn give(&self, uid: AgentUid) -> std::io::Result<()> {
        std::os::unix::fs::lchown(&self.path, Some(uid.get()), Some(uid.get()))
    }
}

impl Engine {
    /// Makes sure `agent` (of `team`) has a home owned by a host uid of its own, and returns
    /// both: at once when they exist and were prepared, else after creating what is missing,
    /// choosing the uid, and preparing the home. `extra` labels are added to what this creates
    /// (a throwaway run labels its volumes to sweep them).
    ///
    /// Where the engine has [disks](Engine::with_disks), a new home is a disk of `disk_mib`
    /// MiB (an existing one keeps its size), and a home made before disks moves into one
    /// (files, owners, modes and times kept) — or, if its files do not fit, stays a plain
    /// volume without a quota, which each call says.
    pub async fn home(
        &self,
        team: &TeamId,
        agent: AgentId,
        extra: &HashMap<String, String>,
        disk_mib: u32,
    ) -> Result<Home, SandboxError> {
        let Some(disks) = self.disks.clone() else {
            return self.home_here(team, agent, extra, disk_mib).await;
        };
        let mut labels = agent_labels(self.ns(), team, agent);
        labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let volume = self.volume_name(agent);
        let plain = |found: Option<(String, HashMap<String, String>)>| {
            found.is_some_and(|(_, o)| !Disks::is_disk(&o))
        };
        let moving = disks.moved(&volume).exists() || plain(self.inspect_home(&volume).await?);
        // The agent's last container still names its plain volume, which the move replaces:
        // removed first (its home stays), unless it runs.
        if moving && !self.clear_stopped(agent).await? {
            tracing::warn!(
                "{agent}'s container runs: its home moves into a disk at its next start"
            );
            return self.home_here(team, agent, extra, disk_mib).await;
        }
        self.finish_move(&disks, &volume).await?;
        let home = self.home_here(team, agent, extra, disk_mib).await?;
        if plain(self.inspect_home(&volume).await?) {
            self.move_to_disk(&disks, &home, disk_mib, &labels).await?;
        }
        Ok(home)
    }

    /// Removes `agent`'s container unless it runs; whether it is gone.
    async fn clear_stopped(&self, agent: AgentId) -> Result<bool, SandboxError> {
        match self.inspect(agent).await? {
            Some(st) if st.running => Ok(false),
            Some(_) => self.remove(agent).await.map(|()| true),
            None => Ok(true),
        }
    }

    /// [`Engine::home`] but for a home's move into a disk of its own.
    async fn home_here(
        &self,
        team: &TeamId,
        agent: AgentId,
        extra: &HashMap<String, String>,
        disk_mib: u32,
    ) -> Result<Home, SandboxError> {
        let volume = self.volume_name(agent);
        let prep = format!("{volume}-prep");
        let mut recorded = self.home_uid(agent).await?;
        if let Some(uid) = recorded {
            if !self.keeps(agent, uid).await? {
                // Given up: the home goes to a new uid, as a home of an older roster does.
                self.remove_volume(&self.uid_volume_name(agent)).await?;
                recorded = None;
            }
        }
        let mut leftover = self.prep_left(&prep).await?;
        let mut found = self.inspect_home(&volume).await?;
        let mut labels = agent_labels(self.ns(), team, agent);
        labels.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(disks) = &self.disks {
            let ours = disks.volume_options(&volume);
            match &found {
                // A disk whose volume is gone (pruned, the engine's data reset): an image is
                // renamed into place only once whole, so it is this home, never made again
                // empty. Its volume is made again; a new uid, if it has one, is given below.
                None if disks.exists(&volume) => {
                    self.create_home_volume(&volume, ours, &labels).await?;
                    found = self.inspect_home(&volume).await?;
                }
                // A disk volume naming another device than this runtime's link (its homes
                // moved, a data directory copied and taken over): after a reboot that path could
                // name another agent's loop device. The volume is only a pointer: made again.
                Some((_, o)) if Disks::is_disk(o) && o.get("device") != ours.get("device") => {
                    if !self.clear_stopped(agent).await? {
                        return Err(SandboxError::HomeDisk {
                            volume,
                            why: "its volume names another device, and its container runs".into(),
                        });
                    }
                    self.remove_volume(&volume).await?;
                    self.create_home_volume(&volume, ours, &labels).await?;
                    found = self.inspect_home(&volume).await?;
                }
                _ => {}
            }
        }
        let mountpoint = found.as_ref().map(|(mp, _)| mp.clone());
        let on_disk = found.as_ref().is_some_and(|(_, o)| Disks::is_disk(o));
        match (&self.disks, &found) {
            (Some(disks), None) => {
                // A new home: a disk of its own, made for its uid, so nothing walks it. The
                // volume comes last: without it, no container used what came before.
                if leftover.take().is_some() {
                    self.remove_named(&prep).await?;
                }
                let (d, v) = (disks.clone(), volume.clone());
                blocking(&volume, move || d.room_for(&v, disk_mib)).await?;
                let uid = match recorded {
                    Some(uid) => uid,
                    None => {
                        self.choose_uid(agent, &volume, &prep, &labels, Holder::UidVolume, None)
                            .await?
                    }
                };
                let (d, v) = (disks.clone(), volume.clone());
                blocking(&volume, move || {
                    d.make(&v, disk_mib, uid)?;
                    d.attach(&v)
                })
                .await?;
                self.create_home_volume(&volume, disks.volume_options(&volume), &labels)
                    .await?;
                return Ok(Home { volume, uid });
            }
            (Some(disks), Some(_)) if on_disk => {
                let (d, v) = (disks.clone(), volume.clone());
                blocking(&volume, move || d.attach(&v)).await?;
                if let (Some(uid), None) = (recorded, &leftover) {
                    return Ok(Home { volume, uid });
                }
            }
            (None, Some(_)) if on_disk => {
                return Err(SandboxError::HomeDisk {
                    volume,
                    why: "it is a disk of its own, and this daemon attaches no disks (one run \
                          by root beside its engine does)"
                        .into(),
                });
            }
            // A home made before disks: given here, then moved ([`Engine::move_to_disk`]).
            (Some(_), Some(_)) | (None, _) => {}
        }
        // A disk's directory on the host is where the engine mounts it, not the home.
        let look = |mp: &str| {
            (self.sees_homes && !on_disk)
                .then(|| HostDir::look(mp))
                .flatten()
        };
        let seen = mountpoint.as_deref().and_then(look);
        match (recorded, &seen, &leftover) {
            // In sight (a daemon run by root beside its engine), the home's owner is the proof
            // that it was given; out of sight, its uid volume, made only once it was.
            (Some(uid), Some(dir), None) if dir.owner == uid.get() => {
                return Ok(Home { volume, uid })
            }
            (Some(uid), None, None) if mountpoint.is_some() => return Ok(Home { volume, uid }),
            _ => {}
        }
        if let Some(left) = leftover.take() {
            // A preparation of an earlier call, cut short or timed out: one still running is
            // waited for (a big home takes long to walk; starting over would never end), and
            // one that ended well is taken as done.
            let mut done = left.succeeded;
            if left.running {
                done = match self.wait_prep(&volume, &prep).await {
                    Ok(()) => true,
                    Err(e @ SandboxError::Timeout { .. }) => return Err(e),
                    Err(_) => false,
                };
            }
            match (done, left.uid, recorded) {
                (true, Some(uid), None) if self.uid_holders(uid).await? == 1 => {
                    self.create_uid_volume(agent, uid, &labels).await?;
                    self.remove_named(&prep).await?;
                    return Ok(Home { volume, uid });
                }
                (true, Some(uid), Some(kept)) if uid == kept => {
                    self.remove_named(&prep).await?;
                    return Ok(Home { volume, uid });
                }
                _ => self.remove_named(&prep).await?,
            }
        }
        let seen = match &mountpoint {
            Some(_) => seen,
            None => {
                let made = self
                    .create_home_volume(&volume, HashMap::new(), &labels)
                    .await?;
                look(&made)
            }
        };
        if let Some(dir) = seen.as_ref().filter(|d| d.empty) {
            // A new, empty home in sight: its uid volume holds the uid while it is given, with
            // one system call rather than a container.
            let uid = match recorded {
                Some(uid) => uid,
                None => {
                    self.choose_uid(agent, &volume, &prep, &labels, Holder::UidVolume, None)
                        .await?
                }
            };
            recorded = Some(uid);
            match dir.give(uid) {
                Ok(()) => return Ok(Home { volume, uid }),
                // Not allowed here after all (a daemon not run by root that sees the engine's
                // volumes): given by a container, below.
                Err(e) => tracing::debug!("giving {} to {uid}: {e}", dir.path.display()),
            }
        }
        // Files to give (a home of an older roster, or a preparation cut short), or a home out
        // of sight: walked inside a container, never by the runtime among files an agent made.
        // The uid volume goes first and comes back last, once the walk ended well; meanwhile
        // the preparation container holds the uid, and one left over means "not given yet".
        let prefer = recorded;
        if recorded.is_some() {
            self.remove_volume(&self.uid_volume_name(agent)).await?;
        }
        let uid = self
            .choose_uid(agent, &volume, &prep, &labels, Holder::Prep, prefer)
            .await?;
        self.start_prep(&volume, &prep).await?;
        self.wait_prep(&volume, &prep).await?;
        self.create_uid_volume(agent, uid, &labels).await?;
        self.remove_named(&prep).await?;
        Ok(Home { volume, uid })
    }

    /// Whether `agent` keeps its recorded `uid`: not if the host names it now (an account or a
    /// group made since, from its files or a directory), nor if another uid volume carries it
    /// too and sorts first (two runtimes that chose it at once, one of them killed before it
    /// could look again).
    async fn keeps(&self, agent: AgentId, uid: AgentUid) -> Result<bool, SandboxError> {
        let named = tokio::task::spawn_blocking(move || uid::named_by_host(uid.get()))
            .await
            .unwrap_or(false);
        if named {
            tracing::warn!("the host now names uid {uid}, {agent}'s: giving {agent} another");
            return Ok(false);
        }
        let label = format!("{UID_LABEL}={uid}");
        let mut holders = self.volumes_labelled(&label).await?;
        holders.sort();
        let ours = self.uid_volume_name(agent);
        match holders.first() {
            Some(first) if *first != ours => {
                tracing::warn!("uid {uid} of {agent} is also {first}'s: giving {agent} another");
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// How many volumes and containers carry `uid`'s label.
    async fn uid_holders(&self, uid: AgentUid) -> Result<usize, SandboxError> {
        Ok(self.uids_in_use().await?.get(&uid).copied().unwrap_or(0))
    }

    /// The preparation container `prep` left by an earlier call, if there is one.
    async fn prep_left(&self, prep: &str) -> Result<Option<PrepLeft>, SandboxError> {
        let c = match self.docker.inspect_container(prep, None).await {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(SandboxError::engine(format!("inspecting {prep}"), e)),
        };
        let state = c.state.unwrap_or_default();
        let ran = state
            .finished_at
            .as_deref()
            .and_then(crate::state::parse_time)
            .is_some();
        Ok(Some(PrepLeft {
            running: state.running.unwrap_or(false),
            succeeded: ran && !state.running.unwrap_or(false) && state.exit_code == Some(0),
            uid: c
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(UID_LABEL).and_then(|u| AgentUid::parse(u))),
        }))
    }

    /// Creates `agent`'s uid volume, labelled with `uid`.
    async fn create_uid_volume(
        &self,
        agent: AgentId,
        uid: AgentUid,
        labels: &HashMap<String, String>,
    ) -> Result<(), SandboxError> {
        let mut labels = labels.clone();
        labels.insert(UID_LABEL.to_string(), uid.to_string());
        let name = self.uid_volume_name(agent);
        let options = CreateVolumeOptions {
            name: name.clone(),
            driver: "local".to_string(),
            driver_opts: HashMap::new(),
            labels,
        };
        self.docker
            .create_volume(options)
            .await
            .map_err(|e| SandboxError::engine(format!("creating volume {name}"), e))?;
        Ok(())
    }

    /// Moves `home`, a plain volume made before homes had disks, into a disk of `disk_mib` MiB
    /// of its own: the disk is made for its uid, a container copies the files (`cp -a`, as
    /// root with only the capabilities to read everything and keep owners, modes and times,
    /// no network), and only once the copy ended well does the disk take the home's name
    /// ([`Engine::finish_move`]). A home whose files do not fit stays as it was, without a
    /// quota — its agent keeps working — and each start says so; it is not copied again for
    /// the same size.
    async fn move_to_disk(
        &self,
        disks: &Disks,
        home: &Home,
        disk_mib: u32,
        labels: &HashMap<String, String>,
    ) -> Result<(), SandboxError> {
        let volume = &home.volume;
        let unfit = disks.unfit(volume);
        let no_quota = |why: &str| {
            tracing::warn!(
                "home {volume} was made before homes had disks of their own, and stays without \
                 a quota: {why}"
            );
        };
        if std::fs::read_to_string(&unfit).is_ok_and(|m| m.trim() == disk_mib.to_string()) {
            no_quota(&format!("its files did not fit in {disk_mib} MiB"));
            return Ok(());
        }
        let (d, v, uid) = (disks.clone(), volume.clone(), home.uid);
        if let Err(e) = blocking(volume, move || {
            d.make(&v, disk_mib, uid)?;
            d.attach(&v)
        })
        .await
        {
            no_quota(&e.to_string());
            return Ok(());
        }
        let (temp, mover) = (format!("{volume}-disk"), format!("{volume}-move"));
        self.remove_named(&mover).await?;
        self.remove_volume(&temp).await?;
        self.create_home_volume(&temp, disks.volume_options(volume), labels)
            .await?;
        self.create_mover(volume, &temp, &mover, labels).await?;
        self.start_prep(volume, &mover).await?;
        match self.wait_prep(volume, &mover).await {
            Ok(()) => {
                // The engine unmounted the disk when the copy ended: its blocks are written
                // to the image before the mark says the copy is whole.
                let image = disks.image(volume);
                blocking(volume, move || {
                    std::fs::File::open(&image)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| SandboxError::io(format!("syncing {}", image.display()), e))
                })
                .await?;
                mark(&disks.moved(volume))?;
                self.finish_move(disks, volume).await
            }
            Err(e @ SandboxError::Timeout { .. }) => Err(e),
            Err(e) => {
                self.remove_named(&mover).await?;
                self.remove_volume(&temp).await?;
                let (d, v) = (disks.clone(), volume.clone());
                blocking(volume, move || d.remove(&v)).await?;
                let _ = std::fs::write(&unfit, disk_mib.to_string());
                no_quota(&format!(
                    "copying its files into {disk_mib} MiB failed ({e})"
                ));
                Ok(())
            }
        }
    }

    /// Ends a move of `volume` into its disk that an earlier call began: one whose copy ended
    /// well (its mark in the disks' directory) takes the home's name — the plain volume
    /// removed, the disk's made — and anything else left is removed, to begin again. A copy
    /// still running is waited for.
    async fn finish_move(&self, disks: &Disks, volume: &str) -> Result<(), SandboxError> {
        let (temp, mover) = (format!("{volume}-disk"), format!("{volume}-move"));
        let moved = disks.moved(volume);
        let copied = match self.prep_left(&mover).await? {
            Some(l) if l.running => match self.wait_prep(volume, &mover).await {
                Ok(()) => true,
                Err(e @ SandboxError::Timeout { .. }) => return Err(e),
                Err(_) => false,
            },
            Some(l) => l.succeeded,
            None => false,
        };
        if copied && !moved.exists() {
            mark(&moved)?;
        }
        if !moved.exists() {
            // A copy cut short or failed: begun again from nothing.
            self.remove_named(&mover).await?;
            self.remove_volume(&temp).await?;
            return Ok(());
        }
        self.remove_named(&mover).await?;
        let labels = self
            .docker
            .inspect_volume(&temp)
            .await
            .ok()
            .map(|v| v.labels);
        match self.inspect_home(volume).await? {
            Some((_, o)) if Disks::is_disk(&o) => {}
            Some(_) => {
                self.remove_volume(volume).await?;
                self.create_home_volume(
                    volume,
                    disks.volume_options(volume),
                    &labels.unwrap_or_default(),
                )
                .await?;
            }
            None => {
                self.create_home_volume(
                    volume,
                    disks.volume_options(volume),
                    &labels.unwrap_or_default(),
                )
                .await?;
            }
        }
        self.remove_volume(&temp).await?;
        std::fs::remove_file(&moved)
            .map_err(|e| SandboxError::io(format!("removing {}", moved.display()), e))
    }

    /// Creates the container `mover` that copies the plain home `volume` into its disk,
    /// mounted through `temp`.
    async fn create_mover(
        &self,
        volume: &str,
        temp: &str,
        mover: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), SandboxError> {
        let mut config = self.chore(
            vec![
                "cp".into(),
                "-a".into(),
                "/from/.".into(),
                format!("{HOME}/"),
            ],
            volume,
            labels.clone(),
        );
        if let Some(h) = config.host_config.as_mut() {
            // To read everything, and to keep owners, modes and times.
            h.cap_add = Some(vec![
                "CHOWN".into(),
                "DAC_OVERRIDE".into(),
                "DAC_READ_SEARCH".into(),
                "FOWNER".into(),
            ]);
            h.mounts = Some(vec![
                volume_mount(volume, "/from", true),
                volume_mount(temp, HOME, false),
            ]);
        }
        self.docker
            .create_container(
                Some(CreateContainerOptions {
                    name: mover.to_string(),
                    platform: None,
                }),
                config,
            )
            .await
            .map_err(|e| SandboxError::HomePrep {
                volume: volume.to_string(),
                why: format!("creating {mover}: {e}"),
            })?;
        Ok(())
    }

    /// Creates the home volume `volume` with the driver's `options`; where the engine keeps
    /// its files.
    async fn create_home_volume(
        &self,
        volume: &str,
        options: HashMap<String, String>,
        labels: &HashMap<String, String>,
    ) -> Result<String, SandboxError> {
        let options = CreateVolumeOptions {
            name: volume.to_string(),
            driver: "local".to_string(),
            driver_opts: options,
            labels: labels.clone(),
        };
        let made = self
            .docker
            .create_volume(options)
            .await
            .map_err(|e| SandboxError::engine(format!("creating volume {volume}"), e))?;
        Ok(made.mountpoint)
    }

    /// Where the engine keeps a volume's files and the driver's options, if the volume exists.
    async fn inspect_home(
        &self,
        volume: &str,
    ) -> Result<Option<(String, HashMap<String, String>)>, SandboxError> {
        match self.docker.inspect_volume(volume).await {
            Ok(v) => Ok(Some((v.mountpoint, v.options))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(SandboxError::engine(
                format!("inspecting volume {volume}"),
                e,
            )),
        }
    }

    /// The host uid recorded for `agent` (its uid volume's label), if it has one.
    pub async fn home_uid(&self, agent: AgentId) -> Result<Option<AgentUid>, SandboxError> {
        let name = self.uid_volume_name(agent);
        let v = match self.docker.inspect_volume(&name).await {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(SandboxError::engine(format!("inspecting volume {name}"), e)),
        };
        let raw = v.labels.get(UID_LABEL).cloned().unwrap_or_default();
        AgentUid::parse(&raw)
            .map(Some)
            .ok_or_else(|| SandboxError::HomePrep {
                volume: name,
                why: format!(
                    "its {UID_LABEL} label is {raw:?}, not a uid from {} to {}",
                    uid::FIRST,
                    uid::LAST
                ),
            })
    }

    /// Every uid the engine's labels give an agent, of any namespace, with how many volumes and
    /// containers carry it.
    pub async fn uids_in_use(&self) -> Result<HashMap<AgentUid, usize>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), vec![UID_LABEL.to_string()])]);
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: filters.clone(),
            }))
            .await
            .map_err(|e| {
                SandboxError::engine(format!("listing volumes labelled {UID_LABEL}"), e)
            })?;
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters,
                ..Default::default()
            }))
            .await
            .map_err(|e| {
                SandboxError::engine(format!("listing containers labelled {UID_LABEL}"), e)
            })?;
        let mut seen = HashMap::new();
        let labels = volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.labels.get(UID_LABEL).cloned())
            .chain(
                containers
                    .into_iter()
                    .map(|c| c.labels.and_then(|l| l.get(UID_LABEL).cloned())),
            );
        for raw in labels.flatten() {
            if let Some(uid) = AgentUid::parse(&raw) {
                *seen.entry(uid).or_insert(0) += 1;
            }
        }
        Ok(seen)
    }

    /// Chooses a uid for `agent` that neither the host nor any label on the engine uses, and
    /// labels `holder` (created here) with it. Two runtimes
    /// choosing at once each look again once labelled: one that sees its uid on anything else
    /// gives it up and chooses again, so that two never keep the same.
    async fn choose_uid(
        &self,
        agent: AgentId,
        volume: &str,
        prep: &str,
        labels: &HashMap<String, String>,
        holder: Holder,
        prefer: Option<AgentUid>,
    ) -> Result<AgentUid, SandboxError> {
        let host = Arc::new(
            tokio::task::spawn_blocking(HostIds::read)
                .await
                .map_err(|e| SandboxError::HomePrep {
                    volume: volume.to_string(),
                    why: format!("reading the host's accounts: {e}"),
                })?,
        );
        for salt in 0..UID_TRIES {
            let taken: HashSet<AgentUid> = self.uids_in_use().await?.into_keys().collect();
            let from = match prefer {
                // The uid it had, if nothing else holds it now: its files need not change.
                Some(p) if salt == 0 => p,
                _ => uid::start(self.ns(), agent, salt),
            };
            let host = host.clone();
            // The name service is asked last, of a candidate nothing else refused.
            let picked = tokio::task::spawn_blocking(move || {
                uid::pick(from, UID_SEARCH, |u| {
                    taken.contains(&u) || host.uses(u.get()) || uid::named_by_host(u.get())
                })
            })
            .await
            .ok()
            .flatten();
            let Some(uid) = picked else {
                break;
            };
            match holder {
                Holder::Prep => self.create_prep(volume, prep, uid, labels).await?,
                Holder::UidVolume => self.create_uid_volume(agent, uid, labels).await?,
            }
            if self.uid_holders(uid).await? == 1 {
                return Ok(uid);
            }
            match holder {
                Holder::Prep => self.remove_named(prep).await?,
                Holder::UidVolume => self.remove_volume(&self.uid_volume_name(agent)).await?,
            }
        }
        Err(SandboxError::HomePrep {
            volume: volume.to_string(),
            why: format!(
                "no free host uid from {} to {} could be given to the agent",
                uid::FIRST,
                uid::LAST
            ),
        })
    }

    /// Creates the preparation container of `volume`, which gives it to `uid`.
    async fn create_prep(
        &self,
        volume: &str,
        prep: &str,
        uid: AgentUid,
        labels: &HashMap<String, String>,
    ) -> Result<(), SandboxError> {
        let base = ImageRef::base();
        if !self.image_exists(&base).await? {
            return Err(SandboxError::ImageMissing {
                image: base.to_string(),
            });
        }
        let mut labels = labels.clone();
        labels.insert(UID_LABEL.to_string(), uid.to_string());
        let mut config = self.chore(
            vec![
                "chown".into(),
                "-R".into(),
                "-h".into(),
                uid.user(),
                HOME.into(),
            ],
            volume,
            labels,
        );
        if let Some(h) = config.host_config.as_mut() {
            // To change owners, and to walk a home whose directories the agent closed.
            h.cap_add = Some(vec!["CHOWN".into(), "DAC_READ_SEARCH".into()]);
            h.mounts = Some(vec![volume_mount(volume, HOME, false)]);
        }
        let options = CreateContainerOptions {
            name: prep.to_string(),
            platform: None,
        };
        self.docker
            .create_container(Some(options), config)
            .await
            .map_err(|e| SandboxError::HomePrep {
                volume: volume.to_string(),
                why: format!("creating {prep}: {e}"),
            })?;
        Ok(())
    }

    /// A short-lived container of the base image — the runtime's, not the agent's — that
    /// works on the home `volume`, running `cmd` (busybox, on fixed arguments) as root with no
    /// capability yet, no network, a read-only root, small limits and a small log; its caller
    /// adds the capabilities and mounts it needs.
    fn chore(
        &self,
        cmd: Vec<String>,
        volume: &str,
        mut labels: HashMap<String, String>,
    ) -> Config<String> {
        // Not an agent's container: a reconcile must not take it for one.
        labels.remove(crate::plan::labels::AGENT);
        labels.insert(PREP_LABEL.to_string(), volume.to_string());
        Config {
            image: Some(ImageRef::base().to_string()),
            user: Some("0:0".into()),
            cmd: Some(cmd),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges:true".into()]),
                readonly_rootfs: Some(true),
                network_mode: Some("none".into()),
                privileged: Some(false),
                pids_limit: Some(8),
                memory: Some(32 * 1024 * 1024),
                memory_swap: Some(32 * 1024 * 1024),
                runtime: Some("runc".into()),
                // Names an agent chose may fill its errors: a small log, dropped with it.
                log_config: Some(bollard::models::HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), "1m".to_string()),
                        ("max-file".to_string(), "1".to_string()),
                    ])),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Starts the preparation container `prep` of `volume`.
    async fn start_prep(&self, volume: &str, prep: &str) -> Result<(), SandboxError> {
        self.docker
            .start_container::<String>(prep, None)
            .await
            .map_err(|e| SandboxError::HomePrep {
                volume: volume.to_string(),
                why: format!("starting {prep}: {e}"),
            })
    }

    /// Waits for the preparation container `prep` of `volume` to end well. One that takes
    /// longer than [`PREP_TIMEOUT`] is left running: the next call waits for it again.
    async fn wait_prep(&self, volume: &str, prep: &str) -> Result<(), SandboxError> {
        let failed = |why: String| SandboxError::HomePrep {
            volume: volume.to_string(),
            why,
        };
        tokio::time::timeout(PREP_TIMEOUT, async {
            let mut wait = self.docker.wait_container(
                prep,
                Some(WaitContainerOptions {
                    condition: "not-running",
                }),
            );
            match wait.next().await {
                Some(Ok(r)) if r.status_code == 0 => Ok(()),
                Some(Ok(r)) => Err(failed(format!("{prep} exited with {}", r.status_code))),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, error })) => {
                    Err(failed(format!("{prep} exited with {code} {error}")))
                }
                Some(Err(e)) => Err(failed(format!("waiting for {prep}: {e}"))),
                None => Err(failed(format!("the engine did not report {prep}'s exit"))),
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(SandboxError::Timeout {
                doing: format!("preparing home volume {volume} (it goes on)"),
                secs: PREP_TIMEOUT.as_secs(),
            })
        })
    }

    /// Whether a volume exists.
    async fn volume_exists(&self, volume: &str) -> Result<bool, SandboxError> {
        match self.docker.inspect_volume(volume).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(SandboxError::engine(
                format!("inspecting volume {volume}"),
                e,
            )),
        }
    }

    /// Whether the agent has a home volume.
    pub async fn home_exists(&self, agent: AgentId) -> Result<bool, SandboxError> {
        self.volume_exists(&self.volume_name(agent)).await
    }

    /// Deletes the agent's home volume and everything in it (`roster purge`); a missing home is
    /// already deleted. Fails while a container still mounts it. Its uid volume goes last, so
    /// that the uid is free again only once nothing of the agent is left.
    pub async fn remove_home(&self, agent: AgentId) -> Result<(), SandboxError> {
        let volume = self.volume_name(agent);
        self.remove_named(&format!("{volume}-prep")).await?;
        self.remove_named(&format!("{volume}-move")).await?;
        self.remove_volume(&format!("{volume}-disk")).await?;
        self.remove_volume(&volume).await?;
        if let Some(disks) = self.disks.clone() {
            let v = volume.clone();
            blocking(&volume, move || disks.remove(&v)).await?;
        }
        self.remove_volume(&self.uid_volume_name(agent)).await
    }

    /// The names of the volumes carrying `label` (`key=value`).
    pub(crate) async fn volumes_labelled(&self, label: &str) -> Result<Vec<String>, SandboxError> {
        let options = ListVolumesOptions {
            filters: HashMap::from([("label".to_string(), vec![label.to_string()])]),
        };
        let list =
            self.docker.list_volumes(Some(options)).await.map_err(|e| {
                SandboxError::engine(format!("listing volumes labelled {label}"), e)
            })?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    /// Removes a volume by name; a missing one is already removed.
    pub(crate) async fn remove_volume(&self, volume: &str) -> Result<(), SandboxError> {
        match self.docker.remove_volume(volume, None).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if status(&e) == Some(409) => Err(SandboxError::engine(
                format!("removing volume {volume} (a container still uses it)"),
                e,
            )),
            Err(e) => Err(SandboxError::engine(format!("removing volume {volume}"), e)),
        }
    }
}

/// Writes the empty mark `path`, durably.
fn mark(path: &std::path::Path) -> Result<(), SandboxError> {
    std::fs::write(path, b"")
        .and_then(|()| std::fs::File::open(path)?.sync_all())
        .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))
}

/// Runs `f`, which waits on tools and the disk, off the async workers.
async fn blocking<T: Send + 'static>(
    volume: &str,
    f: impl FnOnce() -> Result<T, SandboxError> + Send + 'static,
) -> Result<T, SandboxError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SandboxError::HomeDisk {
            volume: volume.to_string(),
            why: format!("its work was lost: {e}"),
        })?
}
