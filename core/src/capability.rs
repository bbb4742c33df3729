//! Capabilities: `ACTION@RESOURCE[,constraint]...`, their matching and their attenuation rule.
//!
//! Text syntax (see DESIGN.md, "Permissions"):
//! - ACTION: `.`-separated segments of `[a-z0-9_-]`; a final `*` matches one or more further
//!   segments (`email.*` matches `email.send` and `email.send.bulk`, not `email`).
//! - RESOURCE: an optional `kind:` prefix, then `/`-separated segments; `*` matches exactly one
//!   segment, a final `**` matches one or more. A pattern without a kind matches resources of any
//!   kind (`spend.usd@*` matches `usd` and `vendor:acme`; `**` matches everything).
//! - Constraints: `budget=N`, `approval`, `expires=RFC3339`, each at most once.
//!
//! [`covers`] is the only rule for inheritance and delegation: whatever the child matches, the
//! parent matches, and the child keeps every limit the parent has.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// The longest capability text accepted.
pub const MAX_CAPABILITY_LEN: usize = 1024;
const MAX_SEGMENTS: usize = 32;

/// Why a capability, action or resource text was refused. The message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// No `@` between action and resource.
    #[error("`{input}`: a capability is ACTION@RESOURCE (like email.send@mailbox:alice), but there is no `@`")]
    MissingAt {
        /// The text given.
        input: String,
    },
    /// The action part is malformed.
    #[error("`{input}`: bad action `{action}`: {why}")]
    BadAction {
        /// The text given.
        input: String,
        /// The action part.
        action: String,
        /// What is wrong.
        why: String,
    },
    /// The resource part is malformed.
    #[error("`{input}`: bad resource `{resource}`: {why}")]
    BadResource {
        /// The text given.
        input: String,
        /// The resource part.
        resource: String,
        /// What is wrong.
        why: String,
    },
    /// A constraint is unknown, malformed or repeated.
    #[error("`{input}`: bad constraint `{constraint}`: {why}")]
    BadConstraint {
        /// The text given.
        input: String,
        /// The constraint.
        constraint: String,
        /// What is wrong.
        why: String,
    },
    /// A requested action or resource is longer than allowed.
    #[error("a requested {what} is at most {max} bytes; this one is {len}")]
    RequestTooLong {
        /// "action" or "resource".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Longer than [`MAX_CAPABILITY_LEN`], as given or as printed in canonical form.
    #[error("a capability is at most {MAX_CAPABILITY_LEN} bytes; this one is {len}")]
    TooLong {
        /// Its length in bytes (of the canonical form when only that is over the limit).
        len: usize,
    },
}

fn action_segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn resource_segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@' | b'~')
        })
}

fn kind_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// One segment of a pattern.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Seg {
    Lit(String),
    /// `*`: exactly one segment (resources only; in actions only as the final segment).
    One,
    /// Final `**` in resources, final `*` in actions: one or more segments.
    Rest,
}

fn parse_action_segments(text: &str, allow_wild: bool) -> Result<Vec<Seg>, String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > MAX_SEGMENTS {
        return Err(format!("at most {MAX_SEGMENTS} segments"));
    }
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| match *p {
            "*" if !allow_wild => Err("a requested action cannot contain `*`".to_string()),
            "*" if i == last => Ok(Seg::Rest),
            "*" => Err("`*` is allowed only as the last segment (like email.*)".to_string()),
            p if action_segment_ok(p) => Ok(Seg::Lit(p.to_owned())),
            "" => Err("empty segment (two dots in a row, or a dot at an end)".to_string()),
            p => Err(format!(
                "segment `{p}` may hold only lowercase letters, digits, `_` and `-`"
            )),
        })
        .collect()
}

