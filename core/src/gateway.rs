//! The agent-gateway protocol: what an agent may send through its socket, and what it gets back.
//!
//! Newline-delimited JSON, one request per line, one response per request id:
//!
//! ```text
//! → {"id":1,"method":"whoami"}
//! ← {"id":1,"ok":{...}}
//! → {"id":2,"method":"grant","params":{}}
//! ← {"id":2,"error":{"code":"unknown_method","message":"unknown method `grant`; ..."}}
//! ```
//!
//! Nothing from an agent is trusted: [`decode_request`] turns one line into a typed [`Request`]
//! whose every field is a validated core type (names, capabilities, actions, resources, topics),
//! or into a [`GatewayError`] that says what is wrong and carries the request id whenever one
//! could be read, so the agent can match the answer. It never panics, whatever the bytes.
//!
//! [`frame`] cuts the byte stream into those lines, under [`MAX_LINE`], without I/O;
//! [`answer`] holds what each method answers, typed, for [`encode_response`] to write.

pub mod answer;
pub mod frame;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capability::{Action, Amount, Capability, Resource};
use crate::event::RuntimeKind;
use crate::id::{AgentId, ApprovalId, GrantId, ShareId};
use crate::limits::DiskMib;
use crate::name::{CallKey, ImageRef, Label, Name};
use crate::topic::{Topic, TopicPattern};

/// The longest request line accepted, in bytes (the newline excluded).
pub const MAX_LINE: usize = 1024 * 1024;

/// A request id chosen by the agent, echoed in the response.
pub type RequestId = u64;

/// One call an agent can make.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(
    tag = "method",
    content = "params",
    rename_all = "snake_case",
    deny_unknown_fields
)]
#[non_exhaustive]
pub enum Call {
    /// Who am I: id, name, team, role.
    Whoami,
    /// My grants, with their state and budgets.
    Grants,
    /// My team's events, from a position.
    History(HistoryParams),
    /// Hire a teammate with grants derived from mine.
    Hire(HireParams),
    /// Retire an agent I hired.
    Retire(RetireParams),
    /// Pass an attenuated grant to a teammate.
    Delegate(DelegateParams),
    /// Use a capability (waits for approval when one is needed).
    Act(ActParams),
    /// Decide an approval request. Only operators decide approvals (`approval.decide`): an
    /// agent's attempt is always refused, and recorded as `AccessDenied` like any other
    /// refusal, so that an agent trying to approve its own action shows in the log instead of
    /// vanishing as an unknown method.
    DecideApproval(DecideApprovalParams),
    /// Publish a message on a topic.
    Publish(PublishParams),
    /// Receive the messages of matching topics, pushed.
    Subscribe(SubscribeParams),
    /// Offer my team's context on matching topics to another team (needs `share.propose`).
    SharePropose(ShareProposeParams),
    /// Accept a share offered to my team (needs `share.accept`).
    ShareAccept(ShareParams),
    /// Close a share of my team, proposed or open (needs `share.close`).
    ShareClose(ShareParams),
    /// The shares my team is a side of, with their state.
    Shares,
}

/// `history` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// The team version to start at (1 = the first event).
    #[serde(default)]
    pub from: Option<u64>,
    /// At most this many events (the runtime also ends a page by its size, so a page may hold
    /// fewer while more follow: page on with its `next`).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `hire` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HireParams {
    /// The new agent's name in my team.
    pub name: Name,
    /// Its role.
    #[serde(default)]
    pub role: Option<Label>,
    /// Its image (default: the runtime's base image).
    #[serde(default)]
    pub image: Option<ImageRef>,
    /// Its container runtime (default: mine). Its limits and timeout are mine: a teammate is
    /// never less confined than its hirer.
    #[serde(default)]
    pub runtime: Option<RuntimeKind>,
    /// Its home disk quota in MiB (default: mine); one above mine is refused.
    #[serde(default)]
    pub disk_mib: Option<DiskMib>,
    /// Its capabilities, each covered by one of mine.
    #[serde(default)]
    pub grants: Vec<Capability>,
}

/// `retire` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetireParams {
    /// The agent to retire.
    pub agent: AgentId,
}

