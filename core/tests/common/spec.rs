//! Capabilities as data, for generators: build patterns, narrow them ([`CapSpec::attenuate`]),
//! widen them ([`CapSpec::generalize`]), nearly miss them ([`CapSpec::near_miss`]), fill in
//! their wildcards ([`CapSpec::instantiate`]), and decide inclusion by brute force
//! ([`CapSpec::pattern_includes`]) — then render the text the parser reads.

use std::fmt::Write as _;

use proptest::prelude::*;
use roster_core::capability::{Action, Capability, Resource};
use roster_core::time::Timestamp;

/// 2030-01-01T00:00:00Z, the start of every generated timeline.
pub const T0: Timestamp = Timestamp::from_micros(1_893_456_000_000_000);
/// One hour in microseconds.
pub const HOUR: i64 = 3_600_000_000;

/// A small deterministic random source (SplitMix64) for choices made inside one generated case.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % u64::try_from(n).unwrap()).unwrap()
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// The literals generators draw from. Small on purpose: patterns collide often.
#[derive(Debug)]
pub struct Alphabet {
    /// Action segments.
    pub action: &'static [&'static str],
    /// Resource kinds.
    pub kinds: &'static [&'static str],
    /// Resource segments.
    pub resource: &'static [&'static str],
}

/// The alphabet of the pure capability properties.
pub static SMALL: Alphabet = Alphabet {
    action: &["a", "b"],
    kinds: &["k", "j"],
    resource: &["x", "y"],
};

/// A segment of a pattern. Actions use `Lit` and a final `Rest` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pat {
    /// A literal segment.
    Lit(String),
    /// `*` in a resource: exactly one segment.
    One,
    /// Final `*` in an action, final `**` in a resource: one or more segments.
    Rest,
}

/// A capability as data, rendered to text by [`CapSpec::text`] in the canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapSpec {
    /// Action pattern.
    pub action: Vec<Pat>,
    /// Resource kind, if the pattern names one.
    pub kind: Option<String>,
    /// Resource path pattern.
    pub resource: Vec<Pat>,
    /// `budget=N`.
    pub budget: Option<u64>,
    /// `approval`.
    pub approval: bool,
    /// `expires=T`.
    pub expires: Option<Timestamp>,
}

fn lit(s: &str) -> Pat {
    Pat::Lit(s.to_owned())
}

