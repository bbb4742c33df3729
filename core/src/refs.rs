//! References an operator types: an agent by id or `team/name`, a team by name or id, a grant,
//! share or approval by id. Parsed where they are typed (or arrive on the admin socket, as the
//! same text), resolved against a world when a command runs.
//!
//! An id may be typed whole or as a fragment: its prefix and at least [`MIN_FRAGMENT`] of its
//! 32 hex digits, taken from their start or their end ([`IdRef`]). Ids are UUID v7, whose
//! leading digits are the millisecond they were minted in and are shared by ids minted
//! together; so what roster prints for people is the end (`short()`: `grt_3ae9531e`, the last
//! 8), and a fragment names every id that starts *or* ends with it. It resolves only if exactly
//! one id of the world matches.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::id::{AgentId, TeamId, TypedId};
use crate::name::Name;
use crate::world::{Agent, Team, World};

/// A reference that does not parse, or names nothing in the world it is resolved against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Not an id, not `team/name`, or a part that is not a valid name.
    #[error("{0}")]
    Malformed(String),
    /// No agent has this id.
    #[error("there is no agent {0}")]
    NoAgent(AgentId),
    /// No team has this id.
    #[error("there is no team {0}")]
    NoTeamId(TeamId),
    /// No team has this name.
    #[error("there is no team `{0}`")]
    NoTeam(Name),
    /// The team has no agent of this name.
    #[error("there is no agent `{name}` in team `{team}`")]
    NoAgentNamed {
        /// The team.
        team: Name,
        /// The name looked for.
        name: Name,
    },
    /// No id of this kind starts or ends with the fragment.
    #[error("there is no {kind} matching {fragment}")]
    NoMatch {
        /// What the id names (`grant`).
        kind: &'static str,
        /// The fragment as typed, prefix included.
        fragment: String,
    },
    /// Several ids of this kind start or end with the fragment.
    #[error("{}", ambiguous(kind, fragment, candidates))]
    Ambiguous {
        /// What the ids name (`grant`).
        kind: &'static str,
        /// The fragment as typed, prefix included.
        fragment: String,
        /// Every id it matches, oldest first: short forms, or whole ids if two short forms
        /// are the same (the message lists at most [`MAX_LISTED`]).
        candidates: Vec<String>,
    },
}

/// The fewest hex digits a fragment of an id may have.
pub const MIN_FRAGMENT: usize = 4;

/// The most candidates an [`RefError::Ambiguous`] message lists; the rest are counted.
pub const MAX_LISTED: usize = 10;

/// The message of [`RefError::Ambiguous`].
fn ambiguous(kind: &str, fragment: &str, candidates: &[String]) -> String {
    let listed = candidates
        .iter()
        .take(MAX_LISTED)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let more = match candidates.len().saturating_sub(MAX_LISTED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "{fragment} is ambiguous: {} {kind}s match it ({listed}{more}); type more of its digits",
        candidates.len()
    )
}

/// A run of hex digits of an id of kind `T`, as typed after its prefix (`3ae9531e` of
/// `grt_3ae9531e`): [`MIN_FRAGMENT`] to 31 of them, kept lowercase. It matches the ids whose 32
/// hex digits start or end with it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdFragment<T> {
    hex: String,
    kind: PhantomData<fn() -> T>,
}

impl<T: TypedId> IdFragment<T> {
    /// The hex digits, lowercase, without the prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Does `id` start or end with this fragment?
    pub fn matches(&self, id: &T) -> bool {
        let hex = id.hex();
        hex.starts_with(&self.hex) || hex.ends_with(&self.hex)
    }

