//! Home disks: each agent's home is an ext4 filesystem of its own, so that its size in bytes
//! and in files is bounded by the kernel, and a full home fails inside that agent's container
//! only.
//!
//! The engine (Docker 20.10's `local` driver) bounds a volume's size only on xfs with project
//! quotas, which hosts seldom have. So the runtime makes the filesystem itself: a file in its
//! own directory (`<data>/homes/VOLUME.ext4`, root's, 0600), **allocated whole at creation** —
//! an agent filling its home takes nothing more from the host's disk, where the log lives (one
//! exception: the loop device turns a zeroing the filesystem asks for, as after an agent's own
//! `fallocate`, into a hole in the image, whose space a later write takes from the host again) —
//! formatted with about one inode per 16 KiB, no blocks kept for root and its root directory
//! owned by the agent's uid. The runtime attaches it to a loop device and points a link beside
//! it (`VOLUME.dev`) at that device, and the agent's home volume is a `local` volume of
//! `type=ext4` and `device=` that link, mounted `nosuid,nodev` by the engine whenever a
//! container uses it. A loop device does not outlive the host's boot, so the link is made true
//! again before each use; a link left from an earlier boot never reaches a mount without being
//! checked first ([`Disks::attach`]).
//!
//! This needs a daemon run by root beside its engine (loop devices are root's, and the engine
//! must see the link's path); [`Disks::usable`] says why not otherwise, and homes are then plain
//! volumes with no quota (`roster serve` says so at start). A home made before disks is moved
//! into one at its agent's next start, files, owners, modes and times kept (`Engine::home`); one
//! whose files do not fit stays a plain volume, and each start says it has no quota.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::SandboxError;
use crate::uid::AgentUid;

/// Space a new home must leave free on the filesystem of the runtime's directory (its log's,
/// by default): 512 MiB.
pub const RESERVE_BYTES: u64 = 512 << 20;

/// The home volume options that mark a home disk.
const FS_TYPE: &str = "ext4";

/// Where a runtime keeps its agents' home filesystems, and how they are made and attached.
#[derive(Debug, Clone)]
pub struct Disks {
    dir: PathBuf,
}

