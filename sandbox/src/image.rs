//! The base image, built by roster itself, and the checks every agent image passes.
//!
//! No registry is reachable on the machines roster runs on, so nothing may pull. The base image
//! ([`roster_core::BASE_IMAGE`]) is built from an in-memory tar context with the engine's legacy
//! builder: `FROM scratch`, then one `ADD` of a root filesystem tar — `ADD` of a local archive
//! keeps the owners and modes written in it, which `COPY` would not — holding a static busybox
//! with its applets, the static `roster-agent`, `/tmp` mode 1777 and `/home/agent` owned by the
//! agent user. Those two carry into the agent's tmpfs and into its new home volume, so the base
//! image needs no preparation step at hire time.
//!
//! The context is deterministic (fixed times, owners and order), and its digest is written into
//! an image label: the image is rebuilt only when it is missing or its inputs changed.

use std::collections::HashMap;
use std::path::Path;

use bollard::image::{BuildImageOptions, ListImagesOptions};
use futures_util::StreamExt;
use roster_core::name::ImageRef;

use crate::engine::Engine;
use crate::error::{is_not_found, SandboxError};
use crate::plan::{AGENT_BINARY, GATEWAY_DIR, HOME};

/// The image label holding the digest of the base image's build context.
pub const DIGEST_LABEL: &str = "roster.base.digest";

/// The busybox applets linked in the base image: enough for an agent's shell work and for the
/// escape suite, which runs its checks with them.
const APPLETS: &[&str] = &[
    "[", "[[", "ash", "awk", "basename", "cat", "chmod", "chown", "cp", "cut", "date", "dd", "df",
    "dirname", "du", "echo", "env", "expr", "false", "find", "grep", "head", "hostname", "id",
    "kill", "ln", "ls", "mkdir", "mount", "mv", "nc", "nsenter", "printf", "ps", "pwd", "readlink",
    "rm", "rmdir", "sed", "seq", "setpriv", "sh", "sleep", "sort", "stat", "su", "tail", "tee",
    "test", "timeout", "touch", "tr", "true", "umount", "uname", "uniq", "unshare", "wc", "wget",
    "whoami", "xargs",
];

/// What [`Engine::ensure_base_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BaseImage {
    /// The image was there with the same inputs; nothing was built.
    Current {
        /// The digest of its build context.
        digest: String,
    },
    /// The image was missing or its inputs changed, and it was built now.
    Built {
        /// The digest of its build context.
        digest: String,
    },
}

/// Why a file is not a static ELF executable, or `None` when it is one.
///
/// Static means no `PT_INTERP` program header: the kernel runs it without a dynamic loader, so
/// it works in an image with no libc (a static-pie binary qualifies too).
pub fn not_static(bytes: &[u8]) -> Option<String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Some("not an ELF file".into());
    }
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Some("unknown ELF class".into()),
    };
    let little = match bytes.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Some("unknown ELF byte order".into()),
    };
    let uint = |at: usize, len: usize| -> Option<u64> {
        let raw = bytes.get(at..at.checked_add(len)?)?;
        let mut v: u64 = 0;
        for i in 0..len {
            let b = if little { raw[len - 1 - i] } else { raw[i] };
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if wide {
        (uint(0x20, 8), uint(0x36, 2), uint(0x38, 2))
    } else {
        (uint(0x1C, 4), uint(0x2A, 2), uint(0x2C, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Some("truncated ELF header".into());
    };
    if phnum == 0 {
        return Some("no program headers (not an executable)".into());
    }
    for i in 0..phnum {
        let at = phentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok());
        let Some(p_type) = at.and_then(|at| uint(at, 4)) else {
            return Some("truncated program headers".into());
        };
        if p_type == 3 {
            return Some("it has an ELF interpreter: it is dynamically linked".into());
        }
    }
    None
}

/// A 128-bit FNV-1a digest, hex: change detection for the build context, not integrity (whoever
/// can rewrite the host's busybox is already past every boundary roster draws).
pub(crate) fn digest(bytes: &[u8]) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut h = OFFSET;
    for &b in bytes {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    format!("{h:032x}")
}

/// One entry of the root filesystem.
enum Entry<'a> {
    Dir(u32, u32, u32),
    File(u32, &'a [u8]),
    Link(&'a str),
}

/// Appends one tar entry with fixed times and owners, so equal inputs give equal bytes.
fn append<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    entry: Entry<'_>,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    match entry {
        Entry::Dir(mode, uid, gid) => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(mode);
            h.set_uid(u64::from(uid));
            h.set_gid(u64::from(gid));
            h.set_size(0);
            tar.append_data(&mut h, path, std::io::empty())
        }
        Entry::File(mode, data) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, path, data)
        }
        Entry::Link(target) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            tar.append_link(&mut h, path, target)
        }
    }
}

