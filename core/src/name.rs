//! Validated names and short texts.
//!
//! A [`Name`] is safe to put in a NATS subject, a container name, a volume name and a path: it is
//! 1–63 characters of lowercase ASCII letters, digits and `-`, starting and ending with a letter or
//! digit (like a DNS label, so that `-x` can never be read as a flag).

use serde::{Deserialize, Serialize};

/// Why a name or a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Empty.
    #[error("a {what} cannot be empty")]
    Empty {
        /// What was being named.
        what: &'static str,
    },
    /// Longer than allowed.
    #[error("{what} `{input}` is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// What was being named.
        what: &'static str,
        /// The text given.
        input: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{what} `{input}` contains {found:?}; only {allowed} are allowed")]
    BadChar {
        /// What was being named.
        what: &'static str,
        /// The text given.
        input: String,
        /// The first offending character.
        found: char,
        /// The allowed set, in words.
        allowed: &'static str,
    },
    /// Starts or ends with `-`.
    #[error("{what} `{input}` must start and end with a letter or digit")]
    Edge {
        /// What was being named.
        what: &'static str,
        /// The text given.
        input: String,
    },
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 80 {
        let mut out: String = s.chars().take(77).collect();
        out.push_str("...");
        out
    } else {
        s.to_owned()
    }
}

/// A team or agent name: `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// The longest name allowed.
    pub const MAX_LEN: usize = 63;

    /// Parses a name, saying what is wrong if it is not one.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        Self::parse_as(s, "name")
    }

    /// Parses a name, calling it `what` in errors ("team name", "agent name").
    pub fn parse_as(s: &str, what: &'static str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty { what });
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                what,
                input: shorten(s),
                len: s.chars().count(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(NameError::BadChar {
                what,
                input: shorten(s),
                found,
                allowed: "lowercase letters a-z, digits and `-`",
            });
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(NameError::Edge {
                what,
                input: s.to_owned(),
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A short free text for people (an agent's role, an operator's note): printable, one line, at
/// most 200 characters. It never goes into a subject or a path.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Default for Label {
    /// The empty label (an agent hired without a role).
    fn default() -> Self {
        Self(String::new())
    }
}

impl Label {
    /// The longest label allowed, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a label.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let what = "text";
        let len = s.chars().count();
        if len > Self::MAX_CHARS {
            return Err(NameError::TooLong {
                what,
                input: shorten(s),
                len,
                max: Self::MAX_CHARS,
            });
        }
        // Control characters, the line and paragraph separators (a second line by another
        // name), and the invisible format characters that reorder or hide text on a terminal
        // or from a reader (bidirectional marks and overrides, zero-width characters, the
        // byte-order mark, tag characters — invisible text a model still reads).
        let hidden = |c: &char| {
            c.is_control()
                || matches!(*c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{E0000}'..='\u{E007F}')
        };
        if let Some(found) = s.chars().find(hidden) {
            return Err(NameError::BadChar {
                what,
                input: shorten(s),
                found,
                allowed: "visible characters on one line",
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A container image reference (`roster/agent:1`, `registry.local/x@sha256:…`).
///
/// Validated to the characters an image reference may hold so that it can be passed to the
/// engine as one argument; whether the image exists is the sandbox's business.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageRef(String);

impl ImageRef {
    /// The longest reference allowed.
    pub const MAX_LEN: usize = 255;

    /// Parses an image reference.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let what = "image reference";
        if s.is_empty() {
            return Err(NameError::Empty { what });
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                what,
                input: shorten(s),
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(found) = s.chars().find(|c| {
            !(c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'))
        }) {
            return Err(NameError::BadChar {
                what,
                input: shorten(s),
                found,
                allowed: "lowercase letters, digits and . _ - / : @",
            });
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(NameError::Edge {
                what,
                input: s.to_owned(),
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base image the runtime builds itself ([`crate::BASE_IMAGE`], valid by the test
    /// `base_image_is_valid`).
    pub fn base() -> Self {
        Self(crate::BASE_IMAGE.to_owned())
    }
}

/// An idempotency key an agent puts on a writing call (`act`, `delegate`): 1–64 bytes of
/// `A-Z a-z 0-9 . _ : -`, chosen by the agent. The runtime carries out a keyed call at most once
/// per agent and key: asked again, it answers with the outcome recorded the first time. The
/// characters are those of a UUID, a ULID, a timestamp or a counter, and nothing a terminal or
/// a log line could misread.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallKey(String);

impl CallKey {
    /// The longest key allowed, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Parses a key, saying what is wrong if it is not one.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let what = "call key";
        if s.is_empty() {
            return Err(NameError::Empty { what });
        }
        if let Some(found) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(NameError::BadChar {
                what,
                input: shorten(s),
                found,
                allowed: "letters A-Z and a-z, digits and . _ : -",
            });
        }
        // ASCII from here on: its bytes are its characters.
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                what,
                input: shorten(s),
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(Self(s.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_newtype!(NameError: Name, Label, ImageRef, CallKey);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for s in ["a", "research", "lead-2", "0", &"x".repeat(63)] {
            assert_eq!(Name::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn bad_names_say_why() {
        let cases = [
            ("", "cannot be empty"),
            ("a.b", "'.'"),
            ("a/b", "'/'"),
            ("Alice", "'A'"),
            ("a b", "' '"),
            ("a*", "'*'"),
            ("a>", "'>'"),
            ("-a", "start and end"),
            ("a-", "start and end"),
            ("é", "'é'"),
        ];
        for (input, needle) in cases {
            let err = Name::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
        let long = "x".repeat(64);
        assert!(Name::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("64 characters"));
    }

    #[test]
    fn serde_validates_on_the_way_in() {
        assert!(serde_json::from_str::<Name>("\"ok-name\"").is_ok());
        assert!(serde_json::from_str::<Name>("\"not.ok\"").is_err());
        assert!(serde_json::from_str::<Label>("\"two\\nlines\"").is_err());
        assert!(
            Label::parse("evil\u{202E}txt.exe").is_err(),
            "a bidi override reorders a terminal"
        );
        assert!(Label::parse("zero\u{200B}width").is_err());
        // Found by the fuzz suite (tests/tests/fuzz.rs): a second line, and hidden text.
        for hidden in [
            "\u{2028}",
            "\u{2029}",
            "\u{061C}",
            "\u{E0041}\u{E0042}",
            "\u{206A}",
        ] {
            assert!(Label::parse(&format!("a{hidden}b")).is_err(), "{hidden:?}");
        }
        assert!(Label::parse("Ünïcödé role, 研究").is_ok());
        assert!(ImageRef::parse("roster/agent:1").is_ok());
        assert!(ImageRef::parse("x y").is_err());
        assert!(ImageRef::parse("--privileged").is_err());
    }

    #[test]
    fn call_keys() {
        for s in [
            "a",
            "0190f6c2-7a1b-7cde-8f00-aa",
            "Run:42.step_3",
            &"K".repeat(64),
        ] {
            assert_eq!(CallKey::parse(s).unwrap().as_str(), s);
        }
        let cases = [
            ("", "cannot be empty"),
            ("a b", "' '"),
            ("a/b", "'/'"),
            ("é", "'é'"),
            ("a\nb", "'\\n'"),
        ];
        for (input, needle) in cases {
            let err = CallKey::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
        let err = CallKey::parse(&"k".repeat(65)).unwrap_err().to_string();
        assert!(err.contains("65 characters long; at most 64"), "{err}");
        assert!(serde_json::from_str::<CallKey>("\"retry-1\"").is_ok());
        assert!(serde_json::from_str::<CallKey>("\"retry 1\"").is_err());
    }
}
