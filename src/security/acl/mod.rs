//! ACLs with Kafka's StandardAuthorizer semantics: the vocabulary
//! (`types.rs`), ACLs and filters (`binding.rs`), and the decision
//! (`authorizer.rs`). The ACLs themselves live in the cluster metadata
//! (`metadata::acls`), replayed into the image; every shard's view holds
//! an [`AclIndex`] built from it, and `server::authorize` asks here.
//!
//! Invariant: pure (no IO, no clock, no shard); imports only `config`.
//! This is the security boundary: every rule is unit-tested
//! (`tests.rs`).

pub mod authorizer;
pub mod binding;
pub mod types;

#[cfg(test)]
mod tests;

pub use authorizer::{authorize, authorize_by_resource_type, AclIndex, Requester};
pub use binding::{is_principal, Acl, AclFilter};
pub use types::{
    Operation, PatternType, Permission, ResourceType, ANONYMOUS, CLUSTER_NAME, WILDCARD,
    WILDCARD_PRINCIPAL,
};