/// The root filesystem of the base image, as a tar.
fn rootfs(busybox: &[u8], agent: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut t = tar::Builder::new(Vec::new());
    let root = |mode| Entry::Dir(mode, 0, 0);
    for dir in ["bin", "etc", "home", "proc", "run", "sys", "dev", "usr"] {
        append(&mut t, dir, root(0o755))?;
    }
    for dir in ["usr/local", "usr/local/bin"] {
        append(&mut t, dir, root(0o755))?;
    }
    append(&mut t, "tmp", root(0o1777))?;
    append(&mut t, rel(HOME), Entry::Dir(0o755, 1000, 1000))?;
    append(&mut t, rel(GATEWAY_DIR), root(0o755))?;
    append(&mut t, "bin/busybox", Entry::File(0o755, busybox))?;
    for applet in APPLETS {
        append(&mut t, &format!("bin/{applet}"), Entry::Link("busybox"))?;
    }
    append(&mut t, rel(AGENT_BINARY), Entry::File(0o755, agent))?;
    let passwd = "root:x:0:0:root:/root:/bin/sh\n\
                  agent:x:1000:1000:agent:/home/agent:/bin/sh\n\
                  nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n";
    append(&mut t, "etc/passwd", Entry::File(0o644, passwd.as_bytes()))?;
    append(&mut t, "etc/group", Entry::File(0o644, group.as_bytes()))?;
    t.into_inner()
}

/// A path of the image without its leading `/`.
fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// The Dockerfile of the base image. The default program greets the runtime through the gateway
/// (`roster-agent idle`, which then waits) and idles on if the client cannot (a stand-in binary);
/// SIGTERM, forwarded by the init process (`Init` is always on) to the shell, ends it at once.
const DOCKERFILE: &str = "FROM scratch\n\
ADD rootfs.tar /\n\
ENV PATH=/usr/local/bin:/bin\n\
USER 1000:1000\n\
WORKDIR /home/agent\n\
CMD [\"sh\", \"-c\", \"roster-agent idle; exec sleep infinity\"]\n";

/// The build context of the base image: the Dockerfile and the root filesystem tar.
pub(crate) fn context(busybox: &[u8], agent: &[u8]) -> std::io::Result<Vec<u8>> {
    let fs = rootfs(busybox, agent)?;
    let mut t = tar::Builder::new(Vec::new());
    append(
        &mut t,
        "Dockerfile",
        Entry::File(0o644, DOCKERFILE.as_bytes()),
    )?;
    append(&mut t, "rootfs.tar", Entry::File(0o644, &fs))?;
    t.into_inner()
}

/// Reads a binary that goes into images and refuses it unless it is a static executable.
async fn read_static(path: &Path) -> Result<Vec<u8>, SandboxError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| SandboxError::io(format!("reading {}", path.display()), e))?;
    match not_static(&bytes) {
        None => Ok(bytes),
        Some(why) => Err(SandboxError::NotStatic {
            path: path.to_owned(),
            why,
        }),
    }
}

impl Engine {
    /// Builds the base image unless it is already there with the same inputs, so that an agent
    /// hired without an image can run on a machine with no registry.
    pub async fn ensure_base_image(
        &self,
        busybox: &Path,
        agent_binary: &Path,
    ) -> Result<BaseImage, SandboxError> {
        self.ensure_base_image_as(&ImageRef::base(), busybox, agent_binary)
            .await
    }

