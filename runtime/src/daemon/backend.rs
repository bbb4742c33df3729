//! The gateway backend: each call an agent makes through its socket, answered over the
//! daemon's world and log. Reads are answered from the world; changes go through `decide` with
//! the agent as the actor, exactly like an operator's command, so every refusal is recorded.

use std::sync::Weak;

use roster_core::actor::Actor;
use roster_core::authz::Authorization;
use roster_core::capability::{Action, Resource};
use roster_core::command::{builtin, Command};
use roster_core::event::{AgentSpec, Event};
use roster_core::gateway::answer::{Answer, Committed, Subscribed};
use roster_core::gateway::{ActParams, Call, ErrorCode, GatewayError, SubscribeParams};
use roster_core::id::{AgentId, TeamId};
use roster_core::name::ImageRef;

use super::Daemon;
use crate::app::{App, RuntimeError};
use crate::gateway::answer::{self, read_only};
use crate::gateway::{ActAnswer, Backend, HungUp, Pushes, Reply};

/// The daemon's backend.
#[derive(Debug)]
pub struct DaemonBackend(pub Weak<Daemon>);

impl Backend for DaemonBackend {
    fn call(&self, agent: AgentId, call: Call) -> Reply {
        let d = self.0.upgrade().ok_or_else(|| {
            GatewayError::new(ErrorCode::Internal, "the runtime is shutting down")
        })?;
        let result = answer(&d, agent, call);
        if result.is_ok() {
            d.answered(agent);
        }
        result
    }

    fn call_now(&self, agent: AgentId, call: &Call) -> Option<Reply> {
        // Only what the world answers by itself (history reads the log: the blocking pool).
        let d = self.0.upgrade()?;
        let result =
            d.try_read(|app| answer::from_world(app.world(), agent, call, crate::app::now()))??;
        if result.is_ok() {
            d.answered(agent);
        }
        Some(result)
    }

    fn act(&self, agent: AgentId, params: ActParams, hung_up: HungUp) -> ActAnswer {
        let Some(d) = self.0.upgrade() else {
            return Box::pin(std::future::ready(Err(GatewayError::new(
                ErrorCode::Internal,
                "the runtime is shutting down",
            ))));
        };
        Box::pin(async move {
            let result = super::act::for_agent(d.clone(), agent, params, hung_up).await;
            d.poke();
            result
        })
    }

    fn subscribe(
        &self,
        agent: AgentId,
        params: SubscribeParams,
    ) -> Result<(Subscribed, Pushes), GatewayError> {
        let d = self.0.upgrade().ok_or_else(|| {
            GatewayError::new(ErrorCode::Internal, "the runtime is shutting down")
        })?;
        d.context.subscribe(&d, agent, params)
    }
}

fn internal(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::Internal, e.to_string())
}

/// What an agent is told of a decision the runtime could not record: `disk_full` when the
/// data disk is full (nothing was recorded; it may try again later), else `internal`.
pub(crate) fn failure(e: RuntimeError) -> GatewayError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if c.downcast_ref::<roster_store::StoreFault>()
            .is_some_and(roster_store::StoreFault::is_disk_full)
        {
            // In the runtime's words only: the store's names the host's paths.
            return GatewayError::new(
                ErrorCode::DiskFull,
                "the runtime's data disk is full: this decision was not recorded; try again \
                 later",
            );
        }
        cause = c.source();
    }
    internal(e)
}