/// `delegate` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DelegateParams {
    /// The teammate receiving it.
    pub to: AgentId,
    /// What it allows (covered by `from` or another of my grants).
    pub capability: Capability,
    /// The grant of mine to derive from.
    #[serde(default)]
    pub from: Option<GrantId>,
    /// An idempotency key: the same call asked again with it is answered with the events
    /// recorded the first time, and carried out once; another call with it is refused
    /// ([`ErrorCode::KeyReused`]).
    #[serde(default)]
    pub key: Option<CallKey>,
}

/// `act` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActParams {
    /// What to do.
    pub action: Action,
    /// On what.
    pub resource: Resource,
    /// How much it spends (default 1).
    #[serde(default)]
    pub amount: Option<Amount>,
    /// Arguments for the tool provider, names validated, values at most [`MAX_ARG`] bytes.
    #[serde(default)]
    pub args: BTreeMap<Name, String>,
    /// How long to wait for a human's approval, in seconds: [`DEFAULT_ACT_WAIT_SECS`] when
    /// absent, at most [`MAX_ACT_WAIT_SECS`]; 0 answers [`ErrorCode::Pending`] at once.
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    /// An approval asked for earlier (named by a `pending` answer): wait for it again, or use
    /// it once granted. It must be this agent's, for this exact call: action, resource, amount and
    /// `args`.
    #[serde(default)]
    pub approval: Option<ApprovalId>,
    /// An idempotency key: the same call (action, resource, amount, `args`) asked again with it
    /// is answered with the use recorded the first time (`replayed`, without the provider's
    /// answer, and without running the provider again); another call with it is refused
    /// ([`ErrorCode::KeyReused`]).
    #[serde(default)]
    pub key: Option<CallKey>,
}

impl ActParams {
    /// What serde cannot check: each argument at most [`MAX_ARG`] bytes, a wait of at most
    /// [`MAX_ACT_WAIT_SECS`]. Every edge that takes an `act` (the gateway, the admin socket)
    /// asks this before anything is decided.
    pub fn check(&self) -> Result<(), String> {
        if let Some((k, _)) = self.args.iter().find(|(_, v)| v.len() > MAX_ARG) {
            return Err(format!("argument `{k}` is over {MAX_ARG} bytes"));
        }
        if let Some(secs) = self.timeout_secs.filter(|s| *s > MAX_ACT_WAIT_SECS) {
            return Err(format!(
                "timeout_secs is {secs}; an act waits at most {MAX_ACT_WAIT_SECS} s \
                 (call again with the approval id to wait longer)"
            ));
        }
        Ok(())
    }

    /// How long this call waits for a human's decision.
    pub fn wait(&self) -> std::time::Duration {
        let secs = self
            .timeout_secs
            .unwrap_or(DEFAULT_ACT_WAIT_SECS)
            .min(MAX_ACT_WAIT_SECS);
        std::time::Duration::from_secs(u64::from(secs))
    }
}

/// One `act` argument as typed on a command line (`--arg KEY=VALUE`, in both `roster act` and
/// `roster-agent act`): a valid name, then any text up to [`MAX_ARG`] bytes — what the gateway
/// accepts, refused before anything is sent.
pub fn parse_arg(s: &str) -> Result<(Name, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let k = Name::parse_as(k, "argument name").map_err(|e| e.to_string())?;
    if v.len() > MAX_ARG {
        return Err(format!("the value of `{k}` is over {MAX_ARG} bytes"));
    }
    Ok((k, v.to_owned()))
}

/// The `args` of an `act` from `--arg` pairs; a name given twice is refused rather than one
/// value silently winning.
pub fn arg_map(
    pairs: impl IntoIterator<Item = (Name, String)>,
) -> Result<BTreeMap<Name, String>, String> {
    let mut map = BTreeMap::new();
    for (k, v) in pairs {
        if map.contains_key(&k) {
            return Err(format!("--arg {k} is given twice"));
        }
        map.insert(k, v);
    }
    Ok(map)
}

/// `decide_approval` parameters (what `roster approve`/`deny` decides).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DecideApprovalParams {
    /// The approval request.
    pub approval: ApprovalId,
    /// Approve (`true`) or refuse (`false`).
    pub approved: bool,
    /// Why, for people.
    #[serde(default)]
    pub note: Option<Label>,
}

/// How long an `act` waits for a human's approval when the agent does not say, in seconds.
pub const DEFAULT_ACT_WAIT_SECS: u32 = 300;

