//! `docs/gateway.md` is the gateway protocol for people who write an agent in any language,
//! without `roster-agent`. This keeps it from drifting away from the code: every method of
//! [`METHODS`] has a heading of its own with an example request of that method, every
//! [`ErrorCode`] has a row in the table of codes, every example request line decodes with
//! [`decode_request`], and every example answer line is shaped like an answer — its `ok` value
//! that of its method's type in [`roster_core::gateway::answer`], as the wire encoder
//! ([`encode_response`]) writes it.
//!
//! An example request is a line of a ```` ```json ```` block that starts with `{"id"` and is not
//! an answer; an example answer is a line of such a block that is a JSON object with `id` and
//! `ok` or `error`. Lines meant to be refused belong in ```` ```text ```` blocks. An `ok` answer
//! answers the method of the section it is in: the last heading that starts with a code span
//! naming a method (`` ### `act` ``, `` ## `act` in detail ``).

// Test code: a failed unwrap or a panic is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use roster_core::gateway::answer::Answer;
use roster_core::gateway::{decode_request, encode_response, ErrorCode, METHODS};
use serde::de::{self, Deserialize, Visitor};
use serde_json::Value;

fn doc() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/gateway.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A deserializer that only records the variant names serde's derive hands to
/// `deserialize_enum`: every variant, spelled as on the wire, whatever is added later.
struct VariantNames<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for VariantNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only enums are read here"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = variants;
        Err(de::Error::custom("the names are all this reads"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// Every error code's wire name (`"code"` in an error answer).
fn error_codes() -> Vec<&'static str> {
    let mut names: &'static [&'static str] = &[];
    let _ = ErrorCode::deserialize(VariantNames(&mut names));
    assert!(
        !names.is_empty(),
        "serde gave no variant names for ErrorCode"
    );
    for name in names {
        // The names serde reads are the names it writes: each one is a code on the wire.
        let code: ErrorCode = serde_json::from_value(Value::from(*name)).unwrap();
        assert_eq!(serde_json::to_value(code).unwrap(), Value::from(*name));
    }
    names.to_vec()
}

/// The method a heading names, if it is a heading of exactly one code span (`` ### `act` ``).
fn heading_method(line: &str) -> Option<&str> {
    let text = line.strip_prefix('#')?.trim_start_matches('#');
    let text = text.strip_prefix(' ')?.trim();
    text.strip_prefix('`')?.strip_suffix('`')
}

/// The method a section is about: a heading that starts with a code span naming a method
/// (`` ### `act` ``, `` ## `act` in detail ``).
fn section_method(line: &str) -> Option<&str> {
    let text = line.strip_prefix('#')?.trim_start_matches('#');
    let text = text.strip_prefix(' ')?.trim().strip_prefix('`')?;
    let method = &text[..text.find('`')?];
    METHODS.contains(&method).then_some(method)
}

/// The lines of ```` ```json ```` blocks, each with its line number and the method of the
/// section it falls in (if any).
fn json_lines(doc: &str) -> Vec<(usize, Option<&str>, &str)> {
    let mut out = Vec::new();
    let mut in_json = false;
    let mut in_block = false;
    let mut section = None;
    for (i, line) in doc.lines().enumerate() {
        let fence = line.trim_start();
        if let Some(info) = fence.strip_prefix("```") {
            if in_block {
                (in_block, in_json) = (false, false);
            } else {
                (in_block, in_json) = (true, info.trim() == "json");
            }
            continue;
        }
        if in_json {
            // Blocks inside list items are indented.
            out.push((i + 1, section, line.trim_start()));
        } else if !in_block && line.starts_with('#') {
            section = section_method(line);
        }
    }
    out
}

/// Whether `value` is an answer line, and what is wrong with it if it is.
fn check_answer(value: &Value) -> Option<Result<(), String>> {
    let object = value.as_object()?;
    if !(object.contains_key("ok") || object.contains_key("error")) {
        return None;
    }
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    let shape = keys == BTreeSet::from(["id", "ok"]) || keys == BTreeSet::from(["id", "error"]);
    if !shape {
        return Some(Err(format!(
            "an answer has `id` and `ok` or `error`, not {keys:?}"
        )));
    }
    if !(object["id"].is_u64() || object["id"].is_null()) {
        return Some(Err("an answer's `id` is a whole number or null".into()));
    }
    if let Some(error) = object.get("error") {
        let known = error_codes();
        let code = error.get("code").and_then(Value::as_str);
        if !code.is_some_and(|c| known.contains(&c)) {
            return Some(Err(format!("error code {code:?} is not one of {known:?}")));
        }
        if !error.get("message").is_some_and(Value::is_string) {
            return Some(Err("an error has a `message` string".into()));
        }
    }
    Some(Ok(()))
}

/// What is wrong with the `ok` value of an example answer to `method`, if anything: it must
/// read as that method's answer type, and that type must write it back as it stands (so that a
/// field the type does not have, one it spells otherwise, or a `null` the runtime leaves out,
/// all fail).
fn check_ok(method: Option<&str>, ok: &Value) -> Result<(), String> {
    let method = method.ok_or("an `ok` answer outside the section of a method")?;
    let answer = Answer::decode(method, ok.clone())
        .map_err(|e| format!("not the answer of `{method}`: {e}"))?;
    let line = encode_response(
        Some(1),
        &Ok::<_, roster_core::gateway::GatewayError>(answer),
    );
    let written: Value = serde_json::from_str(&line).map_err(|e| e.to_string())?;
    if &written["ok"] != ok {
        return Err(format!(
            "the answer of `{method}` is written otherwise by the runtime: {}",
            written["ok"]
        ));
    }
    Ok(())
}

