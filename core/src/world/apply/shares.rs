//! Shares between teams (proposed by the exporting team, accepted, closed) and the context
//! messages that crossed them.

use crate::id::{AgentId, ShareId, TeamId};
use crate::topic::TopicPattern;
use crate::world::{Share, ShareState, World};

use super::{FoldError, Refuse};

impl World {
    /// Offered by `team` to `to`, for the topics matching `topics`.
    pub(super) fn share_proposed(
        &mut self,
        r: &Refuse,
        team: TeamId,
        share: ShareId,
        to: TeamId,
        topics: &TopicPattern,
    ) -> Result<(), FoldError> {
        if self.shares.contains_key(&share) {
            return Err(r.duplicate("share", share));
        }
        if !self.teams.contains_key(&to) {
            return Err(r.unknown("team", to));
        }
        self.shares.insert(
            share,
            Share {
                id: share,
                from: team,
                to,
                topics: topics.clone(),
                state: ShareState::Proposed,
                crossings: 0,
            },
        );
        Ok(())
    }

    /// The share, which must involve `team` (a side of it).
    fn share_of(
        &self,
        r: &Refuse,
        team: TeamId,
        share: ShareId,
    ) -> Result<&crate::world::Share, FoldError> {
        let s = self
            .shares
            .get(&share)
            .ok_or_else(|| r.unknown("share", share))?;
        if s.from != team && s.to != team {
            return Err(r.inconsistent(format!("share {share} does not involve this team")));
        }
        Ok(s)
    }

    /// Accepted: open, if it was only proposed.
    pub(super) fn share_accepted(
        &mut self,
        r: &Refuse,
        team: TeamId,
        share: ShareId,
    ) -> Result<(), FoldError> {
        self.share_of(r, team, share)?;
        if let Some(s) = self.shares.get_mut(&share) {
            if s.state == ShareState::Proposed {
                s.state = ShareState::Open;
            }
        }
        Ok(())
    }

    /// Closed, from either side.
    pub(super) fn share_closed(
        &mut self,
        r: &Refuse,
        team: TeamId,
        share: ShareId,
    ) -> Result<(), FoldError> {
        self.share_of(r, team, share)?;
        if let Some(s) = self.shares.get_mut(&share) {
            s.state = ShareState::Closed;
        }
        Ok(())
    }

    /// A message crossed the share, sent by an agent of its exporting team.
    pub(super) fn context_shared(
        &mut self,
        r: &Refuse,
        share: ShareId,
        sender: AgentId,
    ) -> Result<(), FoldError> {
        let from = self
            .shares
            .get(&share)
            .ok_or_else(|| r.unknown("share", share))?
            .from;
        self.agent_in_team(r, sender, from)?;
        if let Some(s) = self.shares.get_mut(&share) {
            s.crossings += 1;
        }
        Ok(())
    }
}