/// The longest an `act` may wait for a human's approval, in seconds; a longer `timeout_secs`
/// is refused (the agent calls again with the approval id to wait more).
pub const MAX_ACT_WAIT_SECS: u32 = 3600;

/// The longest a tool provider may take to answer, in seconds (a `[tools.…]` `timeout_secs`
/// above it is refused), so that a client can bound an `act`: its approval wait plus this.
pub const MAX_TOOL_SECS: u32 = 600;

/// The longest value of one `act` argument, in bytes.
pub const MAX_ARG: usize = 64 * 1024;

/// The longest `publish` message, in bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// `publish` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishParams {
    /// The topic, in my team (or crossing to `team` through an open share).
    pub topic: Topic,
    /// The message, at most [`MAX_MESSAGE`] bytes.
    pub message: String,
    /// Another team to send to, through a share.
    #[serde(default)]
    pub team: Option<Name>,
}

/// `subscribe` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    /// Topic patterns to receive.
    pub topics: Vec<TopicPattern>,
}

/// `share_propose` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShareProposeParams {
    /// The team to offer to, by name.
    pub to: Name,
    /// Which of my team's topics would flow.
    pub topics: TopicPattern,
}

/// `share_accept` and `share_close` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShareParams {
    /// The share.
    pub share: ShareId,
}

/// One decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Its id, echoed in the response.
    pub id: RequestId,
    /// What it asks.
    pub call: Call,
}

/// The kind of a protocol error, stable for programs (`code` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The line is longer than [`MAX_LINE`].
    LineTooLong,
    /// The line is not a JSON object.
    InvalidJson,
    /// No usable `id`.
    MissingId,
    /// No such method.
    UnknownMethod,
    /// A parameter is missing, unknown, of the wrong type or invalid.
    BadParams,
    /// The runtime refused (the message says why; the refusal is recorded).
    Denied,
    /// Too many requests: slow down.
    RateLimited,
    /// The runtime failed; the request may be retried.
    Internal,
    /// `act`: the action waits for a human's approval and the agent's wait ended first. The
    /// message names the approval id; call `act` again with it (`approval`) to wait again or,
    /// once it is granted, to use it. Nothing was spent.
    Pending,
    /// `act`: no tool provider can carry out the action now (none is configured for it and
    /// there is no NATS bus, or the bus is unreachable). Refused before deciding: nothing was
    /// recorded or spent.
    Unavailable,
    /// `act`: the action was authorized and recorded as performed (`ActionPerformed`, named in
    /// the message), but its tool provider failed, timed out or did not answer. The spend
    /// stands: the log records what was authorized, not what the provider did.
    ToolFailed,
    /// The runtime's data disk is full: the decision that failed was not recorded (nothing was
    /// spent by it). Try again later; reads still work.
    DiskFull,
    /// `act`, `delegate`: the call's `key` was used by this agent for another call (the
    /// refusal is recorded). A key names one call: choose a new one.
    KeyReused,
}

impl ErrorCode {
    /// The exit code a command line gives for it, the same in `roster-agent` and `roster act`
    /// (so a script can branch on it wherever it runs): 2 a request that could not be read or
    /// was invalid, 3 denied, 4 rate-limited, 6 pending, 7 unavailable, 8 tool_failed, 10
    /// disk_full, 11 key_reused, 1 internal. (5 is `roster-agent`'s own: the gateway cannot be
    /// reached.)
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorCode::LineTooLong
            | ErrorCode::InvalidJson
            | ErrorCode::MissingId
            | ErrorCode::UnknownMethod
            | ErrorCode::BadParams => 2,
            ErrorCode::Denied => 3,
            ErrorCode::RateLimited => 4,
            ErrorCode::Pending => 6,
            ErrorCode::Unavailable => 7,
            ErrorCode::ToolFailed => 8,
            ErrorCode::DiskFull => 10,
            ErrorCode::KeyReused => 11,
            ErrorCode::Internal => 1,
        }
    }
}

/// A protocol error: a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct GatewayError {
    /// What kind of error.
    pub code: ErrorCode,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl GatewayError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The methods, for "unknown method" answers.
pub const METHODS: &[&str] = &[
    "whoami",
    "grants",
    "history",
    "hire",
    "retire",
    "delegate",
    "act",
    "decide_approval",
    "publish",
    "subscribe",
    "share_propose",
    "share_accept",
    "share_close",
    "shares",
];

