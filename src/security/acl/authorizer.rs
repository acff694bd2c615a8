//! StandardAuthorizer's decision (`StandardAuthorizerData.authorize`):
//! an [`AclIndex`] built once per metadata image answers, for a principal
//! at a host, whether an operation on a resource is allowed.
//!
//! The rule, in order: a super user is allowed everything. Otherwise the
//! ACLs that apply to the resource are those of its type whose pattern
//! covers its name (LITERAL with the same name or `*`, PREFIXED with a
//! prefix of it). Among them, those whose principal is the requester's or
//! `User:*`, whose host is `*` or the requester's address, and whose
//! operation matches (an ALLOW ACL's implied operations count, a DENY
//! ACL's do not): any DENY denies; else any ALLOW allows; else, when any
//! ACL applies to the resource at all (whoever it names), denied; when
//! none does, `allow.everyone.if.no.acl.found` decides.
//!
//! Invariant: pure, and an authorization allocates nothing: literal names
//! are hash lookups by `&str`, prefixes are looked up only at the lengths
//! some PREFIXED ACL of the type has.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use uuid::Uuid;

use super::binding::Acl;
use super::types::{
    Operation, PatternType, Permission, ResourceType, WILDCARD, WILDCARD_PRINCIPAL,
};
use crate::config::AuthorizerConfig;

/// Who asks: the principal (`User:alice`) and the client's address
/// (none for a request this node makes itself).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: Option<IpAddr>,
}

/// An ACL's host as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Ip(IpAddr),
    /// A host that is not an address (a name): Kafka compares addresses,
    /// so it matches no client.
    Never,
}

/// An ACL's entry, without its resource (the index's key).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    principal: String,
    host: Host,
    operation: Operation,
    permission: Permission,
}

/// The ACLs of one resource type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TypeAcls {
    literal: HashMap<String, Vec<Entry>>,
    prefixed: HashMap<String, Vec<Entry>>,
    /// The byte lengths of the PREFIXED names: the only prefixes of a
    /// resource name worth looking up.
    prefix_lengths: BTreeSet<usize>,
}

/// Every ACL of the image, by id as the image holds them (DescribeAcls
/// lists them), and indexed for authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclIndex {
    acls: BTreeMap<Uuid, Acl>,
    by_type: HashMap<ResourceType, TypeAcls>,
}

/// What the ACLs say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Denied,
    /// No ACL names the resource at all.
    NoAcls,
}

impl AclIndex {
    pub fn new(acls: BTreeMap<Uuid, Acl>) -> AclIndex {
        let mut index = AclIndex::default();
        for acl in acls.values() {
            index.insert(acl);
        }
        index.acls = acls;
        index
    }

    /// Every ACL, by id.
    pub fn acls(&self) -> &BTreeMap<Uuid, Acl> {
        &self.acls
    }

    fn insert(&mut self, acl: &Acl) {
        let host = match acl.host.as_str() {
            WILDCARD => Host::Any,
            host => host.parse().map(Host::Ip).unwrap_or(Host::Never),
        };
        let entry = Entry {
            principal: acl.principal.clone(),
            host,
            operation: acl.operation,
            permission: acl.permission,
        };
        let of_type = self.by_type.entry(acl.resource_type).or_default();
        let name = acl.resource_name.clone();
        match acl.pattern_type {
            PatternType::Literal => of_type.literal.entry(name).or_default().push(entry),
            PatternType::Prefixed => {
                of_type.prefix_lengths.insert(name.len());
                of_type.prefixed.entry(name).or_default().push(entry);
            }
            // Never created (`Acl::invalid`); a record from elsewhere
            // holding one applies to nothing, as in Kafka.
            _ => {}
        }
    }