fn answer(d: &Daemon, agent: AgentId, call: Call) -> Reply {
    let call = match call {
        Call::Publish(p) => return d.context.publish(d, agent, p).map(Answer::from),
        other => other,
    };
    if let Call::History(p) = &call {
        // The world only says which team; the page is read from the log after letting go.
        let snapshot = d.snapshot().map_err(internal)?;
        let team = answer::history_team(snapshot.world(), agent)?;
        return answer::team_history(snapshot.log(), team, p).map(Answer::from);
    }
    let read = d
        .read(|app| read_only(&**app.log(), app.world(), agent, &call, crate::app::now()))
        .map_err(internal)?;
    if let Some(read) = read {
        return read;
    }
    let command = d
        .decide(|app| command_of(app, agent, call))
        .map_err(internal)??;
    let actor = Actor::Agent(agent);
    // A hire the rules allow but no container could be made for is refused before it is
    // recorded; the engine is asked after the rules (so a refused agent learns nothing of the
    // host's images) and without holding the ledger.
    if let Command::Hire { spec, disk, .. } = &command {
        if d.read(|app| app.would_accept(&command, &actor))
            .map_err(internal)?
        {
            d.admit(spec, *disk)
                .map_err(|e| GatewayError::new(ErrorCode::BadParams, e.to_string()))?;
        }
    }
    let committed = d
        .decide(|app| {
            // A keyed call carried out already is answered with what it recorded, looked up
            // under the same lock as the decision, so that one key is never carried out twice.
            if let Some((key, digest)) = command.call_key() {
                if let Some(events) = super::keyed::replay(app, agent, key, digest)? {
                    return Ok(Ok(events));
                }
            }
            let committed = app.execute(command, &actor);
            // In force before anything else is decided (a retired agent's streams end).
            if let Ok(events) = &committed {
                d.in_force(events, Some(agent));
            }
            Ok::<_, GatewayError>(committed)
        })
        .map_err(internal)??;
    d.poke();
    match committed {
        Ok(events) => {
            // A hire also answers with what the hirer asked for: the new agent's id.
            let agent = events.iter().find_map(|e| match e.event {
                Event::AgentHired { agent, .. } => Some(agent),
                _ => None,
            });
            Ok(Committed { agent, events }.into())
        }
        Err(RuntimeError::Refused(r)) => {
            Err(GatewayError::new(super::act::refused(&r), r.to_string()))
        }
        Err(e) => Err(failure(e)),
    }
}

/// The command an agent's call asks for. A share proposed to a team that does not exist is
/// refused here, and recorded like any refusal (hence the ledger held mutably).
fn command_of(app: &mut App, agent: AgentId, call: Call) -> Result<Command, GatewayError> {
    Ok(match call {
        Call::Hire(p) => {
            let team = own_team(app.world(), agent)?;
            // A teammate is confined like its hirer (its home disk too) unless it asks for
            // tighter (`decide` refuses looser); its image is the base image unless it names one.
            let hirer = app.world().agent(agent);
            let mut spec = hirer.map_or_else(AgentSpec::base, |a| a.spec.clone());
            let disk = p
                .disk_mib
                .or_else(|| hirer.map(|a| a.disk()))
                .unwrap_or_default();
            spec.image = p.image.unwrap_or_else(ImageRef::base);
            if let Some(runtime) = p.runtime {
                spec.runtime = runtime;
            }
            Command::Hire {
                team,
                name: p.name,
                role: p.role.unwrap_or_default(),
                spec,
                disk,
                grants: p.grants,
            }
        }
        Call::Retire(p) => Command::Retire { agent: p.agent },
        Call::SharePropose(p) => {
            let from = own_team(app.world(), agent)?;
            let Some(to) = app.world().team_named(&p.to).map(|t| t.id) else {
                // A probe for a team that does not exist is recorded like any refusal. Only an
                // agent that may propose its team's shares learns that the team does not
                // exist; any other gets, and leaves on the log, the refusal it would get
                // whichever team it named.
                let action = Action::parse(builtin::SHARE_PROPOSE).map_err(internal)?;
                let own = app
                    .world()
                    .team(from)
                    .map(|t| Resource::team(&t.name))
                    .ok_or_else(|| internal("the agent's team is not in the log"))?;
                let may = app.world().authorize(
                    agent,
                    &action,
                    &own,
                    roster_core::capability::ONE,
                    crate::app::now(),
                );
                if !matches!(may, Authorization::Allow { .. }) {
                    // Decided as for any team (consent comes first: `share::propose`), so the
                    // refusal and its record are the ones a real team would get.
                    return Ok(Command::ProposeShare {
                        from,
                        to: from,
                        topics: p.topics,
                    });
                }
                let why = format!("no team named `{}`", p.to);
                let denial = Command::RecordDenial {
                    agent,
                    action,
                    resource: Resource::team(&p.to),
                    reason: why.clone(),
                };
                app.execute(denial, &Actor::Runtime).map_err(failure)?;
                return Err(GatewayError::new(ErrorCode::Denied, why));
            };
            Command::ProposeShare {
                from,
                to,
                topics: p.topics,
            }
        }
        Call::ShareAccept(p) => Command::AcceptShare { share: p.share },
        Call::ShareClose(p) => Command::CloseShare { share: p.share },
        Call::Delegate(p) => Command::Grant {
            to: p.to,
            capability: p.capability,
            from: p.from,
            key: p.key,
        },
        // Always refused (only operators decide approvals) and recorded by `decide`: the
        // method exists so that an agent's attempt is on the log, not lost as unknown.
        Call::DecideApproval(p) => Command::DecideApproval {
            approval: p.approval,
            approved: p.approved,
            note: p.note,
        },
        // `act` is answered by `Backend::act` (it may wait for a human); `subscribe` by
        // `Backend::subscribe`; the connection never sends them here.
        _ => {
            return Err(GatewayError::new(
                ErrorCode::UnknownMethod,
                "this method is not answered here",
            ));
        }
    })
}

