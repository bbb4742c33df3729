//! The attenuation rule: [`covers`] decides whether a capability may be derived from another,
//! and [`why_not_covered`] says in one sentence why not.

use super::pattern::segs_cover;
use super::{Capability, Constraints};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        Capability::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
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
}
