//! Security at the connection's edge and behind it: who the client is
//! (`principal`), how it proves it (`sasl`), and what it may do (`acl`,
//! the authorizer and its ACLs).
//!
//! Invariant: pure. Nothing here reads a socket, a clock or a file; the
//! server feeds tokens and requests in and takes answers, principals and
//! decisions out, so every mechanism and rule is unit-tested without a
//! broker. Imports only `config`.

pub mod acl;
pub mod principal;
pub mod sasl;