impl CapSpec {
    /// The pattern part, `ACTION@RESOURCE`.
    pub fn pattern_text(&self) -> String {
        let mut out = String::new();
        for (i, p) in self.action.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            match p {
                Pat::Lit(l) => out.push_str(l),
                Pat::One | Pat::Rest => out.push('*'),
            }
        }
        out.push('@');
        if let Some(k) = &self.kind {
            let _ = write!(out, "{k}:");
        }
        for (i, p) in self.resource.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match p {
                Pat::Lit(l) => out.push_str(l),
                Pat::One => out.push('*'),
                Pat::Rest => out.push_str("**"),
            }
        }
        out
    }

    /// The constraints, each as its own text, in canonical order.
    pub fn constraint_texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(b) = self.budget {
            out.push(format!("budget={b}"));
        }
        if self.approval {
            out.push("approval".to_owned());
        }
        if let Some(e) = self.expires {
            out.push(format!("expires={e}"));
        }
        out
    }

    /// The canonical text (what `Capability`'s `Display` must print).
    pub fn text(&self) -> String {
        let mut out = self.pattern_text();
        for c in self.constraint_texts() {
            out.push(',');
            out.push_str(&c);
        }
        out
    }

    /// Parses the text.
    pub fn cap(&self) -> Capability {
        let t = self.text();
        Capability::parse(&t).unwrap_or_else(|e| panic!("generated `{t}` does not parse: {e}"))
    }

    /// Reads canonical capability text back into a spec (for grants found in a world).
    pub fn from_text(text: &str) -> CapSpec {
        let (action, rest) = text.split_once('@').unwrap();
        let mut parts = rest.split(',');
        let resource = parts.next().unwrap();
        let (kind, path) = match resource.split_once(':') {
            Some((k, p)) => (Some(k.to_owned()), p),
            None => (None, resource),
        };
        let mut spec = CapSpec {
            action: action
                .split('.')
                .map(|s| if s == "*" { Pat::Rest } else { lit(s) })
                .collect(),
            kind,
            resource: path
                .split('/')
                .map(|s| match s {
                    "*" => Pat::One,
                    "**" => Pat::Rest,
                    s => lit(s),
                })
                .collect(),
            budget: None,
            approval: false,
            expires: None,
        };
        for c in parts {
            match c.split_once('=') {
                Some(("budget", n)) => spec.budget = Some(n.parse().unwrap()),
                Some(("expires", t)) => spec.expires = Some(t.parse().unwrap()),
                None if c == "approval" => spec.approval = true,
                _ => panic!("unexpected constraint `{c}` in `{text}`"),
            }
        }
        spec
    }

    /// The spec of a capability value.
    pub fn of(cap: &Capability) -> CapSpec {
        CapSpec::from_text(&cap.to_string())
    }

    /// A concrete use this pattern matches, drawn with `rng` over `alpha` (plus, now and then, a
    /// literal no pattern names).
    pub fn instantiate(&self, rng: &mut Rng, alpha: &Alphabet) -> (Action, Resource) {
        let fresh = |rng: &mut Rng, pool: &[&str]| -> String {
            if rng.chance(1, 8) {
                "zz".to_owned()
            } else {
                rng.pick(pool).to_owned()
            }
        };
        let mut action = Vec::new();
        for p in &self.action {
            match p {
                Pat::Lit(l) => action.push(l.clone()),
                Pat::One => action.push(fresh(rng, alpha.action)),
                Pat::Rest => {
                    for _ in 0..=rng.below(3) {
                        action.push(fresh(rng, alpha.action));
                    }
                }
            }
        }
        let mut resource = match &self.kind {
            Some(k) => format!("{k}:"),
            None if rng.chance(1, 2) => String::new(),
            None => format!("{}:", fresh(rng, alpha.kinds)),
        };
        let mut segs = Vec::new();
        for p in &self.resource {
            match p {
                Pat::Lit(l) => segs.push(l.clone()),
                Pat::One => segs.push(fresh(rng, alpha.resource)),
                Pat::Rest => {
                    for _ in 0..=rng.below(3) {
                        segs.push(fresh(rng, alpha.resource));
                    }
                }
            }
        }
        resource.push_str(&segs.join("/"));
        (
            Action::parse(&action.join(".")).unwrap(),
            Resource::parse(&resource).unwrap(),
        )
    }

    /// A spec this one covers: patterns narrowed, limits kept or tightened.
    pub fn attenuate(&self, rng: &mut Rng, alpha: &Alphabet) -> CapSpec {
        let mut action: Vec<Pat> = Vec::new();
        for p in &self.action {
            match p {
                Pat::Rest => match rng.below(3) {
                    0 => action.push(Pat::Rest),
                    n => {
                        for _ in 0..=rng.below(2) {
                            action.push(lit(rng.pick(alpha.action)));
                        }
                        if n == 2 {
                            action.push(Pat::Rest);
                        }
                    }
                },
                p => action.push(p.clone()),
            }
        }
        let kind = match &self.kind {
            Some(k) => Some(k.clone()),
            None if rng.chance(1, 2) => None,
            None => Some(rng.pick(alpha.kinds).to_owned()),
        };
        let one_or_lit = |rng: &mut Rng| {
            if rng.chance(1, 2) {
                Pat::One
            } else {
                lit(rng.pick(alpha.resource))
            }
        };
        let mut resource = Vec::new();
        for p in &self.resource {
            match p {
                Pat::Lit(l) => resource.push(lit(l)),
                Pat::One => resource.push(one_or_lit(rng)),
                Pat::Rest => match rng.below(3) {
                    0 => resource.push(Pat::Rest),
                    n => {
                        for _ in 0..=rng.below(2) {
                            resource.push(one_or_lit(rng));
                        }
                        if n == 2 {
                            resource.push(Pat::Rest);
                        }
                    }
                },
            }
        }
        let budget = match self.budget {
            Some(b) if rng.chance(1, 2) => Some(b),
            Some(b) => Some(b / 2 + rng.next_u64() % (b - b / 2 + 1)),
            None if rng.chance(1, 3) => Some(rng.next_u64() % 8),
            None => None,
        };
        let approval = self.approval || rng.chance(1, 6);
        let expires = match self.expires {
            Some(e) if rng.chance(1, 2) => Some(e),
            Some(e) => Some(e.plus_micros(-i64::try_from(rng.below(4)).unwrap() * HOUR)),
            None if rng.chance(1, 4) => Some(arb_time(rng)),
            None => None,
        };
        CapSpec {
            action,
            kind,
            resource,
            budget,
            approval,
            expires,
        }
    }

    /// A spec that covers this one: patterns widened, limits kept or loosened.
    pub fn generalize(&self, rng: &mut Rng) -> CapSpec {
        let mut action = self.action.clone();
        if rng.chance(1, 2) {
            let cut = rng.below(action.len());
            action.truncate(cut);
            action.push(Pat::Rest);
        }
        let kind = if rng.chance(1, 3) {
            None
        } else {
            self.kind.clone()
        };
        let mut resource: Vec<Pat> = self
            .resource
            .iter()
            .map(|p| match p {
                Pat::Lit(_) if rng.chance(1, 3) => Pat::One,
                p => p.clone(),
            })
            .collect();
        if rng.chance(1, 3) {
            let cut = rng.below(resource.len());
            resource.truncate(cut);
            resource.push(Pat::Rest);
        }
        let budget = match self.budget {
            Some(_) if rng.chance(1, 4) => None,
            Some(b) => Some(b.saturating_add(rng.next_u64() % 3)),
            None => None,
        };
        let approval = self.approval && rng.chance(1, 2);
        let expires = match self.expires {
            Some(_) if rng.chance(1, 4) => None,
            Some(e) => Some(e.plus_micros(i64::try_from(rng.below(3)).unwrap() * HOUR)),
            None => None,
        };
        CapSpec {
            action,
            kind,
            resource,
            budget,
            approval,
            expires,
        }
    }
}

