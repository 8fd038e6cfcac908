//! DMP direct messages (being built).
