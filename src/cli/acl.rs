//! `shoal acl add|list|remove`, in the shape of kafka-acls.sh: principals
//! allowed or denied (`--allow-principal`, `--deny-principal`), hosts,
//! operations, resources (`--topic`, `--group`, `--cluster`,
//! `--transactional-id`) and `--resource-pattern-type`, over CreateAcls,
//! DescribeAcls and DeleteAcls; listings and confirmations printed as
//! kafka-acls.sh prints them (`Current ACLs for resource
//! \`ResourcePattern(...)\``).
//!
//! Invariant: what is added or removed is exactly the product of the
//! principals, hosts, operations and resources given, as kafka-acls.sh
//! makes it; a remove with no principal removes every ACL of the resource.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{bail, Context};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;

use super::BootstrapArg;
use crate::client::{check, Connection};
use crate::security::acl::{
    is_principal, Acl, Operation, PatternType, Permission, ResourceType, CLUSTER_NAME, WILDCARD,
};

/// `shoal acl ...`
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AclCommand {
    /// Add ACLs (kafka-acls.sh --add).
    Add(ChangeArgs),
    /// Remove ACLs (kafka-acls.sh --remove).
    Remove(ChangeArgs),
    /// List ACLs (kafka-acls.sh --list).
    List(ListArgs),
}

/// The resources an ACL command names.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ResourceArgs {
    /// A topic (`*` for every topic).
    #[arg(long)]
    pub topic: Vec<String>,
    /// A consumer group (`*` for every group).
    #[arg(long)]
    pub group: Vec<String>,
    /// The cluster.
    #[arg(long)]
    pub cluster: bool,
    /// A transactional id (`*` for every one).
    #[arg(long)]
    pub transactional_id: Vec<String>,
    /// literal or prefixed (add, remove: default literal); also any or
    /// match to list.
    #[arg(long, value_name = "TYPE")]
    pub resource_pattern_type: Option<String>,
}

/// `shoal acl add|remove`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// A principal allowed (`User:alice`, `User:*`).
    #[arg(long)]
    pub allow_principal: Vec<String>,
    /// A principal denied.
    #[arg(long)]
    pub deny_principal: Vec<String>,
    /// A host the allowing ACLs apply to (default: every host).
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// A host the denying ACLs apply to (default: every host).
    #[arg(long)]
    pub deny_host: Vec<String>,
    /// An operation (Read, Write, Create, Delete, Alter, Describe,
    /// ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All;
    /// default All).
    #[arg(long)]
    pub operation: Vec<String>,
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
}

/// `shoal acl list`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Only the ACLs of this principal.
    #[arg(long)]
    pub principal: Option<String>,
    #[command(flatten)]
    pub bootstrap: BootstrapArg,
}