/// Does a pattern match literal segments? Written plainly, apart from the crate's matcher.
fn pats_match(p: &[Pat], x: &[&str]) -> bool {
    match (p.split_first(), x.split_first()) {
        (None, None) => true,
        (Some((Pat::Rest, _)), Some(_)) => true,
        (Some((Pat::One, p)), Some((_, x))) => pats_match(p, x),
        (Some((Pat::Lit(l), p)), Some((s, x))) => l == s && pats_match(p, x),
        _ => false,
    }
}

impl CapSpec {
    /// Does the pattern match this use (action segments, resource kind, resource segments)?
    pub fn matches_use(&self, action: &[&str], kind: Option<&str>, path: &[&str]) -> bool {
        pats_match(&self.action, action)
            && self.kind.as_deref().is_none_or(|k| kind == Some(k))
            && pats_match(&self.resource, path)
    }

    /// Whether every use `child`'s pattern matches is matched by this one, decided by trying
    /// every use over the literals both name plus a fresh one, up to one segment longer than
    /// either pattern — enough to tell (a fresh literal stands for all others; a longer use
    /// for every longer one).
    pub fn pattern_includes(&self, child: &CapSpec) -> bool {
        let letters = |a: &[Pat], b: &[Pat]| -> Vec<String> {
            let mut out: Vec<String> = a
                .iter()
                .chain(b)
                .filter_map(|p| match p {
                    Pat::Lit(l) => Some(l.clone()),
                    _ => None,
                })
                .collect();
            out.push("zz".to_owned());
            out.sort();
            out.dedup();
            out
        };
        let action_letters = letters(&self.action, &child.action);
        let action_len = self.action.len().max(child.action.len()) + 1;
        let actions_ok = every_sequence(&action_letters, action_len, &mut |a| {
            !pats_match(&child.action, a) || pats_match(&self.action, a)
        });
        if !actions_ok {
            return false;
        }
        let mut kinds: Vec<Option<&str>> = vec![None, Some("zz")];
        kinds.extend(self.kind.as_deref().map(Some));
        kinds.extend(child.kind.as_deref().map(Some));
        let path_letters = letters(&self.resource, &child.resource);
        let path_len = self.resource.len().max(child.resource.len()) + 1;
        kinds.iter().all(|kind| {
            let c_kind = child.kind.as_deref().is_none_or(|k| *kind == Some(k));
            let p_kind = self.kind.as_deref().is_none_or(|k| *kind == Some(k));
            every_sequence(&path_letters, path_len, &mut |x| {
                !(c_kind && pats_match(&child.resource, x))
                    || (p_kind && pats_match(&self.resource, x))
            })
        })
    }

