//! An ACL (Kafka's `AclBinding`: a resource pattern and an entry) and an
//! ACL filter (`AclBindingFilter`, as DescribeAcls and DeleteAcls carry
//! it), with Kafka's rules for which ACLs may be created and which
//! filters are valid, and how a filter matches.
//!
//! Invariant: pure data and checks; a filter matches an ACL exactly when
//! Kafka's `AclBindingFilter.matches` would.

use super::types::{Operation, PatternType, Permission, ResourceType, CLUSTER_NAME, WILDCARD};

/// One ACL: who (principal, host) may or may not do what (operation) on
/// which resources (type, name, pattern).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice`, or `User:*` for every user.
    pub principal: String,
    /// An IP address, or `*` for any.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// A filter of ACLs: `None` strings and ANY enums match anything; a
/// pattern type MATCH matches the ACLs that would apply to the named
/// resource (literal, wildcard and prefixes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Operation,
    pub permission: Permission,
}

impl Acl {
    /// Why Kafka would refuse to create this ACL (INVALID_REQUEST), if it
    /// would: `AclControlManager.validateNewAcl` and the broker's checks
    /// (`AclApis`), plus a principal that does not parse as `Type:name`.
    pub fn invalid(&self) -> Option<String> {
        use ResourceType as R;
        if matches!(self.resource_type, R::Unknown | R::Any) {
            return Some(format!(
                "Invalid resourceType {}",
                self.resource_type.name()
            ));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Some(format!("Invalid patternType {}", self.pattern_type.name()));
        }
        if matches!(self.operation, Operation::Unknown | Operation::Any) {
            return Some(format!("Invalid operation {}", self.operation.name()));
        }
        if !matches!(self.permission, Permission::Allow | Permission::Deny) {
            return Some(format!("Invalid permissionType {}", self.permission.name()));
        }
        if self.resource_name.is_empty() {
            return Some("Resource name should not be empty".into());
        }
        if self.resource_type == R::Cluster && self.resource_name != CLUSTER_NAME {
            return Some(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if !is_principal(&self.principal) {
            return Some(format!("Invalid principal {}", self.principal));
        }
        if self.host.is_empty() {
            return Some("Invalid empty host".into());
        }
        None
    }
}

/// `Type:name` with both parts non-empty (`SecurityUtils.parseKafkaPrincipal`).
pub fn is_principal(text: &str) -> bool {
    matches!(text.split_once(':'), Some((kind, name)) if !kind.is_empty() && !name.is_empty())
}

impl AclFilter {
    /// The filter that matches exactly `acl`.
    pub fn exactly(acl: &Acl) -> AclFilter {
        AclFilter {
            resource_type: acl.resource_type,
            resource_name: Some(acl.resource_name.clone()),
            pattern_type: acl.pattern_type,
            principal: Some(acl.principal.clone()),
            host: Some(acl.host.clone()),
            operation: acl.operation,
            permission: acl.permission,
        }
    }

    /// Why the filter is invalid (INVALID_REQUEST): a field Kafka does not
    /// know (`AclBindingFilter.isUnknown`).
    pub fn invalid(&self) -> Option<String> {
        if self.resource_type == ResourceType::Unknown {
            return Some("Unknown resource type in the ACL filter".into());
        }
        if self.pattern_type == PatternType::Unknown {
            return Some("Unknown pattern type in the ACL filter".into());
        }
        if self.operation == Operation::Unknown {
            return Some("Unknown operation in the ACL filter".into());
        }
        if self.permission == Permission::Unknown {
            return Some("Unknown permission type in the ACL filter".into());
        }
        None
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &Acl) -> bool {
        self.matches_pattern(acl) && self.matches_entry(acl)
    }

    /// `ResourcePatternFilter.matches`.
    fn matches_pattern(&self, acl: &Acl) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        let any_pattern = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !any_pattern && self.pattern_type != acl.pattern_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == acl.pattern_type {
            return *name == acl.resource_name;
        }
        // MATCH: the ACLs that apply to the resource `name`.
        match acl.pattern_type {
            PatternType::Literal => *name == acl.resource_name || acl.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&acl.resource_name),
            _ => false,
        }
    }

    /// `AccessControlEntryFilter.matches`.
    fn matches_entry(&self, acl: &Acl) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == Operation::Any || self.operation == acl.operation)
            && (self.permission == Permission::Any || self.permission == acl.permission)
    }
}
