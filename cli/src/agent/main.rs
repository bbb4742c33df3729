//! `roster-agent`: the client an agent runs inside its container (placeholder until the gateway
//! client lands in this issue).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("roster-agent: not built yet");
    std::process::exit(1);
}
