//! hawser's command-line tool: `hawser serve`, `push`, `pull`, `bench` and `inspect`,
//! their arguments, progress display and reports. The binary (`src/main.rs`) only
//! dispatches to these modules.

pub mod bench;
pub mod inspect;
pub mod mover;
pub mod nexus_record;
pub mod pull;
