//! DDF remoting text (being built).
