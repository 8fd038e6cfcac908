//! Demonstration protocols (cargo feature `demo`): an echo, a bulk source and sink, and a
//! loopback bulk run of shards with nothing above the sockets, which
//! `hawser bench --mode raw` and the `loopback_bulk` benchmark measure.

mod bulk;
mod echo;
mod loopback_bulk;

pub use bulk::{BulkSink, BulkSource, SinkReport};
pub use echo::Echo;
pub use loopback_bulk::{LoopbackBulk, LoopbackTransport, loopback_bulk, loopback_bulk_over};