/// The most of a decoder's own words (serde's, which may quote the line) an answer carries:
/// an error names what is wrong, it does not echo a megabyte back.
const MAX_QUOTED: usize = 512;

/// `text` if it is short; else its start and its end (where serde says the line and column),
/// cut on character boundaries, with what was left out counted.
fn bounded(text: String) -> String {
    if text.len() <= MAX_QUOTED {
        return text;
    }
    let head = floor_boundary(&text, MAX_QUOTED * 3 / 4);
    let tail = ceil_boundary(&text, text.len() - MAX_QUOTED / 4);
    format!(
        "{} … ({} bytes left out) … {}",
        &text[..head],
        tail - head,
        &text[tail..]
    )
}

/// The last character boundary of `s` at or before `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    (0..=i.min(s.len()))
        .rev()
        .find(|&j| s.is_char_boundary(j))
        .unwrap_or(0)
}

/// The first character boundary of `s` at or after `i`.
fn ceil_boundary(s: &str, i: usize) -> usize {
    (i..=s.len())
        .find(|&j| s.is_char_boundary(j))
        .unwrap_or(s.len())
}

/// Decodes one request line (without its newline). On error, the id is returned when the line
/// had a readable one, so that the answer can name the request it refuses.
pub fn decode_request(line: &[u8]) -> Result<Request, (Option<RequestId>, GatewayError)> {
    if line.len() > MAX_LINE {
        let e = GatewayError::new(
            ErrorCode::LineTooLong,
            format!(
                "a request line is at most {MAX_LINE} bytes; this one is {}",
                line.len()
            ),
        );
        return Err((None, e));
    }
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
        (
            None,
            GatewayError::new(ErrorCode::InvalidJson, bounded(format!("not JSON: {e}"))),
        )
    })?;
    let serde_json::Value::Object(mut object) = value else {
        return Err((
            None,
            GatewayError::new(ErrorCode::InvalidJson, "a request is a JSON object"),
        ));
    };
    let id = match object.remove("id") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    };
    let Some(id) = id else {
        let e = GatewayError::new(ErrorCode::MissingId, "`id` must be a whole number from 0");
        return Err((None, e));
    };
    let fail = |code, message: String| Err((Some(id), GatewayError::new(code, message)));
    let method = match object.get("method") {
        Some(serde_json::Value::String(m)) => m.clone(),
        _ => return fail(ErrorCode::BadParams, "`method` must be a string".into()),
    };
    if !METHODS.contains(&method.as_str()) {
        let shown: String = method.chars().take(64).collect();
        return fail(
            ErrorCode::UnknownMethod,
            format!(
                "unknown method `{shown}`; the methods are {}",
                METHODS.join(", ")
            ),
        );
    }
    if let Some(extra) = object.keys().find(|k| *k != "method" && *k != "params") {
        let shown: String = extra.chars().take(64).collect();
        return fail(
            ErrorCode::BadParams,
            format!("unknown field `{shown}` in the request"),
        );
    }
    // Methods without parameters accept none, or an empty object.
    if matches!(method.as_str(), "whoami" | "grants" | "shares") {
        match object.remove("params") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(p)) if p.is_empty() => {}
            Some(_) => {
                return fail(
                    ErrorCode::BadParams,
                    format!("`{method}` takes no parameters"),
                )
            }
        }
    } else {
        match object.get("params") {
            None | Some(serde_json::Value::Null) => {
                object.insert(
                    "params".into(),
                    serde_json::Value::Object(serde_json::Map::new()),
                );
            }
            Some(serde_json::Value::Object(_)) => {}
            // serde would read a struct from an array by position (`[1]` as `{"from":1}`):
            // parameters are named, or refused.
            Some(_) => {
                return fail(
                    ErrorCode::BadParams,
                    format!("`{method}`: `params` must be a JSON object"),
                )
            }
        }
    }
    let call: Call = serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        (
            Some(id),
            GatewayError::new(ErrorCode::BadParams, bounded(format!("{method}: {e}"))),
        )
    })?;
    match &call {
        Call::Act(p) => {
            if let Err(why) = p.check() {
                return fail(ErrorCode::BadParams, format!("act: {why}"));
            }
        }
        Call::Publish(p) if p.message.len() > MAX_MESSAGE => {
            return fail(
                ErrorCode::BadParams,
                format!(
                    "publish: the message is {} bytes; a message is at most {MAX_MESSAGE} bytes",
                    p.message.len()
                ),
            );
        }
        _ => {}
    }
    Ok(Request { id, call })
}

