//! The DSP session layer as sans-IO state machines.
pub mod auth;
mod client;
mod config;
mod error;
mod event;
mod exception;
mod frame;
mod initiator;
mod link;
mod nexus;
mod responder;
mod server;
mod stats;
mod throttle;
mod types;

pub use auth::{ClientCredentials, ServerCredentials};
pub use client::{CallOptions, Client};
pub use config::{ChannelAttributes, ClientConfig, ServerConfig, Timers};
pub use error::{CallError, CloseReason, ProtocolError};
pub use event::{Event, IncomingRequest, Reply};
pub use exception::RemoteException;
pub use frame::FrameError;
pub use nexus::Footprint;
pub use server::Server;
pub use stats::{ConnectionStats, NexusStats};
pub use throttle::ThrottleConfig;
pub use types::{Channel, ConnId, ExchangeId, NexusId, RequestId};