/// Runs one `shoal acl` command, printing to stdout.
pub fn run_acl(command: AclCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        AclCommand::Add(args) => {
            let mut conn = Connection::connect(&args.bootstrap.bootstrap)?;
            let acls = acls_of(&args, PatternType::Literal)?;
            add(&mut conn, &acls)?;
            write!(out, "{}", listing("Adding ACLs", &acls))?;
        }
        AclCommand::Remove(args) => {
            let mut conn = Connection::connect(&args.bootstrap.bootstrap)?;
            let removed = remove(&mut conn, &args)?;
            write!(out, "{}", listing("Removed ACLs", &removed))?;
        }
        AclCommand::List(args) => {
            let mut conn = Connection::connect(&args.bootstrap.bootstrap)?;
            let listed = list(&mut conn, &args)?;
            write!(out, "{}", listing("Current ACLs", &listed))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The resources named, each as (type, name); at least one is required.
fn resources(args: &ResourceArgs) -> anyhow::Result<Vec<(ResourceType, String)>> {
    let mut resources: Vec<(ResourceType, String)> = Vec::new();
    resources.extend(args.topic.iter().map(|t| (ResourceType::Topic, t.clone())));
    resources.extend(args.group.iter().map(|g| (ResourceType::Group, g.clone())));
    if args.cluster {
        resources.push((ResourceType::Cluster, CLUSTER_NAME.to_string()));
    }
    let ids = args.transactional_id.iter();
    resources.extend(ids.map(|id| (ResourceType::TransactionalId, id.clone())));
    Ok(resources)
}

fn pattern_type(args: &ResourceArgs, default: PatternType) -> anyhow::Result<PatternType> {
    match &args.resource_pattern_type {
        None => Ok(default),
        Some(text) => PatternType::parse(text)
            .filter(|pattern| *pattern != PatternType::Unknown)
            .with_context(|| format!("unknown resource pattern type {text}")),
    }
}

fn operations(names: &[String]) -> anyhow::Result<Vec<Operation>> {
    if names.is_empty() {
        return Ok(vec![Operation::All]);
    }
    names
        .iter()
        .map(|name| {
            Operation::parse(name)
                .filter(|operation| !matches!(operation, Operation::Unknown | Operation::Any))
                .with_context(|| format!("unknown operation {name}"))
        })
        .collect()
}

/// Every ACL of `args`: principals × hosts × operations × resources.
fn acls_of(args: &ChangeArgs, default_pattern: PatternType) -> anyhow::Result<Vec<Acl>> {
    let resources = resources(&args.resources)?;
    if resources.is_empty() {
        bail!("name a resource: --topic, --group, --cluster or --transactional-id");
    }
    let pattern_type = pattern_type(&args.resources, default_pattern)?;
    let operations = operations(&args.operation)?;
    let star = vec![WILDCARD.to_string()];
    let hosts = |hosts: &Vec<String>| {
        if hosts.is_empty() {
            star.clone()
        } else {
            hosts.clone()
        }
    };
    let entries = [
        (
            Permission::Allow,
            &args.allow_principal,
            hosts(&args.allow_host),
        ),
        (
            Permission::Deny,
            &args.deny_principal,
            hosts(&args.deny_host),
        ),
    ];
    let mut acls = Vec::new();
    for (permission, principals, hosts) in &entries {
        for principal in principals.iter() {
            if !is_principal(principal) {
                bail!("{principal} is not a principal of the form Type:name");
            }
            for host in hosts {
                for operation in &operations {
                    for (resource_type, name) in &resources {
                        acls.push(Acl {
                            resource_type: *resource_type,
                            resource_name: name.clone(),
                            pattern_type,
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: *operation,
                            permission: *permission,
                        });
                    }
                }
            }
        }
    }
    Ok(acls)
}

fn add(conn: &mut Connection, acls: &[Acl]) -> anyhow::Result<()> {
    if acls.is_empty() {
        bail!("name a principal: --allow-principal or --deny-principal");
    }
    let creations = acls
        .iter()
        .map(|acl| {
            AclCreation::default()
                .with_resource_type(acl.resource_type.code())
                .with_resource_name(text(&acl.resource_name))
                .with_resource_pattern_type(acl.pattern_type.code())
                .with_principal(text(&acl.principal))
                .with_host(text(&acl.host))
                .with_operation(acl.operation.code())
                .with_permission_type(acl.permission.code())
        })
        .collect();
    let response = conn.send(CreateAclsRequest::default().with_creations(creations))?;
    for result in &response.results {
        let message = result.error_message.as_ref().map(|m| m.as_str());
        check(result.error_code, message, "CreateAcls")?;
    }
    Ok(())
}

/// Removes the ACLs `args` names (every ACL of its resources when it names
/// no principal) and returns those removed.
fn remove(conn: &mut Connection, args: &ChangeArgs) -> anyhow::Result<Vec<Acl>> {
    let no_principal = args.allow_principal.is_empty() && args.deny_principal.is_empty();
    let filters: Vec<DeleteAclsFilter> = if no_principal {
        let pattern_type = pattern_type(&args.resources, PatternType::Literal)?;
        resources(&args.resources)?
            .into_iter()
            .map(|(resource_type, name)| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(resource_type.code())
                    .with_resource_name_filter(Some(text(&name)))
                    .with_pattern_type_filter(pattern_type.code())
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_operation(Operation::Any.code())
                    .with_permission_type(Permission::Any.code())
            })
            .collect()
    } else {
        acls_of(args, PatternType::Literal)?
            .iter()
            .map(|acl| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(acl.resource_type.code())
                    .with_resource_name_filter(Some(text(&acl.resource_name)))
                    .with_pattern_type_filter(acl.pattern_type.code())
                    .with_principal_filter(Some(text(&acl.principal)))
                    .with_host_filter(Some(text(&acl.host)))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission.code())
            })
            .collect()
    };
    if filters.is_empty() {
        bail!("name a resource: --topic, --group, --cluster or --transactional-id");
    }
    let response = conn.send(DeleteAclsRequest::default().with_filters(filters))?;
    let mut removed = Vec::new();
    for result in response.filter_results {
        let message = result.error_message.as_ref().map(|m| m.as_str());
        check(result.error_code, message, "DeleteAcls")?;
        removed.extend(result.matching_acls.into_iter().map(|matching| Acl {
            resource_type: ResourceType::from_code(matching.resource_type),
            resource_name: matching.resource_name.to_string(),
            pattern_type: PatternType::from_code(matching.pattern_type),
            principal: matching.principal.to_string(),
            host: matching.host.to_string(),
            operation: Operation::from_code(matching.operation),
            permission: Permission::from_code(matching.permission_type),
        }));
    }
    Ok(removed)
}