/// The team of the asking agent.
fn own_team(world: &roster_core::world::World, agent: AgentId) -> Result<TeamId, GatewayError> {
    world
        .agent(agent)
        .map(|a| a.team)
        .ok_or_else(|| GatewayError::new(ErrorCode::Denied, "unknown agent"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use roster_core::capability::Capability;
    use roster_core::gateway::HireParams;
    use roster_core::limits::DiskMib;
    use roster_core::name::{Label, Name};
    use roster_store::MemLog;

    use super::*;

    #[test]
    fn a_teammate_gets_its_hirers_home_disk_unless_it_asks_for_one() {
        let mut app = App::over(Arc::new(MemLog::new())).unwrap();
        let op = Actor::Operator(Name::parse("op").unwrap());
        let team = app
            .execute(
                Command::CreateTeam {
                    name: Name::parse("lab").unwrap(),
                },
                &op,
            )
            .unwrap()[0]
            .team;
        let hired = app
            .execute(
                Command::Hire {
                    team,
                    name: Name::parse("lead").unwrap(),
                    role: Label::default(),
                    spec: AgentSpec::base(),
                    disk: DiskMib::new(512).unwrap(),
                    grants: vec![Capability::parse("agent.hire@team:lab").unwrap()],
                },
                &op,
            )
            .unwrap();
        let lead = hired
            .iter()
            .find_map(|e| match e.event {
                Event::AgentHired { agent, .. } => Some(agent),
                _ => None,
            })
            .unwrap();
        let disk_of = |app: &mut App, disk_mib: Option<u32>| {
            let call = Call::Hire(HireParams {
                name: Name::parse("mate").unwrap(),
                role: None,
                image: None,
                runtime: None,
                disk_mib: disk_mib.map(|n| DiskMib::new(n).unwrap()),
                grants: Vec::new(),
            });
            match command_of(app, lead, call).unwrap() {
                Command::Hire { disk, .. } => disk.get(),
                other => panic!("not a hire: {other:?}"),
            }
        };
        assert_eq!(disk_of(&mut app, None), 512);
        assert_eq!(disk_of(&mut app, Some(64)), 64);
        // Asked for more, it is asked as it is: `decide` refuses it, on the record.
        assert_eq!(disk_of(&mut app, Some(2048)), 2048);
    }
}
