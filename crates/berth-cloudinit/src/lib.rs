//! cloud-init for Berth.
