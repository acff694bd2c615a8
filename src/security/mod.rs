//! Security: the authorizer and its ACLs (`acl`).
//!
//! Invariant: pure; imports only `config`.

pub mod acl;
