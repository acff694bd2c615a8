//! The controller's side of CreateAcls and DeleteAcls
//! (`metadata::acls` decides): the records are made from the committed
//! image's ACLs, committed as one quorum entry, and the image they leave
//! installed on every shard before the answer, so that an ACL a client
//! was told exists is enforced by every shard of this node.
//!
//! Invariant: the same one-change-at-a-time permit as every other change
//! of the controller, and nothing proposed unless this node leads.

use std::rc::Rc;

use uuid::Uuid;

use super::{Controller, KafkaError, Shard};
use crate::metadata::acls;
use crate::security::acl::{Acl, AclFilter};

impl Controller {
    /// CreateAcls: one result per ACL, in order.
    pub async fn create_acls(
        &self,
        shard: &Rc<Shard>,
        creations: Vec<Acl>,
    ) -> Vec<Result<(), KafkaError>> {
        let count = creations.len();
        self.commit_decision(shard, count, move |image| {
            acls::create(&image.acls, creations, Uuid::new_v4)
        })
        .await
    }

    /// DeleteAcls: per filter, in order, the ACLs it removed.
    pub async fn delete_acls(
        &self,
        shard: &Rc<Shard>,
        filters: Vec<AclFilter>,
    ) -> Vec<Result<Vec<Acl>, KafkaError>> {
        let count = filters.len();
        self.commit_decision(shard, count, move |image| {
            acls::delete(&image.acls, &filters)
        })
        .await
    }
}
