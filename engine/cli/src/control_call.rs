//! `hawser call HOST ENDPOINT < message.ddf`: one DDF message to a server's control plane
//! (the seed's remoting convention: the root node names the endpoint), and its answer.
//! Also the call `hawser stats` makes, and DDF answers as JSON.

use std::io::{IsTerminal, Read, Write};

use bytes::Bytes;
use hawser_runtime::{CallError, Client};
use hawser_wire::ddf::{self, Node, Value};

use crate::error::CliError;
use crate::messaging::ServerArgs;
use crate::serve::control::CONTROL_EXCHANGE;

/// Largest message read from stdin.
const MAX_MESSAGE: u64 = 16 << 20;

/// Send one DDF message to a server's control plane and print the answer (DDF text).
///
/// The message is read from stdin (DDF text, one root node; its root is renamed to
/// ENDPOINT); with nothing on stdin an empty struct goes. A remote exception is printed
/// as its DDF `exception` structure, and the command fails. The server answers its
/// `--operator` identities, or, without any, callers on its own host.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Endpoints: hawser.stats (every nexus and connection), hawser.jobs \
(running replications and DTP transfers), hawser.jobs.cancel (input: `transfer 8 ID` or \
`nexus 1 nexus-HEX`).\n\nExample:\n  printf 'hawser.jobs.cancel 4 1\\ntransfer 8 42\\n' | hawser call host hawser.jobs.cancel"
)]
pub struct CallArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The endpoint: the name the message's root node takes.
    pub endpoint: String,
}

/// Sends `input` to `endpoint`: its root renamed to the endpoint, as the answer's bytes.
fn request(client: &Client, endpoint: &str, mut input: Node) -> Result<Bytes, CallError> {
    input.name = Some(endpoint.to_string());
    client.call(CONTROL_EXCHANGE, Bytes::from(input.to_text()))
}

/// Calls `endpoint` with `input` (its root renamed to the endpoint) and decodes the
/// answer.
pub fn call_endpoint(client: &Client, endpoint: &str, input: Node) -> Result<Node, CliError> {
    let answer = request(client, endpoint, input).map_err(|e| match e {
        CallError::Remote(e) => CliError::Usage(format!(
            "the server answered with an exception: {}: {}",
            e.type_name, e.message
        )),
        other => CliError::Usage(format!("the call failed: {other}")),
    })?;
    ddf::decode(&answer)
        .map_err(|e| CliError::Usage(format!("the server's answer is not DDF text: {e}")))
}

/// `hawser call`.
pub fn call(args: &CallArgs) -> Result<(), CliError> {
    let mut text = Vec::new();
    if !std::io::stdin().is_terminal() {
        std::io::stdin()
            .take(MAX_MESSAGE + 1)
            .read_to_end(&mut text)
            .map_err(|e| CliError::Usage(format!("reading stdin: {e}")))?;
    }
    if text.len() as u64 > MAX_MESSAGE {
        return Err(CliError::Usage(format!(
            "the message on stdin is over {MAX_MESSAGE} bytes"
        )));
    }
    let input = if text.iter().all(u8::is_ascii_whitespace) {
        Node::named(args.endpoint.clone(), Value::Struct(Vec::new()))
    } else {
        ddf::decode(&text).map_err(|e| CliError::Usage(format!("stdin is not DDF text: {e}")))?
    };
    let client = args.server.connect()?;
    let answer = request(&client, &args.endpoint, input);
    client.close();
    let mut out = std::io::stdout().lock();
    match answer {
        Ok(bytes) => {
            out.write_all(&bytes)
                .map_err(|e| CliError::Usage(format!("writing stdout: {e}")))?;
            Ok(())
        }
        Err(CallError::Remote(e)) => {
            // The `exception` structure as it travelled, its causes included.
            let _ = out.write_all(&e.encode());
            Err(CliError::Usage(format!(
                "{} raised {}: {}",
                args.endpoint, e.type_name, e.message
            )))
        }
        Err(e) => Err(CliError::Usage(format!("the call failed: {e}"))),
    }
}

/// A DDF tree as JSON: structs are objects (by member name), lists are arrays, numbers
/// and strings are themselves, unsafe strings are arrays of bytes.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Empty => J::Null,
        Value::String(s) => J::from(s.as_str()),
        Value::Int(v) => J::from(*v),
        Value::Long(v) => J::from(*v),
        Value::Float(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
        Value::UnsafeString(bytes) => J::from(bytes.clone()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Struct(members) => {
            let mut object = serde_json::Map::new();
            for m in members {
                let key = m.name.clone().unwrap_or_default();
                object.entry(key).or_insert_with(|| to_json(m));
            }
            J::Object(object)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddf_trees_become_json() {
        let node = Node::named(
            "hawser.stats",
            Value::Struct(vec![
                Node::named("n", Value::Long(3)),
                Node::named(
                    "list",
                    Value::List(vec![Node::unnamed(Value::String("a".into()))]),
                ),
                Node::named("n", Value::Long(4)),
            ]),
        );
        assert_eq!(to_json(&node), serde_json::json!({ "n": 3, "list": ["a"] }));
    }
}
