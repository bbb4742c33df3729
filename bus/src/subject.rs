//! Every subject and stream name roster uses on NATS, built only from validated core types, so
//! no agent-supplied string can put a `.`, `*`, `>` or whitespace where it would change the
//! subject's meaning ([`Name`]s are `[a-z0-9-]`, [`Topic`] segments are names, [`Action`]
//! segments are `[a-z0-9_-]`).
//!
//! | subject | what |
//! |---|---|
//! | `NS.events.TEAM.KIND` | every committed event of team `TEAM` (its name), kind as in `Event::kind` |
//! | `NS.ctx.TEAM.A.B` | a context message for the members of `TEAM` on topic `a/b` |
//! | `NS.tool.ACTION` | request/reply to the tool provider of `ACTION` (`email.send`) |
//!
//! The JetStream stream of events is `NS_events` (with `-` in the namespace written `_`).

use roster_core::capability::Action;
use roster_core::name::Name;
use roster_core::topic::{Topic, TopicPattern};

/// The subject an event of `team` of kind `kind` is published on.
pub fn event(ns: &Name, team: &Name, kind: &str) -> String {
    format!("{ns}.events.{team}.{kind}")
}

/// Every event subject of the namespace: what the stream captures.
pub fn all_events(ns: &Name) -> String {
    format!("{ns}.events.>")
}

/// The filter for events of `team` (any when `None`) of `kind` (any when `None`).
pub fn events_filter(ns: &Name, team: Option<&Name>, kind: Option<&str>) -> String {
    match (team, kind) {
        (None, None) => all_events(ns),
        (team, kind) => format!(
            "{ns}.events.{}.{}",
            team.map_or("*", Name::as_str),
            kind.unwrap_or("*")
        ),
    }
}

/// The JetStream stream that keeps the namespace's events: `NS_events`.
pub fn events_stream(ns: &Name) -> String {
    format!("{}_events", ns.as_str().replace('-', "_"))
}

/// The subject a context message on `topic` for the members of `team` travels on.
pub fn ctx(ns: &Name, team: &Name, topic: &Topic) -> String {
    format!("{ns}.ctx.{team}.{}", topic.as_str().replace('/', "."))
}

/// The subject filter for `team`'s messages whose topic matches `pattern` (`*` is one segment,
/// a final `**` is `>`).
pub fn ctx_filter(ns: &Name, team: &Name, pattern: &TopicPattern) -> String {
    let segments: Vec<&str> = pattern
        .as_str()
        .split('/')
        .map(|s| if s == "**" { ">" } else { s })
        .collect();
    format!("{ns}.ctx.{team}.{}", segments.join("."))
}

/// Every context subject of `team`.
pub fn ctx_team(ns: &Name, team: &Name) -> String {
    format!("{ns}.ctx.{team}.>")
}

/// The subject of the tool provider for `action`.
pub fn tool(ns: &Name, action: &Action) -> String {
    format!("{ns}.tool.{action}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s).unwrap()
    }

    #[test]
    fn subjects() {
        let ns = name("roster");
        let t = name("research");
        assert_eq!(
            event(&ns, &t, "AgentHired"),
            "roster.events.research.AgentHired"
        );
        assert_eq!(all_events(&ns), "roster.events.>");
        assert_eq!(
            events_filter(&ns, Some(&t), None),
            "roster.events.research.*"
        );
        assert_eq!(
            events_filter(&ns, None, Some("AgentHired")),
            "roster.events.*.AgentHired"
        );
        assert_eq!(events_stream(&name("my-ns")), "my_ns_events");
        let topic = Topic::parse("findings/daily").unwrap();
        assert_eq!(ctx(&ns, &t, &topic), "roster.ctx.research.findings.daily");
        let p = TopicPattern::parse("findings/*/x/**").unwrap();
        assert_eq!(
            ctx_filter(&ns, &t, &p),
            "roster.ctx.research.findings.*.x.>"
        );
        let a = Action::parse("email.send").unwrap();
        assert_eq!(tool(&ns, &a), "roster.tool.email.send");
    }
}
