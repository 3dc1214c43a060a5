//! The console container.
