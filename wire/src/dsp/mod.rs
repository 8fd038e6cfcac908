//! DSP trunk frames (being built).
