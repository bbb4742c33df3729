//! Segment patterns, the two halves of a capability: an action is `.`-separated segments, a
//! resource an optional `kind:` and `/`-separated segments. Parsing (with the sentence that says
//! what is wrong), printing, matching a concrete request, and covering another pattern.

use std::fmt;

const MAX_SEGMENTS: usize = 32;

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
pub(super) enum Seg {
    Lit(String),
    /// `*`: exactly one segment (resources only; in actions only as the final segment).
    One,
    /// Final `**` in resources, final `*` in actions: one or more segments.
    Rest,
}

pub(super) fn parse_action_segments(text: &str, allow_wild: bool) -> Result<Vec<Seg>, String> {
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

pub(super) fn parse_resource(
    text: &str,
    allow_wild: bool,
) -> Result<(Option<String>, Vec<Seg>), String> {
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

pub(super) fn write_segs(
    f: &mut fmt::Formatter<'_>,
    segs: &[Seg],
    sep: char,
    rest: &str,
) -> fmt::Result {
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
pub(super) fn segs_match<'a>(p: &[Seg], mut x: impl Iterator<Item = &'a str>) -> bool {
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
pub(super) fn segs_cover(p: &[Seg], c: &[Seg]) -> bool {
    match (p.first(), c.first()) {
        (None, None) => true,
        // `Rest` matches one or more; `c` non-empty matches only non-empty sequences.
        (Some(Seg::Rest), Some(_)) => true,
        (Some(Seg::One), Some(Seg::One | Seg::Lit(_))) => segs_cover(&p[1..], &c[1..]),
        (Some(Seg::Lit(a)), Some(Seg::Lit(b))) => a == b && segs_cover(&p[1..], &c[1..]),
        _ => false,
    }
}
