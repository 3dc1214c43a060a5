//! Kernel module loading for Berth.
