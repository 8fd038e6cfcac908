//! The client side: wiring calls over a nexus ([`Wiring`]), and the direct connections
//! of a [`Publisher`] and a [`Consumer`] (blocking sockets, heartbeats on both).

mod consumer;
mod dialog;
mod publisher;
mod stream;
mod wiring;

pub use consumer::{Consumer, Delivery};
pub use dialog::DirectOptions;
pub use publisher::{Publisher, now_micros};
pub use wiring::Wiring;

use hawser_runtime::CallError;
use hawser_wire::dmp::ResponseCode;

/// Why a DMP client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DmpError {
    /// The server refused, with a DMP response code.
    #[error("{} {}: {text}", code.code(), code.indicator())]
    Refused {
        /// The code.
        code: ResponseCode,
        /// The server's explanation.
        text: String,
    },
    /// A wiring call failed for another reason than a DMP refusal.
    #[error("wiring call failed: {0}")]
    Call(CallError),
    /// The direct connection's socket failed.
    #[error("direct connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server broke the protocol (or is not a DMP server).
    #[error("direct connection: {0}")]
    Protocol(String),
    /// The server was silent longer than the heartbeat allows.
    #[error("the server was silent for {0:?}: the direct connection is dead")]
    Dead(std::time::Duration),
    /// A message whose envelope is malformed inside its size field (its publisher's
    /// doing; the consumer goes on with the next one).
    #[error("skipped a malformed message of {size} bytes")]
    Malformed {
        /// Its size field.
        size: u32,
    },
    /// The address cannot carry direct connections.
    #[error("{0}")]
    Address(String),
}

impl DmpError {
    /// Whether the connection goes on after it (a malformed message was skipped).
    pub fn is_skipped_message(&self) -> bool {
        matches!(self, DmpError::Malformed { .. })
    }

    /// The DMP response code, if the server refused.
    pub fn code(&self) -> Option<ResponseCode> {
        match self {
            DmpError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<CallError> for DmpError {
    /// A wiring refusal comes back as the remote exception `dmp.<INDICATOR>`.
    fn from(e: CallError) -> Self {
        if let CallError::Remote(ex) = &e
            && let Some(indicator) = ex.type_name.strip_prefix("dmp.")
            && let Some(code) = ResponseCode::ALL
                .into_iter()
                .find(|c| c.indicator() == indicator)
        {
            return DmpError::Refused {
                code,
                text: ex.message.clone(),
            };
        }
        DmpError::Call(e)
    }
}
