//! hawser-perf (being built).
