//! What a tool provider receives: the `ActionPerformed` a decision recorded, the agent's
//! arguments, who asked — and nothing else (no other grant of the agent, no approval it did not
//! use).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{hire, name, operator, resource, Harness};
use roster_core::actor::Actor;
use roster_core::capability::Amount;
use roster_core::command::Command;
use roster_core::event::Event;
use roster_core::tool::ToolCall;

#[test]
fn a_tool_call_is_exactly_the_performed_action() {
    let mut h = Harness::new();
    let team = h.team("research");
    let lead = h.hire_as(
        &operator(),
        team,
        "lead",
        &[
            "agent.hire@team:research",
            "email.*@mailbox:*,budget=10",
            "spend.usd@*,budget=100",
        ],
    );
    let scout_envs = h.ok(
        hire(
            team,
            "scout",
            vec![common::cap("email.send@mailbox:alice,budget=5")],
        ),
        &Actor::Agent(lead),
    );
    let scout = common::hired_agent(&scout_envs).unwrap();
    let envs = h.ok(
        Command::Act {
            action: common::action("email.send"),
            resource: resource("mailbox:alice"),
            amount: Amount::new(2).unwrap(),
            args: Default::default(),
            approval: None,
            key: None,
        },
        &Actor::Agent(scout),
    );
    let Event::ActionPerformed { chain, .. } = &envs[0].body().event else {
        panic!("not performed: {envs:?}");
    };
    let args = BTreeMap::from([(name("subject"), "hello".to_owned())]);
    let call = ToolCall::of(&envs[0], &h.world, args.clone()).unwrap();
    assert_eq!(call.performed, envs[0].body().id);
    assert_eq!(call.action.as_str(), "email.send");
    assert_eq!(call.resource.to_string(), "mailbox:alice");
    assert_eq!(call.amount.get(), 2);
    assert_eq!(call.args, args);
    assert_eq!(
        (
            call.agent.id,
            call.agent.name.as_str(),
            call.agent.team.as_str()
        ),
        (scout, "scout", "research")
    );
    assert_eq!(&call.chain, chain);
    assert_eq!(
        call.chain.len(),
        2,
        "the scout's grant and the lead's it derives from"
    );
    assert_eq!(call.approval, None);
    // The JSON a provider reads has these fields and no others, and reads back the same.
    let json = serde_json::to_value(&call).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "action",
            "agent",
            "amount",
            "approval",
            "args",
            "chain",
            "performed",
            "resource"
        ]
    );
    assert_eq!(serde_json::from_value::<ToolCall>(json).unwrap(), call);
    // Only an ActionPerformed makes a call.
    let hired = scout_envs
        .iter()
        .find(|e| matches!(e.body().event, Event::AgentHired { .. }))
        .unwrap();
    assert!(ToolCall::of(hired, &h.world, BTreeMap::new()).is_none());
}
