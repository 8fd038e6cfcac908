//! hawser's engine: services, tasks and the session layer, and the tooling of the
//! `hawser` binary.
pub mod inspect;
pub mod session;
