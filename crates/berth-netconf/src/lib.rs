//! Network configuration.