    /// One change that usually widens the pattern or loosens a limit: a near miss.
    pub fn near_miss(&self, rng: &mut Rng, alpha: &Alphabet) -> CapSpec {
        let mut c = self.clone();
        match rng.below(9) {
            0 => {
                let i = rng.below(c.action.len());
                c.action.truncate(i);
                c.action.push(Pat::Rest);
            }
            1 => {
                let i = rng.below(c.resource.len());
                if c.resource[i] != Pat::Rest {
                    c.resource[i] = Pat::One;
                }
            }
            2 => {
                let i = rng.below(c.resource.len());
                c.resource.truncate(i);
                c.resource.push(Pat::Rest);
            }
            3 => c.kind = None,
            4 => c.kind = Some(rng.pick(alpha.kinds).to_owned()),
            5 => {
                let i = rng.below(c.resource.len());
                if matches!(c.resource[i], Pat::Lit(_)) {
                    c.resource[i] = lit(rng.pick(alpha.resource));
                }
                if matches!(c.action.last(), Some(Pat::Lit(_))) {
                    let i = c.action.len() - 1;
                    c.action[i] = lit(rng.pick(alpha.action));
                }
            }
            6 => c.budget = c.budget.and_then(|b| rng.chance(1, 2).then(|| b + 1)),
            7 => c.approval = false,
            _ => {
                c.expires = c
                    .expires
                    .and_then(|e| rng.chance(1, 2).then(|| e.plus_micros(HOUR)))
            }
        }
        c
    }
}

/// Calls `f` on every sequence of 1 to `max_len` items of `letters` until it says false.
fn every_sequence(letters: &[String], max_len: usize, f: &mut dyn FnMut(&[&str]) -> bool) -> bool {
    fn go<'a>(
        letters: &'a [String],
        buf: &mut Vec<&'a str>,
        left: usize,
        f: &mut dyn FnMut(&[&str]) -> bool,
    ) -> bool {
        if !buf.is_empty() && !f(buf) {
            return false;
        }
        if left == 0 {
            return true;
        }
        for l in letters {
            buf.push(l);
            let ok = go(letters, buf, left - 1, f);
            buf.pop();
            if !ok {
                return false;
            }
        }
        true
    }
    go(letters, &mut Vec::new(), max_len, f)
}

/// One of a few expiry instants, hours after [`T0`], so that expiries collide often.
pub fn arb_time(rng: &mut Rng) -> Timestamp {
    T0.plus_micros(i64::try_from(1 + rng.below(6)).unwrap() * HOUR)
}

/// Generated capability specs over `alpha`: actions with an optional final `*`, resources with
/// an optional kind, `*` segments and a final `**`, and optional budget, approval and expiry.
pub fn arb_cap(alpha: &'static Alphabet) -> impl Strategy<Value = CapSpec> {
    let action = (
        prop::collection::vec(prop::sample::select(alpha.action), 0..=3),
        any::<bool>(),
    )
        .prop_map(|(lits, rest)| {
            let mut v: Vec<Pat> = lits.into_iter().map(lit).collect();
            if rest || v.is_empty() {
                v.push(Pat::Rest);
            }
            v
        });
    let seg = prop_oneof![
        3 => prop::sample::select(alpha.resource).prop_map(lit),
        1 => Just(Pat::One),
    ];
    let resource = (
        prop::option::weighted(0.6, prop::sample::select(alpha.kinds)),
        prop::collection::vec(seg, 0..=3),
        any::<bool>(),
    )
        .prop_map(|(kind, mut segs, rest)| {
            if rest || segs.is_empty() {
                segs.push(Pat::Rest);
            }
            (kind.map(str::to_owned), segs)
        });
    let constraints = (
        prop::option::weighted(0.4, prop_oneof![4 => 0u64..=5, 1 => any::<u64>()]),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, 1i64..=4),
    );
    (action, resource, constraints).prop_map(
        |(action, (kind, resource), (budget, approval, expires))| CapSpec {
            action,
            kind,
            resource,
            budget,
            approval,
            expires: expires.map(|h| T0.plus_micros(h * HOUR)),
        },
    )
}