fn parse_resource(text: &str, allow_wild: bool) -> Result<(Option<String>, Vec<Seg>), String> {
    if text.is_empty() {
        return Err("it is empty".into());
    }
    let (kind, path) = match text.split_once(':') {
        Some((k, rest)) => {
            if !kind_ok(k) {
                return Err(format!(
                    "kind `{k}` must start with a lowercase letter and hold only lowercase letters, digits and `-`"
                ));
            }
            (Some(k.to_owned()), rest)
        }
        None => (None, text),
    };
    if path.is_empty() {
        return Err("nothing after the kind".into());
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > MAX_SEGMENTS {
        return Err(format!("at most {MAX_SEGMENTS} segments"));
    }
    let last = parts.len() - 1;
    let segs = parts
        .iter()
        .enumerate()
        .map(|(i, p)| match *p {
            "*" | "**" if !allow_wild => {
                Err("a requested resource cannot contain `*` or `**`".to_string())
            }
            "*" => Ok(Seg::One),
            "**" if i == last => Ok(Seg::Rest),
            "**" => Err("`**` is allowed only as the last segment".to_string()),
            "" => Err("empty segment (two slashes in a row, or a slash at an end)".to_string()),
            p if resource_segment_ok(p) => Ok(Seg::Lit(p.to_owned())),
            p if p.contains('*') => Err(format!(
                "segment `{p}`: `*` must be a whole segment, not part of one"
            )),
            p => Err(format!(
                "segment `{p}` may hold only letters, digits and . _ - + @ ~ (and not be . or ..)"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((kind, segs))
}

fn write_segs(f: &mut fmt::Formatter<'_>, segs: &[Seg], sep: char, rest: &str) -> fmt::Result {
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            write!(f, "{sep}")?;
        }
        match s {
            Seg::Lit(l) => f.write_str(l)?,
            Seg::One => f.write_str("*")?,
            Seg::Rest => f.write_str(rest)?,
        }
    }
    Ok(())
}

/// Does the segment pattern `p` match the literal segments `x`?
fn segs_match<'a>(p: &[Seg], mut x: impl Iterator<Item = &'a str>) -> bool {
    // Allocation-free: authorization calls this for every grant an agent holds.
    for seg in p {
        match (seg, x.next()) {
            (_, None) => return false,
            (Seg::Rest, Some(_)) => return true,
            (Seg::One, Some(_)) => {}
            (Seg::Lit(l), Some(s)) if l == s => {}
            (Seg::Lit(_), Some(_)) => return false,
        }
    }
    x.next().is_none()
}

/// Is every sequence matched by `c` also matched by `p`?
fn segs_cover(p: &[Seg], c: &[Seg]) -> bool {
    match (p.first(), c.first()) {
        (None, None) => true,
        // `Rest` matches one or more; `c` non-empty matches only non-empty sequences.
        (Some(Seg::Rest), Some(_)) => true,
        (Some(Seg::One), Some(Seg::One | Seg::Lit(_))) => segs_cover(&p[1..], &c[1..]),
        (Some(Seg::Lit(a)), Some(Seg::Lit(b))) => a == b && segs_cover(&p[1..], &c[1..]),
        _ => false,
    }
}

/// A concrete action an agent asks to perform (`email.send`). No wildcards.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Action(String);

impl Action {
    /// The longest requested action, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Parses a concrete action.
    pub fn parse(s: &str) -> Result<Self, CapabilityError> {
        if s.len() > Self::MAX_LEN {
            return Err(CapabilityError::RequestTooLong {
                what: "action",
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        parse_action_segments(s, false).map_err(|why| CapabilityError::BadAction {
            input: s.to_owned(),
            action: s.to_owned(),
            why,
        })?;
        Ok(Self(s.to_owned()))
    }

    /// The action text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn segments(&self) -> std::str::Split<'_, char> {
        self.0.split('.')
    }
}

/// A concrete resource an action is performed on (`mailbox:alice`, `repo:acme/api`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Resource(String);

impl Resource {
    /// The longest requested resource, in bytes (every refusal of an agent records it).
    pub const MAX_LEN: usize = 512;

    /// Parses a concrete resource.
    pub fn parse(s: &str) -> Result<Self, CapabilityError> {
        if s.len() > Self::MAX_LEN {
            return Err(CapabilityError::RequestTooLong {
                what: "resource",
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        parse_resource(s, false).map_err(|why| CapabilityError::BadResource {
            input: s.to_owned(),
            resource: s.to_owned(),
            why,
        })?;
        Ok(Self(s.to_owned()))
    }

    /// The resource of a team, as checked by `agent.hire@team:T` and friends.
    pub fn team(name: &crate::name::Name) -> Self {
        Self(format!("team:{name}"))
    }

    /// The resource naming one entity by its id (`grant:grt_…`); ids print as letters, digits
    /// and `_` only, so the result is always a valid resource.
    pub fn entity(kind: &'static str, id: impl fmt::Display) -> Self {
        Self(format!("{kind}:{id}"))
    }

    /// The resource text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn split(&self) -> (Option<&str>, std::str::Split<'_, char>) {
        match self.0.split_once(':') {
            Some((k, p)) => (Some(k), p.split('/')),
            None => (None, self.0.split('/')),
        }
    }
}

macro_rules! text_impls {
    ($t:ty) => {
        impl FromStr for $t {
            type Err = CapabilityError;
            fn from_str(s: &str) -> Result<Self, CapabilityError> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = CapabilityError;
            fn try_from(s: String) -> Result<Self, CapabilityError> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.to_string())
            }
        }
    };
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
text_impls!(Action);
text_impls!(Resource);

/// The limits a capability carries besides its patterns.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Constraints {
    /// Cap on the summed amount of all uses through this grant and every grant derived from it.
    pub budget: Option<u64>,
    /// A human must approve each use.
    pub approval: bool,
    /// The capability is void from this instant on.
    pub expires: Option<Timestamp>,
}

/// `ACTION@RESOURCE[,budget=N][,approval][,expires=T]`, parsed and validated.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Capability {
    action: Vec<Seg>,
    kind: Option<String>,
    resource: Vec<Seg>,
    constraints: Constraints,
}

impl Capability {
    /// Parses capability text, saying exactly what is wrong if it is not one.
    pub fn parse(input: &str) -> Result<Self, CapabilityError> {
        if input.len() > MAX_CAPABILITY_LEN {
            return Err(CapabilityError::TooLong { len: input.len() });
        }
        let (action_text, rest) =
            input
                .split_once('@')
                .ok_or_else(|| CapabilityError::MissingAt {
                    input: input.to_owned(),
                })?;
        let action =
            parse_action_segments(action_text, true).map_err(|why| CapabilityError::BadAction {
                input: input.to_owned(),
                action: action_text.to_owned(),
                why,
            })?;
        let mut parts = rest.split(',');
        let resource_text = parts.next().unwrap_or_default();
        let (kind, resource) =
            parse_resource(resource_text, true).map_err(|why| CapabilityError::BadResource {
                input: input.to_owned(),
                resource: resource_text.to_owned(),
                why,
            })?;
        let mut constraints = Constraints::default();
        let mut seen_approval = false;
        for c in parts {
            let bad = |why: &str| CapabilityError::BadConstraint {
                input: input.to_owned(),
                constraint: c.to_owned(),
                why: why.to_owned(),
            };
            match c.split_once('=') {
                Some(("budget", n)) => {
                    if constraints.budget.is_some() {
                        return Err(bad("budget given twice"));
                    }
                    // Digits only, no leading zero: one spelling per budget (`+5`, `007` refused).
                    let canonical = !n.is_empty()
                        && n.bytes().all(|b| b.is_ascii_digit())
                        && (n == "0" || !n.starts_with('0'));
                    let n = n
                        .parse::<u64>()
                        .ok()
                        .filter(|_| canonical)
                        .ok_or_else(|| bad("budget must be a whole number like budget=100"))?;
                    constraints.budget = Some(n);
                }
                Some(("expires", t)) => {
                    if constraints.expires.is_some() {
                        return Err(bad("expires given twice"));
                    }
                    let t = t.parse::<Timestamp>().map_err(|_| {
                        bad("expires must be an RFC 3339 time like expires=2027-01-01T00:00:00Z")
                    })?;
                    constraints.expires = Some(t);
                }
                None if c == "approval" => {
                    if seen_approval {
                        return Err(bad("approval given twice"));
                    }
                    seen_approval = true;
                    constraints.approval = true;
                }
                Some(("approval", _)) => return Err(bad("approval takes no value")),
                _ if c.is_empty() => return Err(bad("empty constraint (a stray comma)")),
                _ => return Err(bad(
                    "unknown constraint; the known ones are budget=N, approval and expires=RFC3339",
                )),
            }
        }
        let cap = Self {
            action,
            kind,
            resource,
            constraints,
        };
        // The limit holds for the printed form too: that is what serde writes and reads back
        // (the log stores capabilities as text), and it can be longer than the input — the
        // time parser takes short forms such as `2027-01-01T00Z` that print in full. A
        // capability that printed over the limit would be refused when the log is read back.
        let printed = cap.to_string().len();
        if printed > MAX_CAPABILITY_LEN {
            return Err(CapabilityError::TooLong { len: printed });
        }
        Ok(cap)
    }

    /// The capability's limits.
    pub fn constraints(&self) -> &Constraints {
        &self.constraints
    }

    /// Does this capability's pattern match the concrete `action` on `resource`?
    /// Constraints (budget, approval, expiry) are not looked at here; see `authorize`.
    pub fn matches(&self, action: &Action, resource: &Resource) -> bool {
        if !segs_match(&self.action, action.segments()) {
            return false;
        }
        let (kind, segs) = resource.split();
        if let Some(k) = &self.kind {
            if kind != Some(k.as_str()) {
                return false;
            }
        }
        segs_match(&self.resource, segs)
    }

    /// Is this capability expired at `now`?
    pub fn expired_at(&self, now: Timestamp) -> bool {
        self.constraints.expires.is_some_and(|e| now >= e)
    }

    /// The same capability with a different budget (for tools that derive limits).
    pub fn with_budget(&self, budget: Option<u64>) -> Self {
        let mut c = self.clone();
        c.constraints.budget = budget;
        c
    }
}

/// `covers(parent, child)`: the child is equal to or narrower than the parent.
///
/// The child's action and resource patterns match a subset of the parent's, its budget is not
/// above the parent's, and it keeps every approval and expiry the parent has (an expiry no later).
pub fn covers(parent: &Capability, child: &Capability) -> bool {
    patterns_cover(parent, child) && constraints_cover(&parent.constraints, &child.constraints)
}

fn patterns_cover(parent: &Capability, child: &Capability) -> bool {
    if !segs_cover(&parent.action, &child.action) {
        return false;
    }
    if let Some(k) = &parent.kind {
        if child.kind.as_ref() != Some(k) {
            return false;
        }
    }
    segs_cover(&parent.resource, &child.resource)
}

fn constraints_cover(p: &Constraints, c: &Constraints) -> bool {
    let budget = match (p.budget, c.budget) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(pb), Some(cb)) => cb <= pb,
    };
    let expires = match (p.expires, c.expires) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(pe), Some(ce)) => ce <= pe,
    };
    budget && expires && (!p.approval || c.approval)
}