#[test]
fn every_method_has_a_heading_and_an_example_that_decodes() {
    let doc = doc();
    let mut problems = Vec::new();
    let headings: Vec<&str> = doc.lines().filter_map(heading_method).collect();
    for method in METHODS {
        match headings.iter().filter(|h| *h == method).count() {
            0 => problems.push(format!("no heading `### \\`{method}\\``")),
            1 => {}
            n => problems.push(format!("{n} headings for `{method}`")),
        }
    }
    let mut exemplified = BTreeSet::new();
    let mut answered = BTreeSet::new();
    let mut requests = 0;
    for (n, section, line) in json_lines(&doc) {
        if !line.starts_with('{') {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("line {n}: not one JSON value: {e}"));
                continue;
            }
        };
        if let Some(answer) = check_answer(&value) {
            let answer = answer.and_then(|()| match value.get("ok") {
                Some(ok) => check_ok(section, ok).map(|()| answered.extend(section)),
                None => Ok(()),
            });
            if let Err(e) = answer {
                problems.push(format!("line {n}: {e}: {line}"));
            }
            continue;
        }
        if !line.starts_with(r#"{"id""#) {
            continue;
        }
        requests += 1;
        match decode_request(line.as_bytes()) {
            Ok(request) => {
                let call = serde_json::to_value(&request.call).unwrap();
                let method = call["method"].as_str().unwrap_or_default().to_owned();
                if section == Some(method.as_str()) {
                    exemplified.insert(method);
                }
            }
            Err((_, e)) => problems.push(format!(
                "line {n}: the example request does not decode ({:?}: {}): {line}",
                e.code, e.message
            )),
        }
    }
    // `decide_approval` is always refused: its examples are errors.
    for method in METHODS.iter().filter(|m| **m != "decide_approval") {
        if !answered.contains(*method) {
            problems.push(format!(
                "no example `ok` answer of `{method}` in its section (a ```json line \
                 {{\"id\":…,\"ok\":…}})"
            ));
        }
    }
    for method in METHODS {
        if !exemplified.contains(*method) {
            problems.push(format!(
                "no example request of `{method}` under its heading (a ```json line starting \
                 with {{\"id\")"
            ));
        }
    }
    assert!(
        requests >= METHODS.len(),
        "only {requests} example requests"
    );
    assert!(
        problems.is_empty(),
        "docs/gateway.md is out of step with roster_core::gateway:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn every_error_code_has_a_row_in_the_table() {
    let doc = doc();
    let missing: Vec<&str> = error_codes()
        .into_iter()
        .filter(|code| !doc.lines().any(|l| l.starts_with(&format!("| `{code}` |"))))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/gateway.md has no row `| \\`CODE\\` |` for these error codes: {missing:?}"
    );
}

#[test]
fn the_checks_see_what_they_check() {
    // The enum trick lists every code; one more variant would show up here too.
    let codes = error_codes();
    assert!(codes.contains(&"line_too_long") && codes.contains(&"tool_failed"));
    assert_eq!(heading_method("### `act`"), Some("act"));
    assert_eq!(heading_method("## `act` in detail"), None);
    assert_eq!(heading_method("`act`"), None);
    let sample = "# x\n### `whoami`\n```json\n{\"id\":1,\"method\":\"whoami\"}\n```\n\
                  ```text\n{\"id\":1,\"method\":\"sudo\"}\n```\n";
    let lines = json_lines(sample);
    assert_eq!(
        lines,
        vec![(4, Some("whoami"), r#"{"id":1,"method":"whoami"}"#)]
    );
    let ok: Value = serde_json::from_str(r#"{"id":1,"ok":{}}"#).unwrap();
    assert_eq!(check_answer(&ok), Some(Ok(())));
    let bad: Value =
        serde_json::from_str(r#"{"error":{"code":"nope","message":"x"},"id":1}"#).unwrap();
    assert!(matches!(check_answer(&bad), Some(Err(_))));
    let request: Value = serde_json::from_str(r#"{"id":1,"method":"whoami"}"#).unwrap();
    assert_eq!(check_answer(&request), None);
    // Sections: a heading that starts with a method's code span.
    assert_eq!(section_method("## `act` in detail"), Some("act"));
    assert_eq!(section_method("### `share_close`"), Some("share_close"));
    assert_eq!(section_method("## `sudo`"), None);
    assert_eq!(section_method("## Methods"), None);
    // An `ok` value is checked against its method's type, both ways.
    let subscribed: Value = serde_json::from_str(r#"{"team":"lab","topics":["a/**"]}"#).unwrap();
    assert_eq!(check_ok(Some("subscribe"), &subscribed), Ok(()));
    assert!(check_ok(None, &subscribed).is_err());
    assert!(check_ok(Some("publish"), &subscribed).is_err());
    let extra: Value = serde_json::from_str(r#"{"team":"lab","topics":["a/**"],"x":1}"#).unwrap();
    assert!(check_ok(Some("subscribe"), &extra).is_err());
    // A retire has no `agent`: a `null` one is not what the runtime writes.
    let retired: Value = serde_json::from_str(r#"{"agent":null,"events":[]}"#).unwrap();
    let e = check_ok(Some("retire"), &retired).unwrap_err();
    assert!(e.contains("written otherwise"), "{e}");
}
