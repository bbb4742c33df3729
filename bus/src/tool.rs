//! Tool providers on NATS: request/reply on `NS.tool.ACTION`.
//!
//! The runtime sends one [`ToolCall`] as JSON (only after the action was authorized and
//! recorded) and takes the reply's payload, one JSON value of at most [`MAX_ANSWER`] bytes, as
//! the result it hands to the agent. Any NATS client in any language can be a provider: it
//! subscribes (a queue group lets several share the load) and replies. [`respond`] is such a
//! provider in Rust, for tests and small services.
//!
//! A reply is taken only on the call's own reply subject: the client's inbox prefix (the URL's
//! `inbox=`, which the server lets only the runtime's user subscribe to), then 128 bits from
//! the operating system's CSPRNG, new for every call. Only whoever received the request knows
//! it: a provider of another action that saw its own calls' reply subjects cannot derive this
//! one's, and a user the server lets neither subscribe to `NS.tool.ACTION` nor publish to the
//! runtime's inbox cannot answer at all (`docs/nats.md` has the server configuration). A
//! provider needs nothing new: it answers on the reply subject, as any NATS responder does.

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::Client;
use futures_util::StreamExt;
use roster_core::capability::Action;
use roster_core::name::Name;
use roster_core::tool::{ToolCall, MAX_ANSWER};

use crate::subject;

/// The queue group [`respond`] joins, so that several providers of one action share its calls.
pub const QUEUE_GROUP: &str = "roster-tool";

/// Why a call to a provider on NATS gave no result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// Nobody listens on the action's subject.
    #[error("no tool provider for {action}: nothing answers on {subject}")]
    NoProvider {
        /// The action.
        action: String,
        /// Its subject.
        subject: String,
    },
    /// A provider listens but did not answer in time.
    #[error("the tool provider for {action} did not answer on {subject} within {secs} s")]
    Timeout {
        /// The action.
        action: String,
        /// Its subject.
        subject: String,
        /// The time it had.
        secs: u64,
    },
    /// The reply is not one JSON value, or is too large.
    #[error("the tool provider for {action} answered {why}")]
    BadAnswer {
        /// The action.
        action: String,
        /// What is wrong with it.
        why: String,
    },
    /// The request could not be sent (the connection is down), or a subscription failed.
    #[error("NATS: cannot {op}: {why}")]
    Nats {
        /// What was being done.
        op: &'static str,
        /// What async-nats said.
        why: String,
    },
}

/// Sends `call` to the provider of its action on `NS.tool.ACTION` and returns its answer,
/// waiting at most `timeout`.
pub async fn request(
    client: &Client,
    ns: &Name,
    call: &ToolCall,
    timeout: Duration,
) -> Result<serde_json::Value, ToolError> {
    let action = call.action.to_string();
    let subject = subject::tool(ns, &call.action);
    let payload = serde_json::to_vec(call).map_err(|e| ToolError::Nats {
        op: "encode the call",
        why: e.to_string(),
    })?;
    let req = async_nats::Request::new()
        .payload(payload.into())
        .inbox(reply_subject(client)?)
        .timeout(Some(timeout));
    let reply = client
        .send_request(subject.clone(), req)
        .await
        .map_err(|e| match e.kind() {
            RequestErrorKind::NoResponders => ToolError::NoProvider {
                action: action.clone(),
                subject: subject.clone(),
            },
            RequestErrorKind::TimedOut => ToolError::Timeout {
                action: action.clone(),
                subject: subject.clone(),
                secs: timeout.as_secs(),
            },
            RequestErrorKind::Other => ToolError::Nats {
                op: "send the call",
                why: e.to_string(),
            },
        })?;
    parse_answer(&action, &reply.payload)
}

/// A reply subject for one call: the client's inbox prefix and a fresh unguessable token.
fn reply_subject(client: &Client) -> Result<String, ToolError> {
    let mut token = [0u8; 16];
    getrandom::fill(&mut token).map_err(|e| ToolError::Nats {
        op: "draw a reply subject",
        why: e.to_string(),
    })?;
    let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}.{hex}", client.new_inbox()))
}

/// One JSON value of at most [`MAX_ANSWER`] bytes, or why not.
fn parse_answer(action: &str, bytes: &[u8]) -> Result<serde_json::Value, ToolError> {
    let bad = |why: String| ToolError::BadAnswer {
        action: action.to_owned(),
        why,
    };
    if bytes.len() > MAX_ANSWER {
        return Err(bad(format!(
            "{} bytes; an answer is at most {MAX_ANSWER}",
            bytes.len()
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| bad(format!("something that is not JSON ({e})")))
}

/// A provider answering on NATS; stops when dropped.
#[derive(Debug)]
pub struct Responder {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `action` on `NS.tool.ACTION` (in queue group [`QUEUE_GROUP`]) with `answer`, until
/// the returned [`Responder`] is dropped. A request that is not a [`ToolCall`] is answered
/// `{"error": …}`. Returns once the server has the subscription, so a call made afterwards
/// reaches it.
pub async fn respond<F>(
    client: Client,
    ns: &Name,
    action: &Action,
    answer: F,
) -> Result<Responder, ToolError>
where
    F: Fn(ToolCall) -> serde_json::Value + Send + 'static,
{
    let subject = subject::tool(ns, action);
    let mut sub = client
        .queue_subscribe(subject, QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| ToolError::Nats {
            op: "subscribe",
            why: e.to_string(),
        })?;
    client.flush().await.map_err(|e| ToolError::Nats {
        op: "flush the subscription",
        why: e.to_string(),
    })?;
    let task = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let Some(reply) = msg.reply else { continue };
            let body = match serde_json::from_slice::<ToolCall>(&msg.payload) {
                Ok(call) => answer(call),
                Err(e) => serde_json::json!({ "error": format!("not a tool call: {e}") }),
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let _ = client.publish(reply, bytes.into()).await;
        }
    });
    Ok(Responder { task })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_one_bounded_json_value() {
        assert_eq!(
            parse_answer("a", br#"{"sent":true}"#).unwrap(),
            serde_json::json!({"sent": true})
        );
        let e = parse_answer("email.send", b"sent!")
            .unwrap_err()
            .to_string();
        assert!(e.contains("email.send") && e.contains("not JSON"), "{e}");
        let big = vec![b' '; MAX_ANSWER + 1];
        assert!(parse_answer("a", &big)
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }
}
