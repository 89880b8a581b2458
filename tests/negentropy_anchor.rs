//! The negentropy anchor of the packet benchmark, tested here because a `harness = false`
//! bench target is never built with `cfg(test)`.
#[path = "../benches/packets/negentropy.rs"]
mod negentropy;
