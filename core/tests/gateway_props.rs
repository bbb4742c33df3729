//! The gateway decoder against hostile input: it never panics, answers every line with a
//! request or a typed error, and never invents an id the line did not carry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use roster_core::gateway::{decode_request, ErrorCode, METHODS};

const VALID: &[&str] = &[
    r#"{"id":1,"method":"whoami"}"#,
    r#"{"id":2,"method":"history","params":{"from":3,"limit":10}}"#,
    r#"{"id":3,"method":"hire","params":{"name":"scout","role":"finds","grants":["email.send@mailbox:alice","spend.usd@*,budget=10"]}}"#,
    r#"{"id":4,"method":"act","params":{"action":"spend.usd","resource":"vendor:acme","amount":5,"args":{"memo":"x"},"timeout_secs":30}}"#,
    r#"{"id":5,"method":"publish","params":{"topic":"findings/daily","message":"hello","team":"product"}}"#,
    r#"{"id":6,"method":"subscribe","params":{"topics":["findings/**"]}}"#,
    r#"{"id":7,"method":"delegate","params":{"to":"agt_0192f0c0000070008000000000000001","capability":"email.send@mailbox:a"}}"#,
    r#"{"id":8,"method":"grants","params":{}}"#,
    r#"{"id":9,"method":"retire","params":{"agent":"agt_0192f0c0000070008000000000000001"}}"#,
    r#"{"id":10,"method":"share_propose","params":{"to":"product","topics":"findings/*/daily"}}"#,
    r#"{"id":11,"method":"share_accept","params":{"share":"shr_0192f0c0000070008000000000000001"}}"#,
    r#"{"id":12,"method":"share_close","params":{"share":"shr_0192f0c0000070008000000000000002"}}"#,
    r#"{"id":13,"method":"shares"}"#,
    r#"{"id":14,"method":"decide_approval","params":{"approval":"apr_0192f0c0000070008000000000000001","approved":true,"note":"ok"}}"#,
];

fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(VALID),
        prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..6),
    )
        .prop_map(|(line, edits)| {
            let mut bytes = line.as_bytes().to_vec();
            for (at, op, b) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, b),
                    1 if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ if i < bytes.len() => bytes[i] = b,
                    _ => {}
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_request(&bytes);
    }

    #[test]
    fn edited_requests_get_a_request_or_a_typed_error(bytes in mutated()) {
        match decode_request(&bytes) {
            Ok(r) => {
                // Whatever decodes had this id in its text.
                let text = String::from_utf8_lossy(&bytes);
                prop_assert!(text.contains(&r.id.to_string()));
            }
            Err((Some(id), e)) => {
                prop_assert!(!e.message.is_empty());
                prop_assert!(String::from_utf8_lossy(&bytes).contains(&id.to_string()));
                prop_assert!(!matches!(e.code, ErrorCode::InvalidJson | ErrorCode::MissingId | ErrorCode::LineTooLong));
            }
            Err((None, e)) => prop_assert!(!e.message.is_empty()),
        }
    }
}

#[test]
fn every_valid_example_decodes() {
    for line in VALID {
        decode_request(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e:?}"));
    }
}

/// The mutations start from every method, so a new method is fuzzed as soon as it is listed.
#[test]
fn every_method_has_a_valid_example() {
    for m in METHODS {
        let quoted = format!(r#""method":"{m}""#);
        assert!(
            VALID.iter().any(|l| l.contains(&quoted)),
            "no valid example of `{m}`"
        );
    }
}