    /// The one of `candidates` this fragment matches; none or several is an error, the latter
    /// listing them.
    pub fn resolve(&self, candidates: impl IntoIterator<Item = T>) -> Result<T, RefError> {
        let mut found: Vec<T> = candidates.into_iter().filter(|c| self.matches(c)).collect();
        found.sort_unstable();
        found.dedup();
        match found.as_slice() {
            [] => Err(RefError::NoMatch {
                kind: T::KIND,
                fragment: self.to_string(),
            }),
            [one] => Ok(*one),
            many => {
                let mut shorts: Vec<String> = many.iter().map(TypedId::short).collect();
                let mut distinct = shorts.clone();
                distinct.sort_unstable();
                distinct.dedup();
                // Two that end alike would be listed alike: then list them whole.
                if distinct.len() < shorts.len() {
                    shorts = many.iter().map(ToString::to_string).collect();
                }
                Err(RefError::Ambiguous {
                    kind: T::KIND,
                    fragment: self.to_string(),
                    candidates: shorts,
                })
            }
        }
    }
}

impl<T: TypedId> fmt::Display for IdFragment<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", T::PREFIX, self.hex)
    }
}

impl<T: TypedId> fmt::Debug for IdFragment<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An id of kind `T` as typed: whole (`grt_` and 32 hex digits), or a fragment (`grt_` and
/// [`MIN_FRAGMENT`] to 31 of them, from the start or the end, like the short form printed).
/// Hex digits may be upper or lower case; the prefix is lowercase.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String", bound = "T: TypedId")]
pub enum IdRef<T> {
    /// The whole id.
    Id(T),
    /// A fragment of it.
    Fragment(IdFragment<T>),
}

impl<T: TypedId> IdRef<T> {
    /// Parses a whole id or a fragment of one; anything else is [`RefError::Malformed`],
    /// saying what is expected.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        let malformed = || {
            let shown: String = s.chars().take(80).collect();
            RefError::Malformed(format!(
                "`{shown}` is not a valid {kind} id: expected `{prefix}` and its 32 hex digits, or \
                 `{prefix}` and at least {MIN_FRAGMENT} of them from its start or end (like the \
                 short form printed: `{prefix}` and the last 8)",
                kind = T::KIND,
                prefix = T::PREFIX,
            ))
        };
        let hex = s.strip_prefix(T::PREFIX).ok_or_else(malformed)?;
        if !(MIN_FRAGMENT..=32).contains(&hex.len()) || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(malformed());
        }
        if hex.len() == 32 {
            return s.parse().map(IdRef::Id).map_err(|_| malformed());
        }
        Ok(IdRef::Fragment(IdFragment {
            hex: hex.to_ascii_lowercase(),
            kind: PhantomData,
        }))
    }

    /// The id this names among `candidates`: a whole id is itself, whether or not it is among
    /// them (the command it is for says if it names nothing, as it always has); a fragment is
    /// the one candidate that starts or ends with it ([`IdFragment::resolve`]).
    pub fn resolve(&self, candidates: impl IntoIterator<Item = T>) -> Result<T, RefError> {
        match self {
            IdRef::Id(id) => Ok(*id),
            IdRef::Fragment(f) => f.resolve(candidates),
        }
    }
}

impl<T: TypedId> From<T> for IdRef<T> {
    fn from(id: T) -> Self {
        IdRef::Id(id)
    }
}

impl<T: TypedId> fmt::Display for IdRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdRef::Id(id) => write!(f, "{id}"),
            IdRef::Fragment(frag) => write!(f, "{frag}"),
        }
    }
}

impl<T: TypedId> fmt::Debug for IdRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<T: TypedId> std::str::FromStr for IdRef<T> {
    type Err = RefError;
    fn from_str(s: &str) -> Result<Self, RefError> {
        Self::parse(s)
    }
}

impl<T: TypedId> TryFrom<String> for IdRef<T> {
    type Error = RefError;
    fn try_from(s: String) -> Result<Self, RefError> {
        Self::parse(&s)
    }
}

impl<T: TypedId> From<IdRef<T>> for String {
    fn from(r: IdRef<T>) -> String {
        r.to_string()
    }
}

