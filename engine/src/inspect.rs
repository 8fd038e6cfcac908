//! `hawser inspect` (being built).