/// The ACLs matching `args`: of each resource named (every resource when
/// none is), of the pattern type given (any by default).
fn list(conn: &mut Connection, args: &ListArgs) -> anyhow::Result<Vec<Acl>> {
    let pattern_type = pattern_type(&args.resources, PatternType::Any)?;
    let mut named: Vec<(ResourceType, Option<String>)> = resources(&args.resources)?
        .into_iter()
        .map(|(resource_type, name)| (resource_type, Some(name)))
        .collect();
    if named.is_empty() {
        named.push((ResourceType::Any, None));
    }
    let mut acls = Vec::new();
    for (resource_type, name) in named {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(resource_type.code())
            .with_resource_name_filter(name.as_deref().map(text))
            .with_pattern_type_filter(pattern_type.code())
            .with_principal_filter(args.principal.as_deref().map(text))
            .with_host_filter(None)
            .with_operation(Operation::Any.code())
            .with_permission_type(Permission::Any.code());
        let response = conn.send(request)?;
        let message = response.error_message.as_ref().map(|m| m.as_str());
        check(response.error_code, message, "DescribeAcls")?;
        for resource in response.resources {
            for acl in resource.acls {
                acls.push(Acl {
                    resource_type: ResourceType::from_code(resource.resource_type),
                    resource_name: resource.resource_name.to_string(),
                    pattern_type: PatternType::from_code(resource.pattern_type),
                    principal: acl.principal.to_string(),
                    host: acl.host.to_string(),
                    operation: Operation::from_code(acl.operation),
                    permission: Permission::from_code(acl.permission_type),
                });
            }
        }
    }
    Ok(acls)
}

/// kafka-acls.sh's listing: each resource pattern, then its entries.
fn listing(title: &str, acls: &[Acl]) -> String {
    let mut by_resource: BTreeMap<(&str, &str, &str), Vec<&Acl>> = BTreeMap::new();
    for acl in acls {
        let key = (
            acl.resource_type.name(),
            acl.resource_name.as_str(),
            acl.pattern_type.name(),
        );
        by_resource.entry(key).or_default().push(acl);
    }
    let mut out = String::new();
    for ((resource_type, name, pattern_type), entries) in by_resource {
        out.push_str(&format!(
            "{title} for resource `ResourcePattern(resourceType={resource_type}, \
             name={name}, patternType={pattern_type})`:\n"
        ));
        for acl in entries {
            out.push_str(&format!(
                "\t(principal={}, host={}, operation={}, permissionType={})\n",
                acl.principal,
                acl.host,
                acl.operation.name(),
                acl.permission.name()
            ));
        }
        out.push('\n');
    }
    out
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(allow: &[&str], deny: &[&str], operations: &[&str]) -> ChangeArgs {
        ChangeArgs {
            resources: ResourceArgs {
                topic: vec!["t".into(), "u".into()],
                group: Vec::new(),
                cluster: false,
                transactional_id: Vec::new(),
                resource_pattern_type: Some("prefixed".into()),
            },
            allow_principal: allow.iter().map(|p| p.to_string()).collect(),
            deny_principal: deny.iter().map(|p| p.to_string()).collect(),
            allow_host: Vec::new(),
            deny_host: vec!["10.0.0.1".into()],
            operation: operations.iter().map(|o| o.to_string()).collect(),
            bootstrap: BootstrapArg {
                bootstrap: "x:1".into(),
                command_config: None,
            },
        }
    }

    #[test]
    fn acls_are_the_product_of_principals_hosts_operations_and_resources() {
        let acls = acls_of(
            &change(&["User:a"], &["User:b"], &["Read", "write"]),
            PatternType::Literal,
        )
        .unwrap();
        assert_eq!(acls.len(), 8);
        assert!(acls
            .iter()
            .all(|acl| acl.pattern_type == PatternType::Prefixed));
        let denied: Vec<&Acl> = acls
            .iter()
            .filter(|a| a.permission == Permission::Deny)
            .collect();
        assert_eq!(denied.len(), 4);
        assert!(denied
            .iter()
            .all(|acl| acl.host == "10.0.0.1" && acl.principal == "User:b"));
        let allowed = acls.iter().filter(|a| a.permission == Permission::Allow);
        assert!(allowed.clone().all(|acl| acl.host == WILDCARD));
        let all = acls_of(&change(&["User:a"], &[], &[]), PatternType::Literal).unwrap();
        assert!(all.iter().all(|acl| acl.operation == Operation::All));
        assert!(acls_of(&change(&["alice"], &[], &[]), PatternType::Literal).is_err());
        assert!(acls_of(&change(&["User:a"], &[], &["fly"]), PatternType::Literal).is_err());
    }

    #[test]
    fn listings_read_as_kafka_acls_prints_them() {
        let acls = acls_of(&change(&["User:a"], &[], &["Read"]), PatternType::Literal).unwrap();
        let text = listing("Current ACLs", &acls[..1]);
        assert_eq!(
            text,
            "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, \
             patternType=PREFIXED)`:\n\t(principal=User:a, host=*, operation=READ, \
             permissionType=ALLOW)\n\n"
        );
    }
}