impl Disks {
    /// Home filesystems kept in `dir` (made, root's and 0700, at the first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Why homes cannot have disks here, if they cannot: not root, no loop devices, or the
    /// tools missing (`mkfs.ext4` and `debugfs` of e2fsprogs, `losetup` of util-linux).
    pub fn usable() -> Result<(), String> {
        if !rustix::process::geteuid().is_root() {
            return Err(
                "the daemon is not run by root, which alone may attach loop devices".into(),
            );
        }
        if !Path::new("/dev/loop-control").exists() {
            return Err("this host has no /dev/loop-control (no loop devices)".into());
        }
        for (tool, arg) in [("mkfs.ext4", "-V"), ("debugfs", "-V"), ("losetup", "-V")] {
            match Command::new(tool).arg(arg).output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => return Err(format!("`{tool} {arg}` failed: {}", o.status)),
                Err(e) => {
                    return Err(format!(
                        "{tool} cannot run ({e}): install e2fsprogs and util-linux"
                    ))
                }
            }
        }
        Ok(())
    }

    /// The directory the filesystems are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The filesystem image of `volume`.
    pub fn image(&self, volume: &str) -> PathBuf {
        self.dir.join(format!("{volume}.{FS_TYPE}"))
    }

    /// The mark of a home made before disks whose files did not fit in the size it holds.
    pub(crate) fn unfit(&self, volume: &str) -> PathBuf {
        self.dir.join(format!("{volume}.unfit"))
    }

    /// The mark of a home made before disks whose files were copied into its disk, which is
    /// to take its name.
    pub(crate) fn moved(&self, volume: &str) -> PathBuf {
        self.dir.join(format!("{volume}.moved"))
    }

    /// The link to the loop device `volume`'s image is attached to.
    fn link(&self, volume: &str) -> PathBuf {
        self.dir.join(format!("{volume}.dev"))
    }

    /// The engine's options for `volume` as a home disk.
    pub fn volume_options(&self, volume: &str) -> HashMap<String, String> {
        HashMap::from([
            ("type".to_string(), FS_TYPE.to_string()),
            (
                "device".to_string(),
                self.link(volume).to_string_lossy().into_owned(),
            ),
            ("o".to_string(), "nosuid,nodev".to_string()),
        ])
    }

    /// Whether a volume with these options is a home disk (of any runtime's directory).
    pub fn is_disk(options: &HashMap<String, String>) -> bool {
        options.get("type").map(String::as_str) == Some(FS_TYPE)
    }

    /// Makes `volume`'s filesystem: `mib` MiB allocated whole, its root directory `uid`'s. One
    /// left by an interrupted call is made again (no container used it: the volume comes after).
    /// Fails, changing nothing, when it would leave less than [`RESERVE_BYTES`] free.
    pub fn make(&self, volume: &str, mib: u32, uid: AgentUid) -> Result<(), SandboxError> {
        let fail = |why: String| SandboxError::HomeDisk {
            volume: volume.to_string(),
            why,
        };
        self.room_for(volume, mib)?;
        let bytes = u64::from(mib) << 20;
        // One left over may still be attached: detached and deleted first.
        self.remove(volume)?;
        let image = self.image(volume);
        let part = self.dir.join(format!("{volume}.part"));
        let made = (|| {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&part)
                .map_err(|e| format!("creating {}: {e}", part.display()))?;
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, bytes)
                .map_err(|e| format!("allocating {mib} MiB: {e}"))?;
            drop(f);
            run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-L", "roster-home"])
                .args(["-N", &(u64::from(mib) * 64).to_string()])
                .arg("-E")
                // Inode tables and journal written now: the kernel's lazy initialisation
                // would zero them later through the loop device, which punches holes in
                // the image and gives its space back to the host.
                .arg(format!(
                    "root_owner={uid}:{uid},nodiscard,lazy_itable_init=0,lazy_journal_init=0"
                ))
                .arg(&part))?;
            // An agent's home holds only what it puts there.
            run(Command::new("debugfs")
                .args(["-w", "-R", "rmdir lost+found"])
                .arg(&part))?;
            File::open(&part)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("syncing {}: {e}", part.display()))?;
            fs::rename(&part, &image).map_err(|e| format!("naming {}: {e}", image.display()))
        })();
        made.map_err(|why| {
            let _ = fs::remove_file(&part);
            fail(why)
        })
    }

    /// Fails, saying why, unless a home disk of `mib` MiB fits in the directory and leaves
    /// [`RESERVE_BYTES`] free.
    pub fn room_for(&self, volume: &str, mib: u32) -> Result<(), SandboxError> {
        let fail = |why: String| SandboxError::HomeDisk {
            volume: volume.to_string(),
            why,
        };
        self.prepare_dir()
            .map_err(|e| fail(format!("preparing {}: {e}", self.dir.display())))?;
        match self.free_mib() {
            Ok(free) if free >= u64::from(mib) + (RESERVE_BYTES >> 20) => Ok(()),
            Ok(free) => Err(fail(format!(
                "a home of {mib} MiB does not fit on {}: {free} MiB free, and {} MiB stay free \
                 for the runtime",
                self.dir.display(),
                RESERVE_BYTES >> 20
            ))),
            Err(e) => Err(fail(format!("measuring {}: {e}", self.dir.display()))),
        }
    }

    /// MiB free to the runtime where the disks are kept (on the nearest directory that exists).
    pub fn free_mib(&self) -> io::Result<u64> {
        let mut at = self.dir.as_path();
        while !at.exists() {
            at = at.parent().unwrap_or(Path::new("/"));
        }
        let stat = rustix::fs::statvfs(at)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize) >> 20)
    }

    /// Whether `volume`'s filesystem image exists.
    pub fn exists(&self, volume: &str) -> bool {
        self.image(volume).is_file()
    }

    /// Attaches `volume`'s image to a loop device — the one it is attached to already, if any —
    /// and points its link at that device. Fails when the image is missing: a home whose files
    /// are gone is never made again empty in silence.
    pub fn attach(&self, volume: &str) -> Result<(), SandboxError> {
        let fail = |why: String| SandboxError::HomeDisk {
            volume: volume.to_string(),
            why,
        };
        self.check().map_err(&fail)?;
        let image = self.image(volume);
        match fs::symlink_metadata(&image) {
            Ok(m) if m.file_type().is_file() => {}
            Ok(_) => return Err(fail(format!("{} is not a plain file", image.display()))),
            Err(e) => {
                return Err(fail(format!(
                    "its filesystem {} is gone ({e}): the agent's home was lost with it; \
                     `roster purge` makes room for a new one",
                    image.display()
                )))
            }
        }
        // `--nooverlap` gives the device the image is attached to already, else a free one,
        // under losetup's lock.
        let out = run(Command::new("losetup")
            .args(["--find", "--show", "--nooverlap"])
            .arg(&image))
        .map_err(fail)?;
        let device = out.trim();
        if !device.starts_with("/dev/loop") || device.contains(char::is_whitespace) {
            return Err(fail(format!("losetup named {device:?}, not a loop device")));
        }
        let link = self.link(volume);
        let next = self.dir.join(format!("{volume}.dev.next"));
        let _ = fs::remove_file(&next);
        std::os::unix::fs::symlink(device, &next)
            .and_then(|()| fs::rename(&next, &link))
            .map_err(|e| fail(format!("linking {} to {device}: {e}", link.display())))
    }

    /// Detaches `volume`'s image from its loop device (at once, or when the engine unmounts it)
    /// and deletes the image and its link; a missing one is already deleted.
    pub fn remove(&self, volume: &str) -> Result<(), SandboxError> {
        let fail = |why: String| SandboxError::HomeDisk {
            volume: volume.to_string(),
            why,
        };
        let image = self.image(volume);
        if image.exists() {
            let out = run(Command::new("losetup")
                .args(["--noheadings", "--output", "NAME", "--associated"])
                .arg(&image))
            .map_err(fail)?;
            for device in out.lines().map(str::trim).filter(|d| !d.is_empty()) {
                run(Command::new("losetup").args(["--detach", device])).map_err(fail)?;
            }
        }
        for path in [
            self.link(volume),
            self.unfit(volume),
            self.moved(volume),
            image,
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(format!("deleting {}: {e}", path.display()))),
            }
        }
        Ok(())
    }

    /// Makes the directory (0700) and checks that no one but root can change what is in it:
    /// it and every directory above it root's, none writable by others (but a sticky one like
    /// `/tmp`, above it). Anyone who could plant a link there could have a host device mounted
    /// into an agent.
    fn prepare_dir(&self) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        fs::create_dir_all(&self.dir)?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
        let unsafe_dir = |why: String| io::Error::new(io::ErrorKind::PermissionDenied, why);
        let own = fs::symlink_metadata(&self.dir)?;
        if !own.file_type().is_dir() || own.uid() != 0 {
            return Err(unsafe_dir(format!(
                "{} must be a directory of root's, not a link or another user's",
                self.dir.display()
            )));
        }
        let mut above = self.dir.parent();
        while let Some(dir) = above {
            let m = fs::metadata(dir)?;
            let writable = m.mode() & 0o022 != 0;
            let sticky = m.mode() & 0o1000 != 0;
            if m.uid() != 0 || (writable && !sticky) {
                return Err(unsafe_dir(format!(
                    "{} is above the home disks and another user may change it: keep the \
                     disks under directories of root's (`[serve] homes`)",
                    dir.display()
                )));
            }
            above = dir.parent();
        }
        Ok(())
    }

    /// Fails, saying why, unless the directory is fit to keep home disks in (made if missing):
    /// root's all the way up.
    pub fn check(&self) -> Result<(), String> {
        self.prepare_dir()
            .map_err(|e| format!("{}: {e}", self.dir.display()))
    }
}

