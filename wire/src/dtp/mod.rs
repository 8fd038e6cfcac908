//! DTP offset datagrams (being built).