    /// Like [`Engine::ensure_base_image`] under another tag: for images derived from a new base
    /// before it replaces the old one, and for tests that must not race the shared tag.
    pub async fn ensure_base_image_as(
        &self,
        image: &ImageRef,
        busybox: &Path,
        agent_binary: &Path,
    ) -> Result<BaseImage, SandboxError> {
        let image = image.as_str();
        let bb = read_static(busybox).await?;
        let agent = read_static(agent_binary).await?;
        let ctx = context(&bb, &agent)
            .map_err(|e| SandboxError::io("assembling the base image's build context", e))?;
        let digest = digest(&ctx);
        let old = match self.docker.inspect_image(image).await {
            Ok(i) => {
                let labels = i.config.and_then(|c| c.labels).unwrap_or_default();
                if labels.get(DIGEST_LABEL) == Some(&digest) {
                    return Ok(BaseImage::Current { digest });
                }
                i.id
            }
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(SandboxError::engine(format!("inspecting {image}"), e)),
        };
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".to_string(),
            t: image.to_string(),
            rm: true,
            forcerm: true,
            pull: false,
            networkmode: "none".to_string(),
            labels: HashMap::from([(DIGEST_LABEL.to_string(), digest.clone())]),
            ..Default::default()
        };
        // Two daemons starting at once on one engine (each test's, or two data directories')
        // may build the same tag together, and the engine can fail one of the builds: the
        // image the other one made is as good, so the failure counts only if the tag does not
        // carry this digest afterwards, and a failed build is tried once more.
        let mut failed = None;
        for _ in 0..2 {
            match self.build(options.clone(), ctx.clone()).await {
                Ok(()) => {
                    failed = None;
                    break;
                }
                Err(e) if self.image_digest(image).await.as_deref() == Some(digest.as_str()) => {
                    tracing::debug!("building {image} failed ({e}), but another build made it");
                    return Ok(BaseImage::Current { digest });
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(message) = failed {
            return Err(SandboxError::Build {
                image: image.into(),
                message,
            });
        }
        if old.is_some() {
            self.remove_old_builds().await;
        }
        Ok(BaseImage::Built { digest })
    }

    /// Builds the context `ctx` as `options` say; the engine's error as text.
    async fn build(&self, options: BuildImageOptions<String>, ctx: Vec<u8>) -> Result<(), String> {
        let mut out = self.docker.build_image(options, None, Some(ctx.into()));
        while let Some(item) = out.next().await {
            item.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The digest label of `image`, if it exists and has one.
    async fn image_digest(&self, image: &str) -> Option<String> {
        let i = self.docker.inspect_image(image).await.ok()?;
        i.config?.labels?.remove(DIGEST_LABEL)
    }

    /// Removes earlier base builds that lost their tag, once no container uses them (best effort:
    /// one still in use stays until a later build).
    async fn remove_old_builds(&self) {
        let options = ListImagesOptions {
            all: false,
            filters: HashMap::from([
                ("dangling".to_string(), vec!["true".to_string()]),
                ("label".to_string(), vec![DIGEST_LABEL.to_string()]),
            ]),
            digests: false,
        };
        let Ok(old) = self.docker.list_images(Some(options)).await else {
            return;
        };
        for image in old {
            let _ = self.docker.remove_image(&image.id, None, None).await;
        }
    }

    /// Whether `image` is on this engine; roster never pulls, so a missing image is an error the
    /// operator fixes by building or loading it.
    pub async fn image_exists(&self, image: &ImageRef) -> Result<bool, SandboxError> {
        match self.docker.inspect_image(image.as_str()).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(SandboxError::engine(format!("inspecting {image}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF header with the given program header types.
    fn elf64(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3A].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            let at = 64 + 56 * i;
            b[at..at + 4].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn static_means_no_interpreter() {
        assert_eq!(
            not_static(&elf64(&[1, 1, 2, 6])),
            None,
            "static-pie has PT_DYNAMIC"
        );
        assert!(not_static(&elf64(&[6, 3, 1]))
            .unwrap()
            .contains("dynamically linked"));
        assert!(not_static(b"#!/bin/sh\n").unwrap().contains("not an ELF"));
        assert!(not_static(&elf64(&[])).is_some());
        let mut cut = elf64(&[1, 3]);
        cut.truncate(70);
        assert!(not_static(&cut).unwrap().contains("truncated"));
    }

    #[test]
    fn host_binaries_are_classified() {
        if let Ok(bb) = std::fs::read("/bin/busybox") {
            assert_eq!(not_static(&bb), None, "Debian's busybox-static");
        }
        let sh = std::fs::read("/bin/sh").unwrap();
        assert!(not_static(&sh).is_some(), "dash is dynamic");
    }

    #[test]
    fn the_context_is_deterministic_and_its_digest_follows_inputs() {
        let a = context(b"bb", b"agent").unwrap();
        assert_eq!(a, context(b"bb", b"agent").unwrap());
        assert_eq!(digest(&a), digest(&context(b"bb", b"agent").unwrap()));
        assert_ne!(digest(&a), digest(&context(b"bb", b"agent2").unwrap()));
        assert_ne!(digest(&a), digest(&context(b"bb2", b"agent").unwrap()));
        assert_eq!(digest(b"").len(), 32);
    }

    #[test]
    fn the_root_filesystem_has_the_owners_and_modes_agents_need() {
        let fs = rootfs(b"bb", b"agent").unwrap();
        let mut seen = HashMap::new();
        for e in tar::Archive::new(&fs[..]).entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            seen.insert(
                e.path().unwrap().to_string_lossy().into_owned(),
                (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            );
        }
        assert_eq!(seen["tmp"], (0o1777, 0, 0));
        assert_eq!(seen["home/agent"], (0o755, 1000, 1000));
        assert_eq!(seen["usr/local/bin/roster-agent"], (0o755, 0, 0));
        assert_eq!(seen["run/roster"].1, 0);
        for applet in ["sh", "ls", "wget", "nc", "find", "["] {
            assert!(seen.contains_key(&format!("bin/{applet}")), "{applet}");
        }
    }
}
