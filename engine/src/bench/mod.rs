//! `hawser bench`.
