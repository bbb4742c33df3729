//! A namespace's lease: which data directory's daemon drives its containers, kept on the engine
//! itself so that every daemon that reaches the engine sees it.
//!
//! The lease is an empty volume, `roster-NS-lease`, whose labels name its holder. The engine
//! creates a named volume once: a second create of the same name returns the first, labels
//! unchanged. So two daemons claiming at once both create, both read the labels back, and one
//! finds itself named — there is never a moment with two holders. Taking a lease over removes
//! the volume and claims it again.

use std::collections::HashMap;

use bollard::volume::CreateVolumeOptions;

use crate::engine::Engine;
use crate::error::{is_not_found, status, SandboxError};
use crate::plan::labels;

/// The label keys of a lease (`roster.lease.*`).
mod keys {
    pub const HOLDER: &str = "roster.lease.holder";
    pub const DIR: &str = "roster.lease.dir";
    pub const HOST: &str = "roster.lease.host";
    pub const SINCE: &str = "roster.lease.since";
}

/// Who holds a namespace, as its lease says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder's data directory's own id.
    pub holder: String,
    /// The holder's data directory, as its daemon named it.
    pub dir: String,
    /// The host the holder ran on.
    pub host: String,
    /// When it took the lease (RFC 3339).
    pub since: String,
}

impl Lease {
    /// Whether `other` is the same holder: the same data directory (its id and its path; a copy
    /// of a data directory elsewhere is another holder).
    pub fn same_holder(&self, other: &Lease) -> bool {
        self.holder == other.holder && self.dir == other.dir && self.host == other.host
    }

    fn labels(&self, ns: &str) -> HashMap<String, String> {
        HashMap::from([
            (labels::NS.to_string(), ns.to_string()),
            (keys::HOLDER.to_string(), self.holder.clone()),
            (keys::DIR.to_string(), self.dir.clone()),
            (keys::HOST.to_string(), self.host.clone()),
            (keys::SINCE.to_string(), self.since.clone()),
        ])
    }

    fn from_labels(l: &HashMap<String, String>) -> Lease {
        let get = |k: &str| l.get(k).cloned().unwrap_or_default();
        Lease {
            holder: get(keys::HOLDER),
            dir: get(keys::DIR),
            host: get(keys::HOST),
            since: get(keys::SINCE),
        }
    }
}

impl Engine {
    /// The name of this namespace's lease volume.
    pub fn lease_name(&self) -> String {
        format!("roster-{}-lease", self.ns)
    }

    /// Who holds this namespace, if anyone does.
    pub async fn lease(&self) -> Result<Option<Lease>, SandboxError> {
        let name = self.lease_name();
        match self.docker.inspect_volume(&name).await {
            Ok(v) => Ok(Some(Lease::from_labels(&v.labels))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(SandboxError::engine(format!("inspecting {name}"), e)),
        }
    }

    /// Claims this namespace for `me` where no one holds it; who holds it afterwards (`me`, or
    /// whoever held it already or claimed it at the same moment).
    pub async fn claim_lease(&self, me: &Lease) -> Result<Lease, SandboxError> {
        let name = self.lease_name();
        let options = CreateVolumeOptions {
            name: name.clone(),
            driver: "local".to_string(),
            driver_opts: HashMap::new(),
            labels: me.labels(self.ns.as_str()),
        };
        match self.docker.create_volume(options).await {
            Ok(made) => Ok(Lease::from_labels(&made.labels)),
            // An engine that refuses a second create of another's labels: read the first.
            Err(e) if status(&e) == Some(409) => self.lease().await?.ok_or_else(|| {
                SandboxError::engine(format!("creating {name} (and then it was gone)"), e)
            }),
            Err(e) => Err(SandboxError::engine(format!("creating {name}"), e)),
        }
    }

    /// Gives up this namespace's lease, whoever holds it (a take-over, or a test's end); a
    /// missing one is given up.
    pub async fn remove_lease(&self) -> Result<(), SandboxError> {
        self.remove_volume(&self.lease_name()).await
    }
}