/// Says in one sentence why `parent` does not cover `child` (for refusals people read).
pub fn why_not_covered(parent: &Capability, child: &Capability) -> Option<String> {
    if !patterns_cover(parent, child) {
        return Some(format!(
            "`{}` asks for more than `{}` allows",
            child.pattern_text(),
            parent.pattern_text()
        ));
    }
    let (p, c) = (&parent.constraints, &child.constraints);
    if let Some(pb) = p.budget {
        match c.budget {
            None => {
                return Some(format!(
                    "`{parent}` has budget={pb}; the request must keep a budget of at most {pb}"
                ))
            }
            Some(cb) if cb > pb => {
                return Some(format!(
                    "budget={cb} is above the budget={pb} of `{parent}`"
                ))
            }
            _ => {}
        }
    }
    if p.approval && !c.approval {
        return Some(format!(
            "`{parent}` needs approval for each use; the request must keep `approval`"
        ));
    }
    if let Some(pe) = p.expires {
        match c.expires {
            None => {
                return Some(format!(
                    "`{parent}` expires at {pe}; the request must expire no later"
                ))
            }
            Some(ce) if ce > pe => {
                return Some(format!(
                    "expires={ce} is later than the expiry {pe} of `{parent}`"
                ))
            }
            _ => {}
        }
    }
    None
}

