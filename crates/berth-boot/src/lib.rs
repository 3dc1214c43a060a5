//! Berth's PID 1.
