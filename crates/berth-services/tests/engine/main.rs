//! Integration tests of the service manager against a real engine: each test starts a
//! private containerd + dockerd (Debian's docker.io) on sockets under its own temporary
//! directory, builds its images from a static busybox without any registry, and loads them
//! through `images::ensure`. A missing engine fails the tests, naming what to install.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed assumption is a failed test

mod images;
mod shutdown;
mod store;
mod support;
mod sysinit;
mod tls;
mod up;
