//! hawser-shards (being built).