/// An agent as typed: `agt_…` (whole, or a fragment of its id) or `team/name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AgentRef {
    /// By id.
    Id(AgentId),
    /// By a fragment of its id ([`IdRef`]).
    Fragment(IdFragment<AgentId>),
    /// By team and name.
    Named(Name, Name),
}

impl AgentRef {
    /// Parses `agt_…` (a whole id, or a fragment of one) or `team/name`.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        let malformed = |e: &dyn std::fmt::Display| RefError::Malformed(e.to_string());
        if s.starts_with(AgentId::PREFIX) {
            return Ok(match IdRef::parse(s)? {
                IdRef::Id(id) => AgentRef::Id(id),
                IdRef::Fragment(f) => AgentRef::Fragment(f),
            });
        }
        let Some((team, name)) = s.split_once('/') else {
            return Err(RefError::Malformed(format!(
                "`{s}` is not an agent: write its id (agt_…) or team/name"
            )));
        };
        let team = Name::parse_as(team, "team name").map_err(|e| malformed(&e))?;
        let name = Name::parse_as(name, "agent name").map_err(|e| malformed(&e))?;
        Ok(AgentRef::Named(team, name))
    }

    /// Finds the agent in `world`.
    pub fn resolve<'w>(&self, world: &'w World) -> Result<&'w Agent, RefError> {
        match self {
            AgentRef::Id(id) => world.agent(*id).ok_or(RefError::NoAgent(*id)),
            AgentRef::Fragment(f) => {
                let id = f.resolve(world.agents().map(|a| a.id))?;
                world.agent(id).ok_or(RefError::NoAgent(id))
            }
            AgentRef::Named(team, name) => {
                let t = world
                    .team_named(team)
                    .ok_or_else(|| RefError::NoTeam(team.clone()))?;
                world
                    .agent_named(t.id, name)
                    .ok_or_else(|| RefError::NoAgentNamed {
                        team: team.clone(),
                        name: name.clone(),
                    })
            }
        }
    }
}

/// A team as typed: its name or `team_…` (whole, or a fragment of its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum TeamRef {
    /// By id.
    Id(TeamId),
    /// By a fragment of its id ([`IdRef`]).
    Fragment(IdFragment<TeamId>),
    /// By name.
    Named(Name),
}

impl TeamRef {
    /// Parses a name or `team_…` (a whole id, or a fragment of one). A name never holds `_`,
    /// so text that starts with `team_` is always an id, never a name.
    pub fn parse(s: &str) -> Result<Self, RefError> {
        if s.starts_with(TeamId::PREFIX) {
            return Ok(match IdRef::parse(s)? {
                IdRef::Id(id) => TeamRef::Id(id),
                IdRef::Fragment(f) => TeamRef::Fragment(f),
            });
        }
        Name::parse_as(s, "team name")
            .map(TeamRef::Named)
            .map_err(|e| RefError::Malformed(e.to_string()))
    }

    /// Finds the team in `world`.
    pub fn resolve<'w>(&self, world: &'w World) -> Result<&'w Team, RefError> {
        match self {
            TeamRef::Id(id) => world.team(*id).ok_or(RefError::NoTeamId(*id)),
            TeamRef::Fragment(f) => {
                let id = f.resolve(world.teams().map(|t| t.id))?;
                world.team(id).ok_or(RefError::NoTeamId(id))
            }
            TeamRef::Named(n) => world
                .team_named(n)
                .ok_or_else(|| RefError::NoTeam(n.clone())),
        }
    }
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentRef::Id(id) => write!(f, "{id}"),
            AgentRef::Fragment(frag) => write!(f, "{frag}"),
            AgentRef::Named(team, name) => write!(f, "{team}/{name}"),
        }
    }
}

impl std::fmt::Display for TeamRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TeamRef::Id(id) => write!(f, "{id}"),
            TeamRef::Fragment(frag) => write!(f, "{frag}"),
            TeamRef::Named(name) => write!(f, "{name}"),
        }
    }
}

