//! `docs/admin.md` is the admin protocol for whoever writes a client; these tests hold it to
//! the code: every operation has a heading and an example that parses as that operation, every
//! example call and frame parses, and every kind of item has a row in the table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use roster_runtime::admin::socket::{Call, Frame};
use roster_runtime::admin::{Item, Request};
use serde_json::Value;

fn doc() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/admin.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The names serde knows for a tagged enum, from its refusal of a name it does not know
/// ("unknown variant `?`, expected one of `a`, `b`").
fn known(refusal: &str) -> Vec<String> {
    let list = refusal
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("not a list of variants: {refusal}"))
        .1;
    list.split(", ")
        .map(|v| {
            v.split('`')
                .nth(1)
                .unwrap_or_else(|| panic!("not a quoted variant: {v}"))
                .to_string()
        })
        .collect()
}

fn ops() -> Vec<String> {
    let refusal = serde_json::from_str::<Request>(r#"{"op": "?"}"#)
        .unwrap_err()
        .to_string();
    known(&refusal)
}

fn item_kinds() -> Vec<String> {
    let refusal = serde_json::from_str::<Item>(r#"{"item": "?", "value": null}"#)
        .unwrap_err()
        .to_string();
    known(&refusal)
}

/// Each ```json block with the `### \`op\`` heading it stands under (`None` outside them).
fn examples(doc: &str) -> Vec<(usize, Option<String>, String)> {
    let mut out = Vec::new();
    let mut heading = None;
    let mut block: Option<(usize, String)> = None;
    for (i, line) in doc.lines().enumerate() {
        if let Some((start, text)) = &mut block {
            if line.starts_with("```") {
                out.push((*start, heading.clone(), std::mem::take(text)));
                block = None;
            } else {
                text.push_str(line);
            }
            continue;
        }
        if line == "```json" {
            block = Some((i + 1, String::new()));
        } else if let Some(rest) = line.strip_prefix("### `") {
            heading = rest.strip_suffix('`').map(str::to_owned);
        } else if line.starts_with("## ") {
            heading = None;
        }
    }
    out
}

#[test]
fn every_operation_has_a_heading_and_an_example_that_parses() {
    let doc = doc();
    let ops = ops();
    assert!(ops.len() > 25, "too few operations found: {ops:?}");
    let mut wrong = Vec::new();
    let mut shown = Vec::new();
    for (line, heading, text) in examples(&doc) {
        let Some(op) = heading else { continue };
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                wrong.push(format!("line {line}: not JSON: {e}"));
                continue;
            }
        };
        if value["op"] != op.as_str() {
            wrong.push(format!(
                "line {line}: under `{op}` but says {}",
                value["op"]
            ));
        }
        match serde_json::from_value::<Request>(value) {
            Ok(_) => shown.push(op),
            Err(e) => wrong.push(format!("line {line}: `{op}` does not parse: {e}")),
        }
    }
    for op in &ops {
        if !shown.contains(op) {
            wrong.push(format!("`{op}` has no heading with an example"));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/admin.md is out of step with roster_runtime::admin::Request:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_example_calls_and_frames_parse() {
    let doc = doc();
    let mut calls = 0;
    let mut frames = 0;
    for (line, heading, text) in examples(&doc) {
        if heading.is_some() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("line {line}: {e}"));
        if value.get("request").is_some() {
            serde_json::from_value::<Call>(value).unwrap_or_else(|e| panic!("line {line}: {e}"));
            calls += 1;
        } else {
            serde_json::from_value::<Frame>(value).unwrap_or_else(|e| panic!("line {line}: {e}"));
            frames += 1;
        }
    }
    assert_eq!(
        (calls, frames),
        (1, 2),
        "the examples of a call and of both frames"
    );
}

#[test]
fn every_kind_of_item_has_a_row() {
    let doc = doc();
    let kinds = item_kinds();
    assert!(kinds.len() > 15, "too few item kinds found: {kinds:?}");
    let missing: Vec<_> = kinds
        .iter()
        .filter(|k| !doc.contains(&format!("| `{k}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/admin.md has no row `| `KIND` |` for these items: {missing:?}"
    );
}
