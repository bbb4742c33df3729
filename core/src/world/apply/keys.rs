//! Keyed calls: `CallKeyed` remembers an agent's key, its last [`MAX_KEYS`] of them.

use crate::envelope::Hash;
use crate::id::{AgentId, TeamId};
use crate::name::CallKey;
use crate::world::{FoldError, Keyed, World, MAX_KEYS};

use super::Refuse;

impl World {
    /// A keyed call carried out: the agent, of the team and in service, holds its key from now
    /// on (a key it holds already is a second carrying out of one call: refused). Past
    /// [`MAX_KEYS`], the agent's oldest key (by log order) is forgotten.
    pub(super) fn call_keyed(
        &mut self,
        r: &Refuse,
        team: TeamId,
        agent: AgentId,
        key: &CallKey,
        digest: Hash,
        outcome: u32,
    ) -> Result<(), FoldError> {
        if self.agent_in_team(r, agent, team)?.is_retired() {
            return Err(r.inconsistent(format!("{agent} is retired: it calls nothing")));
        }
        if self.keyed(agent, key).is_some() {
            return Err(r.duplicate("call key", format!("{key} of {agent}")));
        }
        let ring = self.keys.entry(agent).or_default();
        ring.held.insert(
            key.clone(),
            Keyed {
                digest,
                seq: r.seq,
                outcome,
            },
        );
        ring.order.push_back(key.clone());
        if ring.order.len() > MAX_KEYS {
            if let Some(oldest) = ring.order.pop_front() {
                ring.held.remove(&oldest);
            }
        }
        Ok(())
    }
}
