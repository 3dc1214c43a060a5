//! Berth's typed, layered configuration.