/// Encodes the answer to request `id` as one line (without the newline). The runtime gives it
/// an [`answer::Answer`]; any serializable value is taken, so that a test peer can answer what
/// the runtime never would.
///
/// Through a `serde_json::Value`, whose keys are sorted: every line has its keys in
/// alphabetical order at every depth, whatever order the types declare them in. An answer that
/// cannot be encoded (none of [`answer`]'s types can fail) is answered `internal`, not dropped.
pub fn encode_response<T: Serialize>(
    id: Option<RequestId>,
    result: &Result<T, GatewayError>,
) -> String {
    response_body(id, result).to_string()
}

/// [`encode_response`], appended to `out`: the caller chooses where the line's memory comes
/// from (the runtime makes a page of history on one thread and frees it on another, and gives
/// the buffer from the thread that frees it, so that the allocator takes it back there).
pub fn encode_response_into<T: Serialize>(
    out: &mut Vec<u8>,
    id: Option<RequestId>,
    result: &Result<T, GatewayError>,
) {
    // A `Value` always encodes, and a `Vec` always takes it.
    let _ = serde_json::to_writer(out, &response_body(id, result));
}

/// The answer line as JSON, its keys sorted (see [`encode_response`]).
fn response_body<T: Serialize>(
    id: Option<RequestId>,
    result: &Result<T, GatewayError>,
) -> serde_json::Value {
    match result.as_ref().map(serde_json::to_value) {
        Ok(Ok(value)) => serde_json::json!({ "id": id, "ok": value }),
        Ok(Err(e)) => {
            let e = GatewayError::new(
                ErrorCode::Internal,
                format!("the runtime could not encode its answer: {e}"),
            );
            serde_json::json!({ "id": id, "error": e })
        }
        Err(e) => serde_json::json!({ "id": id, "error": e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Call {
        decode_request(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line}: {e:?}"))
            .call
    }

    fn err(line: &str) -> (Option<RequestId>, ErrorCode, String) {
        let (id, e) = decode_request(line.as_bytes()).unwrap_err();
        (id, e.code, e.message)
    }

    #[test]
    fn an_error_quotes_a_long_line_only_in_part() {
        // Found by the long fuzz run: serde quotes a string it cannot take with each invisible
        // character escaped (`\u{202e}`, 8 bytes for 3), so an answer outgrew the line 2.7×.
        let long = "\u{202e}".repeat(300_000);
        for line in [
            format!(r#"{{"id":1,"method":"act","params":{{"amount":"{long}"}}}}"#),
            format!(r#"{{"id":1,"method":"history","params":{{"from":"{long}"}}}}"#),
        ] {
            let (_, _, message) = err(&line);
            assert!(message.len() <= MAX_QUOTED + 64, "{} bytes", message.len());
            assert!(message.contains("bytes left out"), "{message}");
        }
        // A short message is whole, and a cut lands between characters.
        assert_eq!(bounded("act: nope".into()), "act: nope");
        let cut = bounded("é".repeat(MAX_QUOTED));
        assert!(cut.starts_with('é') && cut.ends_with('é'), "{cut}");
    }

    #[test]
    fn command_line_args_are_checked_like_the_gateway_checks_them() {
        let (k, v) = parse_arg("subject=a=b").unwrap();
        assert_eq!((k.as_str(), v.as_str()), ("subject", "a=b"));
        assert_eq!(parse_arg("empty=").unwrap().1, "");
        for (bad, says) in [
            ("subject", "not KEY=VALUE"),
            ("Subject=hi", "argument name"),
            ("=hi", "argument name"),
        ] {
            let e = parse_arg(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = format!("k={}", "x".repeat(MAX_ARG + 1));
        assert!(parse_arg(&long).unwrap_err().contains("over"));
        let pair = |s: &str| parse_arg(s).unwrap();
        let map = arg_map([pair("a=1"), pair("b=2")]).unwrap();
        assert_eq!(map.len(), 2);
        let e = arg_map([pair("a=1"), pair("a=2")]).unwrap_err();
        assert_eq!(e, "--arg a is given twice");
    }

    #[test]
    fn requests_decode_into_validated_types() {
        assert_eq!(ok(r#"{"id":1,"method":"whoami"}"#), Call::Whoami);
        assert_eq!(
            ok(r#"{"id":1,"method":"grants","params":{}}"#),
            Call::Grants
        );
        assert_eq!(
            ok(r#"{"id":2,"method":"history"}"#),
            Call::History(HistoryParams::default())
        );
        let hire = ok(
            r#"{"id":3,"method":"hire","params":{"name":"scout","grants":["email.send@mailbox:alice"]}}"#,
        );
        let Call::Hire(h) = hire else {
            panic!("not a hire")
        };
        assert_eq!(h.name.as_str(), "scout");
        assert_eq!(h.grants[0].to_string(), "email.send@mailbox:alice");
        assert_eq!(h.disk_mib, None);
        let Call::Hire(h) =
            ok(r#"{"id":3,"method":"hire","params":{"name":"scout","disk_mib":512}}"#)
        else {
            panic!("not a hire")
        };
        assert_eq!(h.disk_mib.map(DiskMib::get), Some(512));
        let act = ok(
            r#"{"id":4,"method":"act","params":{"action":"spend.usd","resource":"vendor:acme","amount":5,"args":{"memo":"x"}}}"#,
        );
        let Call::Act(a) = act else {
            panic!("not an act")
        };
        assert_eq!(a.amount.map(|n| n.get()), Some(5));
        assert_eq!((a.approval, a.wait().as_secs()), (None, 300));
        let again = ok(
            r#"{"id":4,"method":"act","params":{"action":"email.send","resource":"mailbox:a","timeout_secs":0,"approval":"apr_0192f0c0000070008000000000000001"}}"#,
        );
        let Call::Act(a) = again else {
            panic!("not an act")
        };
        assert_eq!(a.wait().as_secs(), 0);
        assert_eq!(
            a.approval.map(|id| id.to_string()).as_deref(),
            Some("apr_0192f0c0000070008000000000000001")
        );
        let decide = ok(
            r#"{"id":4,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001","approved":true,"note":"mine, so fine"}}"#,
        );
        let Call::DecideApproval(d) = decide else {
            panic!("not a decide_approval")
        };
        assert_eq!(
            (d.approval.to_string(), d.approved),
            ("apr_0192f0c0000070008000000000000001".to_owned(), true)
        );
        assert_eq!(
            d.note.map(|n| n.to_string()).as_deref(),
            Some("mine, so fine")
        );
        let Call::DecideApproval(d) = ok(
            r#"{"id":4,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001","approved":false}}"#,
        ) else {
            panic!("not a decide_approval")
        };
        assert_eq!((d.approved, d.note), (false, None));
        assert_eq!(ok(r#"{"id":5,"method":"shares"}"#), Call::Shares);
        let propose = ok(
            r#"{"id":6,"method":"share_propose","params":{"to":"product","topics":"findings/**"}}"#,
        );
        let Call::SharePropose(p) = propose else {
            panic!("not a share_propose")
        };
        assert_eq!(
            (p.to.as_str(), p.topics.as_str()),
            ("product", "findings/**")
        );
        let share = "shr_0192f0c0000070008000000000000001";
        for method in ["share_accept", "share_close"] {
            let line = format!(r#"{{"id":7,"method":"{method}","params":{{"share":"{share}"}}}}"#);
            match ok(&line) {
                Call::ShareAccept(p) | Call::ShareClose(p) => {
                    assert_eq!(p.share.to_string(), share)
                }
                other => panic!("{method} decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn bad_lines_get_typed_errors_with_the_id_when_there_is_one() {
        let cases = [
            ("not json", None, ErrorCode::InvalidJson),
            ("[1,2]", None, ErrorCode::InvalidJson),
            (r#"{"method":"whoami"}"#, None, ErrorCode::MissingId),
            (r#"{"id":-1,"method":"whoami"}"#, None, ErrorCode::MissingId),
            (
                r#"{"id":"7","method":"whoami"}"#,
                None,
                ErrorCode::MissingId,
            ),
            (
                r#"{"id":7,"method":"sudo"}"#,
                Some(7),
                ErrorCode::UnknownMethod,
            ),
            (r#"{"id":7,"method":5}"#, Some(7), ErrorCode::BadParams),
            (
                r#"{"id":7,"method":"whoami","as":"operator"}"#,
                Some(7),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":7,"method":"whoami","params":{"x":1}}"#,
                Some(7),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"history","params":[1,2]}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"hire","params":["scout"]}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"history","params":"x"}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"hire","params":{"name":"Bad.Name"}}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"hire","params":{"name":"ok","grants":["*"]}}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"hire","params":{"name":"ok","mounts":["/"]}}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"hire","params":{"name":"ok","privileged":true}}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":8,"method":"hire","params":{"name":"ok","disk_mib":63}}"#,
                Some(8),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"act","params":{"action":"a.*","resource":"x"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"act","params":{"action":"a","resource":"x","amount":0}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"act","params":{"action":"a","resource":"x","amount":"1"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"act","params":{"action":"a","resource":"x","timeout_secs":3601}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"act","params":{"action":"a","resource":"x","approval":"grt_0192f0c0000070008000000000000001"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001","approved":"yes"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"decide_approval","params":{"approval":"grt_0192f0c0000070008000000000000001","approved":true}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001","approved":true,"as":"operator"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001","approved":true,"note":"two\nlines"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"approve","params":{"approval":"apr_0192f0c0000070008000000000000001"}}"#,
                Some(9),
                ErrorCode::UnknownMethod,
            ),
            (
                r#"{"id":9,"method":"publish","params":{"topic":"a.b","message":"m"}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":9,"method":"subscribe","params":{"topics":[">"]}}"#,
                Some(9),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"shares","params":{"team":"other"}}"#,
                Some(10),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"share_propose","params":{"to":"product"}}"#,
                Some(10),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"share_propose","params":{"to":"product","topics":"a/**","from":"research"}}"#,
                Some(10),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"share_propose","params":{"to":"Product","topics":"a/**"}}"#,
                Some(10),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"share_propose","params":{"to":"product","topics":"a.>"}}"#,
                Some(10),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"share_accept","params":{"share":"grt_0192f0c0000070008000000000000001"}}"#,
                Some(10),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"share_close","params":{}}"#,
                Some(10),
                ErrorCode::BadParams,
            ),
            (
                r#"{"id":10,"method":"shareClose","params":{}}"#,
                Some(10),
                ErrorCode::UnknownMethod,
            ),
        ];
        for (line, id, code) in cases {
            let (got_id, got_code, message) = err(line);
            assert_eq!((got_id, got_code), (id, code), "{line}: {message}");
            assert!(!message.is_empty());
        }
        let long = format!(
            r#"{{"id":1,"method":"whoami","params":"{}"}}"#,
            "x".repeat(MAX_LINE)
        );
        assert_eq!(err(&long).1, ErrorCode::LineTooLong);
        let big_arg = format!(
            r#"{{"id":1,"method":"act","params":{{"action":"a","resource":"x","args":{{"k":"{}"}}}}}}"#,
            "x".repeat(MAX_ARG + 1)
        );
        assert_eq!(err(&big_arg).1, ErrorCode::BadParams);
        let publish = |n: usize| {
            format!(
                r#"{{"id":1,"method":"publish","params":{{"topic":"a","message":"{}"}}}}"#,
                "é".repeat(n / 2)
            )
        };
        assert!(matches!(ok(&publish(MAX_MESSAGE)), Call::Publish(_)));
        let (_, code, message) = err(&publish(MAX_MESSAGE + 2));
        assert_eq!(code, ErrorCode::BadParams);
        assert!(message.contains("at most 65536 bytes"), "{message}");
    }

    #[test]
    fn responses_are_one_line_naming_the_request() {
        let subscribed = answer::Subscribed {
            topics: vec![TopicPattern::parse("a/**").unwrap()],
            team: Name::parse("lab").unwrap(),
        };
        let ok = encode_response(Some(3), &Ok(answer::Answer::from(subscribed)));
        assert_eq!(ok, r#"{"id":3,"ok":{"team":"lab","topics":["a/**"]}}"#);
        let e = GatewayError::new(ErrorCode::UnknownMethod, "no\nsuch");
        let line = encode_response(None, &Err::<answer::Answer, _>(e));
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(r#""code":"unknown_method""#), "{line}");
    }
}
