//! The authorizer's broker settings (`authorizer.class.name`,
//! `super.users`, `allow.everyone.if.no.acl.found`), as plain data.
//!
//! Invariant: as all of `config`, imports nothing of shoal; the server's
//! checks (`server::authorize`) read these and the ACLs of the view.

use super::parse::parse;
use super::ConfigError;

/// Kafka's KRaft authorizer: the class name a Kafka `server.properties`
/// names, accepted as is.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// shoal's own name for the same authorizer.
pub const SHOAL_AUTHORIZER: &str = "shoal.acl";

/// Broker settings of authorization, by Kafka's names, with Kafka's
/// defaults: no authorizer, so every request is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// `authorizer.class.name` set to an authorizer shoal has: requests
    /// are checked against the ACLs. Unset (empty): nothing is checked.
    pub enabled: bool,
    /// `super.users`: principals (`User:alice`) allowed everything,
    /// semicolon-separated.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`: a resource no ACL names is
    /// open to all (default false: closed).
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Applies `key` if it is one of these settings; false for any other key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "authorizer.class.name" => {
                self.enabled = match value {
                    "" => false,
                    STANDARD_AUTHORIZER | SHOAL_AUTHORIZER => true,
                    other => {
                        return Err(ConfigError(format!(
                            "invalid value {other} for configuration authorizer.class.name: \
                             expected {STANDARD_AUTHORIZER} (or {SHOAL_AUTHORIZER})"
                        )))
                    }
                }
            }
            "super.users" => self.super_users = super_users(key, value)?,
            "allow.everyone.if.no.acl.found" => {
                self.allow_everyone_if_no_acl_found = parse(key, value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether `principal` (`Type:name`) is a super user.
    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.iter().any(|user| user == principal)
    }
}

/// `super.users`: `Type:name` principals separated by semicolons (Kafka
/// splits on `;` and trims each).
fn super_users(key: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let mut users = Vec::new();
    for user in value
        .split(';')
        .map(str::trim)
        .filter(|user| !user.is_empty())
    {
        match user.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                users.push(user.to_string())
            }
            _ => {
                return Err(ConfigError(format!(
                    "invalid value {value} for configuration {key}: \
                     {user} is not a principal of the form Type:name"
                )))
            }
        }
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_names_and_defaults() {
        let mut config = AuthorizerConfig::default();
        assert!(!config.enabled);
        assert!(!config.allow_everyone_if_no_acl_found);
        assert!(config
            .set("authorizer.class.name", STANDARD_AUTHORIZER)
            .unwrap());
        assert!(config.enabled);
        assert!(config.set("authorizer.class.name", "").unwrap());
        assert!(!config.enabled);
        assert!(config
            .set("authorizer.class.name", SHOAL_AUTHORIZER)
            .unwrap());
        assert!(config.enabled);
        assert!(config
            .set(
                "authorizer.class.name",
                "kafka.security.authorizer.AclAuthorizer"
            )
            .is_err());
        assert!(config
            .set("allow.everyone.if.no.acl.found", "true")
            .unwrap());
        assert!(config.allow_everyone_if_no_acl_found);
        assert!(config.set("allow.everyone.if.no.acl.found", "yes").is_err());
        assert!(!config.set("num.partitions", "3").unwrap());
    }

    #[test]
    fn super_users_are_semicolon_separated_principals() {
        let mut config = AuthorizerConfig::default();
        assert!(config
            .set("super.users", "User:admin; User:broker;;")
            .unwrap());
        assert_eq!(config.super_users, ["User:admin", "User:broker"]);
        assert!(config.is_super_user("User:broker"));
        assert!(!config.is_super_user("User:alice"));
        assert!(!config.is_super_user("User:*"));
        assert!(config.set("super.users", "admin").is_err());
        assert!(config.set("super.users", "User:").is_err());
    }
}