/// Detaches every loop device whose image was a home disk (`roster-…-home.ext4`) deleted
/// since — a test's directory removed while its homes were attached — so that its space returns
/// to the host. Returns how many.
pub fn detach_deleted() -> usize {
    detach_where(|path, deleted| {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        deleted && file.starts_with("roster-") && file.ends_with(&format!("-home.{FS_TYPE}"))
    })
}

/// Detaches every loop device whose image lies under `dir` (a data directory about to be
/// deleted, with its homes). Returns how many.
pub fn detach_under(dir: &Path) -> usize {
    detach_where(|path, _| path.starts_with(dir))
}

/// Detaches the loop devices whose image `pick(path, deleted)` picks.
fn detach_where(pick: impl Fn(&Path, bool) -> bool) -> usize {
    let Ok(entries) = fs::read_dir("/sys/block") else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = fs::read_to_string(e.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end();
        let (path, deleted) = match backing.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (backing, false),
        };
        if pick(Path::new(path), deleted) {
            let device = format!("/dev/{name}");
            if run(Command::new("losetup").args(["--detach", &device])).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Runs a tool to its end; its standard output, or why it failed.
fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{shown} cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(format!("{shown} failed ({}): {last}", out.status))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn disks_are_kept_only_where_no_one_but_root_can_change_them() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Disks::new(root.path().join("homes")).check(), Ok(()));
        // Under a directory anyone may write to (and not sticky): refused.
        let open = root.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = Disks::new(open.join("homes")).check().unwrap_err();
        assert!(err.contains("another user may change it"), "{err}");
        // A link where the directory should be: refused.
        let target = root.path().join("target");
        fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, root.path().join("link")).unwrap();
        let err = Disks::new(root.path().join("link")).check().unwrap_err();
        assert!(err.contains("not a link"), "{err}");
    }
}