    /// The ACLs' verdict on `operation` on the resource `name` of
    /// `resource_type` for `requester`.
    fn verdict(
        &self,
        requester: Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> Verdict {
        let Some(of_type) = self.by_type.get(&resource_type) else {
            return Verdict::NoAcls;
        };
        let mut found = false;
        let mut allowed = false;
        let sections = [of_type.literal.get(name), of_type.literal.get(WILDCARD)]
            .into_iter()
            .flatten()
            .chain(prefixes(name, &of_type.prefix_lengths).filter_map(|p| of_type.prefixed.get(p)));
        for entries in sections {
            found |= !entries.is_empty();
            for entry in entries {
                match entry.decides(requester, operation) {
                    Some(Permission::Deny) => return Verdict::Denied,
                    Some(Permission::Allow) => allowed = true,
                    _ => {}
                }
            }
        }
        match (allowed, found) {
            (true, _) => Verdict::Allowed,
            (false, true) => Verdict::Denied,
            (false, false) => Verdict::NoAcls,
        }
    }

    /// Whether `requester` may do `operation` on at least one resource of
    /// `resource_type` (Kafka's `authorizeByResourceType`, for an
    /// idempotent producer's InitProducerId): an ALLOW that applies to it
    /// whose pattern no DENY of it covers. Super users and the
    /// no-ACL rule are the caller's (`authorize_by_resource_type`).
    fn any_allowed(
        &self,
        requester: Requester<'_>,
        operation: Operation,
        resource_type: ResourceType,
    ) -> Verdict {
        let Some(of_type) = self.by_type.get(&resource_type) else {
            return Verdict::NoAcls;
        };
        let decides = |entries: &Vec<Entry>, permission| {
            entries
                .iter()
                .any(|entry| entry.decides(requester, operation) == Some(permission))
        };
        let denied_prefix = |name: &str| {
            prefixes(name, &of_type.prefix_lengths)
                .filter_map(|p| of_type.prefixed.get(p))
                .any(|entries| decides(entries, Permission::Deny))
        };
        if of_type
            .literal
            .get(WILDCARD)
            .is_some_and(|e| decides(e, Permission::Deny))
        {
            return Verdict::Denied;
        }
        let literal = of_type.literal.iter().any(|(name, entries)| {
            decides(entries, Permission::Allow)
                && !denied_prefix(name)
                && (name == WILDCARD || !decides(entries, Permission::Deny))
        });
        let prefixed = of_type
            .prefixed
            .iter()
            .any(|(name, entries)| decides(entries, Permission::Allow) && !denied_prefix(name));
        if literal || prefixed {
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }
}

impl Entry {
    /// The entry's permission if it applies to `requester` doing
    /// `operation` (Kafka's `findResult`), else None.
    fn decides(&self, requester: Requester<'_>, operation: Operation) -> Option<Permission> {
        if self.principal != requester.principal && self.principal != WILDCARD_PRINCIPAL {
            return None;
        }
        let host_matches = match &self.host {
            Host::Any => true,
            Host::Ip(ip) => requester.host == Some(*ip),
            Host::Never => false,
        };
        let operation_matches = match self.permission {
            Permission::Allow => self.operation.allow_implies(operation),
            _ => self.operation == Operation::All || self.operation == operation,
        };
        (host_matches && operation_matches).then_some(self.permission)
    }
}

/// The prefixes of `name` at the lengths given (a char boundary each).
fn prefixes<'a>(name: &'a str, lengths: &'a BTreeSet<usize>) -> impl Iterator<Item = &'a str> {
    lengths
        .range(1..=name.len())
        .filter(|&&len| name.is_char_boundary(len))
        .map(move |&len| &name[..len])
}

/// Whether `requester` may do `operation` on the resource `name` of
/// `resource_type`, by `config` and the ACLs of `acls` (the module's rule).
pub fn authorize(
    config: &AuthorizerConfig,
    acls: &AclIndex,
    requester: Requester<'_>,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    if config.is_super_user(requester.principal) {
        return true;
    }
    match acls.verdict(requester, operation, resource_type, name) {
        Verdict::Allowed => true,
        Verdict::Denied => false,
        Verdict::NoAcls => config.allow_everyone_if_no_acl_found,
    }
}

/// Whether `requester` may do `operation` on some resource of
/// `resource_type` (Kafka's `authorizeByResourceType`).
pub fn authorize_by_resource_type(
    config: &AuthorizerConfig,
    acls: &AclIndex,
    requester: Requester<'_>,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    if config.is_super_user(requester.principal) {
        return true;
    }
    match acls.any_allowed(requester, operation, resource_type) {
        Verdict::Allowed => true,
        Verdict::Denied => false,
        Verdict::NoAcls => config.allow_everyone_if_no_acl_found,
    }
}
