//! Security at the connection's edge: who the client is (`principal`) and
//! how it proves it (`sasl`).
//!
//! Invariant: pure. Nothing here reads a socket, a clock or a file; the
//! server feeds tokens in and takes answers and principals out, so every
//! mechanism is unit-tested without a broker.

pub mod principal;
pub mod sasl;
