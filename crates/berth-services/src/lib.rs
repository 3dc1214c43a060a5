//! Berth's system service manager.
