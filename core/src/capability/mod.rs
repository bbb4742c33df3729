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
//!
//! This file holds [`Capability`] (parsing, printing, matching), [`Constraints`], [`Amount`] and
//! [`CapabilityError`]; `pattern.rs` the segment patterns both halves are made of; `request.rs`
//! the concrete [`Action`] and [`Resource`] a request names; `attenuation.rs` [`covers`] and
//! [`why_not_covered`].

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

mod attenuation;
mod pattern;
mod request;

pub use attenuation::{covers, why_not_covered};
pub use request::{Action, Resource};

use pattern::{parse_action_segments, parse_resource, segs_match, write_segs, Seg};

/// The longest capability text accepted.
pub const MAX_CAPABILITY_LEN: usize = 1024;

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
// By path, for `request.rs`.
use text_impls;

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
    fn serde_is_the_text() {
        let c = cap("email.send@mailbox:alice,approval");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, "\"email.send@mailbox:alice,approval\"");
        assert!(serde_json::from_str::<Capability>("\"nope\"").is_err());
        let bytes = postcard::to_allocvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<Capability>(&bytes).unwrap(), c);
    }
}