impl Capability {
    /// `ACTION@RESOURCE` without the constraints.
    pub fn pattern_text(&self) -> String {
        struct P<'a>(&'a Capability);
        impl fmt::Display for P<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_pattern(f)
            }
        }
        P(self).to_string()
    }

    fn fmt_pattern(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_segs(f, &self.action, '.', "*")?;
        f.write_str("@")?;
        if let Some(k) = &self.kind {
            write!(f, "{k}:")?;
        }
        write_segs(f, &self.resource, '/', "**")
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_pattern(f)?;
        if let Some(b) = self.constraints.budget {
            write!(f, ",budget={b}")?;
        }
        if self.constraints.approval {
            f.write_str(",approval")?;
        }
        if let Some(e) = self.constraints.expires {
            write!(f, ",expires={e}")?;
        }
        Ok(())
    }
}
text_impls!(Capability);

/// How much one use spends. Never zero: a use without an amount counts 1, and a zero amount would
/// let a budget-capped grant be used without limit.
pub type Amount = NonZeroU64;

/// The amount of a use that did not name one.
pub const ONE: Amount = NonZeroU64::MIN;

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        Capability::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn design_examples_parse_and_print_canonically() {
        for s in [
            "email.send@mailbox:alice,approval",
            "spend.usd@*,budget=100",
            "agent.hire@team:research,budget=3",
            "repo.push@repo:acme/api,expires=2027-01-01T00:00:00Z",
            "email.*@**",
            "*@**",
            "context.read@topic:research/**",
        ] {
            assert_eq!(cap(s).to_string(), s);
        }
        // Constraint order is canonicalised.
        assert_eq!(
            cap("a@b,approval,budget=2").to_string(),
            "a@b,budget=2,approval"
        );
    }

    #[test]
    fn malformed_capabilities_say_what_is_wrong() {
        let cases = [
            ("email.send", "no `@`"),
            ("@x", "bad action"),
            ("email..send@x", "empty segment"),
            ("email.*.x@y", "only as the last segment"),
            ("Email@x", "lowercase"),
            ("a@", "bad resource"),
            ("a@k:", "nothing after the kind"),
            ("a@x/**/y", "only as the last segment"),
            ("a@x*", "whole segment"),
            ("a@Kind:x", "kind `Kind`"),
            ("a@x,budget=-1", "whole number"),
            ("a@x,budget=1,budget=2", "twice"),
            ("a@x,forever", "unknown constraint"),
            ("a@x,expires=tomorrow", "RFC 3339"),
            ("a@x,", "stray comma"),
            ("a@x/../y", "not be . or .."),
        ];
        for (input, needle) in cases {
            let err = Capability::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
        assert!(Capability::parse(&"a".repeat(2000)).is_err());
    }

    #[test]
    fn matching() {
        let a = |s: &str| Action::parse(s).unwrap();
        let r = |s: &str| Resource::parse(s).unwrap();
        let c = cap("email.*@mailbox:*");
        assert!(c.matches(&a("email.send"), &r("mailbox:alice")));
        assert!(c.matches(&a("email.send.bulk"), &r("mailbox:bob")));
        assert!(!c.matches(&a("email"), &r("mailbox:alice")));
        assert!(!c.matches(&a("email.send"), &r("mailbox:alice/inbox")));
        assert!(!c.matches(&a("email.send"), &r("repo:alice")));
        let repo = cap("repo.push@repo:acme/**");
        assert!(repo.matches(&a("repo.push"), &r("repo:acme/api")));
        assert!(repo.matches(&a("repo.push"), &r("repo:acme/api/branch")));
        assert!(!repo.matches(&a("repo.push"), &r("repo:acme")));
        assert!(!repo.matches(&a("repo.push"), &r("repo:other/api")));
        let any = cap("spend.usd@*");
        assert!(any.matches(&a("spend.usd"), &r("usd")));
        assert!(any.matches(&a("spend.usd"), &r("vendor:acme")));
        assert!(!any.matches(&a("spend.usd"), &r("vendor:acme/x")));
        assert!(Action::parse("email.*").is_err(), "requests are concrete");
        let long = "a".repeat(100_000);
        let err = Action::parse(&long).unwrap_err().to_string();
        assert!(err.len() < 100, "the input is not echoed: {err}");
        assert!(Resource::parse(&long).is_err());
        assert!(
            Resource::parse("mailbox:*").is_err(),
            "requests are concrete"
        );
    }

    #[test]
    fn attenuation_rule() {
        let yes = [
            ("email.*@**", "email.send@mailbox:alice"),
            ("email.*@**", "email.send.*@**"),
            ("*@**", "email.*@mailbox:*"),
            ("a@x/*", "a@x/y"),
            ("a@x/**", "a@x/*/**"),
            ("a@**", "a@k:**"),
            ("a@x,budget=10", "a@x,budget=3"),
            ("a@x,approval", "a@x,approval,budget=1"),
            (
                "a@x,expires=2027-01-01T00:00:00Z",
                "a@x,expires=2026-01-01T00:00:00Z",
            ),
        ];
        for (p, c) in yes {
            assert!(covers(&cap(p), &cap(c)), "{p} should cover {c}");
            assert_eq!(why_not_covered(&cap(p), &cap(c)), None);
        }
        let no = [
            ("email.send@**", "email.*@**"),
            ("email.*@**", "*@**"),
            ("email.*@**", "email@**"),
            ("a@x/*", "a@x/**"),
            ("a@x/*", "a@x"),
            ("a@*", "a@x/y"),
            ("a@k:**", "a@**"),
            ("a@k:x", "a@j:x"),
            ("a@x,budget=10", "a@x"),
            ("a@x,budget=10", "a@x,budget=11"),
            ("a@x,approval", "a@x"),
            ("a@x,expires=2027-01-01T00:00:00Z", "a@x"),
            (
                "a@x,expires=2027-01-01T00:00:00Z",
                "a@x,expires=2028-01-01T00:00:00Z",
            ),
        ];
        for (p, c) in no {
            assert!(!covers(&cap(p), &cap(c)), "{p} should not cover {c}");
            assert!(why_not_covered(&cap(p), &cap(c)).is_some());
        }
    }

    #[test]
    fn serde_is_the_text() {
        let c = cap("email.send@mailbox:alice,approval");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"email.send@mailbox:alice,approval\"");
        assert!(serde_json::from_str::<Capability>("\"nope\"").is_err());
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Capability>(&bytes).unwrap(), c);
    }
}
