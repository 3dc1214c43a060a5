//! QEMU.
