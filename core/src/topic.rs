//! Context topics: `/`-separated [`Name`](crate::name::Name)-like segments, so that a topic can
//! become a NATS subject (`NS.ctx.TEAM.a.b`) without any agent-supplied `.`, `*`, `>` or space.

use serde::{Deserialize, Serialize};

use crate::name::{Name, NameError};

const MAX_TOPIC_SEGMENTS: usize = 16;

/// Why a topic or topic pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// A segment is not a valid name.
    #[error("topic `{input}`: {source}")]
    Segment {
        /// The text given.
        input: String,
        /// What is wrong with the segment.
        source: NameError,
    },
    /// A wildcard where none is allowed.
    #[error("topic `{input}`: {why}")]
    Wildcard {
        /// The text given.
        input: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Too many segments.
    #[error("topic `{input}` has more than {MAX_TOPIC_SEGMENTS} segments")]
    TooDeep {
        /// The text given.
        input: String,
    },
}

fn parse_segments(s: &str, wild: bool) -> Result<(), TopicError> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() > MAX_TOPIC_SEGMENTS {
        return Err(TopicError::TooDeep {
            input: s.to_owned(),
        });
    }
    let last = parts.len() - 1;
    for (i, p) in parts.iter().enumerate() {
        match *p {
            "*" | "**" if !wild => {
                return Err(TopicError::Wildcard {
                    input: s.to_owned(),
                    why: "a topic to publish on cannot contain wildcards",
                })
            }
            "*" => {}
            "**" if i == last => {}
            "**" => {
                return Err(TopicError::Wildcard {
                    input: s.to_owned(),
                    why: "`**` is allowed only as the last segment",
                })
            }
            p => {
                Name::parse_as(p, "topic segment").map_err(|source| TopicError::Segment {
                    input: s.to_owned(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// A concrete topic, like `findings/daily`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Topic(String);

/// A topic pattern: `*` matches one segment, a final `**` one or more (`findings/**`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicPattern(String);

impl Topic {
    /// Parses a concrete topic.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        parse_segments(s, false)?;
        Ok(Self(s.to_owned()))
    }
    /// The topic text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TopicPattern {
    /// Parses a topic pattern.
    pub fn parse(s: &str) -> Result<Self, TopicError> {
        parse_segments(s, true)?;
        Ok(Self(s.to_owned()))
    }

    /// Does this pattern match `topic`?
    pub fn matches(&self, topic: &Topic) -> bool {
        fn go(p: &[&str], t: &[&str]) -> bool {
            match (p.first(), t.first()) {
                (None, None) => true,
                (Some(&"**"), Some(_)) => true,
                (Some(&"*"), Some(_)) => go(&p[1..], &t[1..]),
                (Some(a), Some(b)) => a == b && go(&p[1..], &t[1..]),
                _ => false,
            }
        }
        let p: Vec<&str> = self.0.split('/').collect();
        let t: Vec<&str> = topic.0.split('/').collect();
        go(&p, &t)
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_newtype!(TopicError: Topic, TopicPattern);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        let p = TopicPattern::parse("findings/**").unwrap();
        assert!(p.matches(&Topic::parse("findings/daily").unwrap()));
        assert!(!p.matches(&Topic::parse("findings").unwrap()));
        assert!(TopicPattern::parse("a/*/c")
            .unwrap()
            .matches(&Topic::parse("a/b/c").unwrap()));
        for bad in ["a.b", "a b", ">", "a/>", "", "a//b", "A"] {
            assert!(Topic::parse(bad).is_err(), "{bad}");
            assert!(TopicPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(Topic::parse("a/*").is_err());
        assert!(TopicPattern::parse("**/a").is_err());
    }
}