macro_rules! text_ref {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = RefError;
            fn from_str(s: &str) -> Result<Self, RefError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = RefError;
            fn try_from(s: String) -> Result<Self, RefError> {
                Self::parse(&s)
            }
        }

        impl From<$t> for String {
            fn from(r: $t) -> String {
                r.to_string()
            }
        }
    )*};
}

text_ref!(AgentRef, TeamRef);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_as_text() {
        let id = AgentId::mint(
            crate::time::Timestamp::from_millis(1),
            &mut crate::id::CountingEntropy::new(7),
        )
        .to_string();
        for text in ["dev/alice", id.as_str()] {
            let a = AgentRef::parse(text).unwrap();
            assert_eq!(a.to_string(), text);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<AgentRef>(&json).unwrap(), a);
        }
        assert_eq!(TeamRef::parse("dev").unwrap().to_string(), "dev");
    }

    use crate::id::{ApprovalId, GrantId, ShareId};

    fn grant(hex: u128) -> GrantId {
        GrantId::from_uuid(uuid::Uuid::from_u128(hex))
    }

    fn frag<T: TypedId>(s: &str) -> IdRef<T> {
        let r = IdRef::parse(s).unwrap();
        assert!(matches!(r, IdRef::Fragment(_)), "{s} is not a fragment");
        r
    }

    fn malformed<T: TypedId>(s: &str) -> String {
        match IdRef::<T>::parse(s) {
            Err(RefError::Malformed(why)) => why,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn an_id_parses_whole_or_as_a_fragment_of_four_to_thirty_one_hex_digits() {
        let whole = "grt_0190f2a0c3d47a1b9e2f3a4b5c6d7e8f";
        assert_eq!(
            IdRef::<GrantId>::parse(whole).unwrap(),
            IdRef::Id(whole.parse().unwrap())
        );
        // Upper case hex is the same id; the whole form prints as it always has.
        assert_eq!(
            IdRef::<GrantId>::parse("grt_0190F2A0C3D47A1B9E2F3A4B5C6D7E8F")
                .unwrap()
                .to_string(),
            whole
        );
        for text in ["grt_3ae9", "grt_3ae9531e", &whole[..35]] {
            assert_eq!(frag::<GrantId>(text).to_string(), text);
        }
        assert_eq!(frag::<GrantId>("grt_3AE9531E").to_string(), "grt_3ae9531e");
        // Too short, too long, not hex, no prefix, another kind's prefix.
        for bad in [
            "grt_",
            "grt_3ae",
            "grt_0190f2a0c3d47a1b9e2f3a4b5c6d7e8f0",
            "grt_3ae9-531e",
            "grt_xyzw",
            "3ae9531e",
            "GRT_3ae9531e",
            "agt_3ae9531e",
        ] {
            let why = malformed::<GrantId>(bad);
            assert!(
                why.contains("not a valid grant id") && why.contains("`grt_`") && why.contains('4'),
                "{bad}: {why}"
            );
        }
        assert!(malformed::<ShareId>("grt_3ae9531e").contains("not a valid share id"));
        assert!(malformed::<ApprovalId>("apr_12").contains("`apr_`"));
    }

    #[test]
    fn a_fragment_resolves_to_the_one_id_that_starts_or_ends_with_it() {
        let a = grant(0x0190_f2a0_c3d4_7a1b_9e2f_3a4b_5c6d_7e8f);
        let b = grant(0x0190_f2a0_c3d4_7a1b_9e2f_0000_0000_1111);
        let c = grant(0x0190_f2a1_0000_7000_8000_0000_3ae9_531e);
        let all = [a, b, c];
        // Whole: itself, whether or not it is among them (the command says if it is not).
        assert_eq!(IdRef::from(a).resolve(all), Ok(a));
        assert_eq!(IdRef::from(a).resolve([]), Ok(a));
        // By its start, by its end (the short form printed), in any case.
        assert_eq!(frag("grt_0190f2a1").resolve(all), Ok(c));
        assert_eq!(frag(&c.short()).resolve(all), Ok(c));
        assert_eq!(frag("grt_531E").resolve(all), Ok(c));
        assert_eq!(frag("grt_7e8f").resolve(all), Ok(a));
        // The same id offered twice is one match.
        assert_eq!(frag("grt_7e8f").resolve([a, a]), Ok(a));
        // None.
        let none = frag::<GrantId>("grt_dead").resolve(all).unwrap_err();
        assert_eq!(
            none,
            RefError::NoMatch {
                kind: "grant",
                fragment: "grt_dead".into()
            }
        );
        assert_eq!(none.to_string(), "there is no grant matching grt_dead");
        // Several: refused, each listed by its short form.
        let several = frag::<GrantId>("grt_0190").resolve(all).unwrap_err();
        let RefError::Ambiguous { candidates, .. } = &several else {
            panic!("{several:?}")
        };
        // Oldest first (`b` sorts before `a`).
        let shorts: Vec<String> = [b, a, c].iter().map(|g| g.short()).collect();
        assert_eq!(candidates, &shorts);
        let text = several.to_string();
        assert!(
            text.starts_with("grt_0190 is ambiguous: 3 grants match it"),
            "{text}"
        );
        assert!(shorts.iter().all(|s| text.contains(s.as_str())), "{text}");
        assert!(!text.contains("more)"), "{text}");
    }

    #[test]
    fn an_ambiguous_fragment_lists_ten_candidates_then_counts_the_rest() {
        let many: Vec<GrantId> = (0..15u128)
            .map(|i| grant(0x0190_f2a0_c3d4_7000_8000_0000_0000_0000 + i))
            .collect();
        let e = frag::<GrantId>("grt_0190f2a0")
            .resolve(many.clone())
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("15 grants match it"), "{text}");
        assert!(text.contains("and 5 more"), "{text}");
        for (i, g) in many.iter().enumerate() {
            assert_eq!(text.contains(&g.short()), i < MAX_LISTED, "{i}: {text}");
        }
    }

    #[test]
    fn candidates_that_end_alike_are_listed_whole() {
        // Two ids minted from the same counter at different times share their last 8 digits.
        let t = |ms| crate::time::Timestamp::from_millis(ms);
        let a = GrantId::mint(t(1_000), &mut crate::id::CountingEntropy::new(3));
        let b = GrantId::mint(t(2_000), &mut crate::id::CountingEntropy::new(3));
        assert_eq!(a.short(), b.short());
        let e = IdRef::<GrantId>::parse(&a.short())
            .unwrap()
            .resolve([a, b])
            .unwrap_err();
        let RefError::Ambiguous { candidates, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(candidates, &vec![a.to_string(), b.to_string()]);
    }

    #[test]
    fn id_references_travel_as_their_text() {
        let whole: IdRef<GrantId> = grant(0x0190_f2a0_c3d4_7a1b_9e2f_3a4b_5c6d_7e8f).into();
        for r in [whole, frag("grt_3ae9531e"), frag("grt_0190")] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{r}\""));
            assert_eq!(serde_json::from_str::<IdRef<GrantId>>(&json).unwrap(), r);
        }
        for bad in ["\"grt_abc\"", "\"agt_3ae9531e\"", "\"grt_nothex\"", "7"] {
            assert!(
                serde_json::from_str::<IdRef<GrantId>>(bad).is_err(),
                "{bad} was taken"
            );
        }
    }

    /// A world of teams `dev` and `ops`, `dev` with agents `alice` and `bob` (ids minted with a
    /// counter in the same millisecond: they share their leading digits).
    fn world() -> (World, [TeamId; 2], [AgentId; 2]) {
        use crate::envelope::{Body, Envelope, Hash};
        use crate::event::{AgentSpec, Event, SCHEMA_VERSION};
        use crate::id::EventId;
        use crate::name::Label;
        let now = crate::time::Timestamp::from_millis(1_700_000_000_000);
        let mut e = crate::id::CountingEntropy::new(40);
        let teams = [TeamId::mint(now, &mut e), TeamId::mint(now, &mut e)];
        let agents = [AgentId::mint(now, &mut e), AgentId::mint(now, &mut e)];
        let n = |s: &str| Name::parse(s).unwrap();
        let hired = |agent, name: &str| Event::AgentHired {
            agent,
            name: n(name),
            role: Label::parse("").unwrap(),
            parent: None,
            spec: AgentSpec::base(),
        };
        let events = [
            (teams[0], 1, Event::TeamCreated { name: n("dev") }),
            (teams[1], 1, Event::TeamCreated { name: n("ops") }),
            (teams[0], 2, hired(agents[0], "alice")),
            (teams[0], 3, hired(agents[1], "bob")),
        ];
        let mut world = World::new();
        let mut prev = Hash::ZERO;
        for (seq, (team, version, event)) in events.into_iter().enumerate() {
            let body = Body {
                seq: seq as u64,
                id: EventId::mint(now, &mut e),
                team,
                version,
                at: now,
                actor: crate::actor::Actor::Runtime,
                causation: None,
                schema: SCHEMA_VERSION,
                event,
            };
            let env = Envelope::seal(body, prev);
            prev = env.hash();
            world.apply(&env).unwrap();
        }
        (world, teams, agents)
    }

    #[test]
    fn agents_and_teams_are_found_by_a_fragment_of_their_id() {
        let (world, teams, agents) = world();
        let whole = agents[1].to_string();
        assert_eq!(AgentRef::parse(&whole).unwrap(), AgentRef::Id(agents[1]));
        let short = agents[1].short();
        let by_end = AgentRef::parse(&short).unwrap();
        assert!(matches!(by_end, AgentRef::Fragment(_)), "{by_end:?}");
        assert_eq!(by_end.to_string(), short);
        assert_eq!(by_end.resolve(&world).unwrap().id, agents[1]);
        let json = serde_json::to_string(&by_end).unwrap();
        assert_eq!(serde_json::from_str::<AgentRef>(&json).unwrap(), by_end);
        // Both agents start alike: their common start names neither.
        let common = format!("agt_{}", &agents[0].hex()[..8]);
        let e = AgentRef::parse(&common)
            .unwrap()
            .resolve(&world)
            .unwrap_err();
        assert!(
            matches!(&e, RefError::Ambiguous { candidates, .. } if candidates.len() == 2),
            "{e:?}"
        );
        // A team's fragment matches teams only (the agents start alike too).
        let t = TeamRef::parse(&teams[1].short()).unwrap();
        assert!(matches!(t, TeamRef::Fragment(_)), "{t:?}");
        assert_eq!(t.resolve(&world).unwrap().id, teams[1]);
        assert_eq!(
            TeamRef::parse(&teams[0].to_string()).unwrap(),
            TeamRef::Id(teams[0])
        );
        assert_eq!(
            TeamRef::parse("team_0000")
                .unwrap()
                .resolve(&world)
                .unwrap_err(),
            RefError::NoMatch {
                kind: "team",
                fragment: "team_0000".into()
            }
        );
        // A name never holds `_`: `team_…` that is not hex is no name either.
        assert!(matches!(
            TeamRef::parse("team_dev"),
            Err(RefError::Malformed(why)) if why.contains("not a valid team id")
        ));
        assert!(AgentRef::parse("agt_12").is_err());
    }

    #[test]
    fn malformed_references_are_refused_on_the_wire_too() {
        assert!(serde_json::from_str::<AgentRef>("\"nobody\"").is_err());
        assert!(serde_json::from_str::<AgentRef>("\"dev/Not A Name\"").is_err());
        assert!(serde_json::from_str::<TeamRef>("\"../etc\"").is_err());
    }
}
