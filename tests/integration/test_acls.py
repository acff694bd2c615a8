"""ACLs with Kafka's StandardAuthorizer semantics, on one broker with
`authorizer.class.name` set: Kafka's own kafka-acls tool, `shoal acl` and
confluent-kafka's admin client add, list and remove them; a DENY keeps a
principal's producer and consumer off a topic (TOPIC_AUTHORIZATION_FAILED)
and Metadata hides it, while another topic still works; prefixed ACLs,
deny over allow, `allow.everyone.if.no.acl.found`, group READ,
`super.users`, and a follower's fetch (a replica id) refused without
CLUSTER_ACTION whatever its READ.

Every client here connects over PLAINTEXT, so every principal is
User:ANONYMOUS, as in Kafka."""

import contextlib
import struct
import time
import uuid

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

import clients
import kafka_tools as kt
import kafka_wire
from clients import REQUEST_TIMEOUT_S
from test_cli import shoal

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
ANONYMOUS = "User:ANONYMOUS"
# How long a client is given to report an authorization error.
DENIAL_WAIT_S = 20


def secured(broker_factory, **overrides):
    """A broker with the authorizer, open where no ACL names a resource
    (so that the test may add ACLs), unless `overrides` say otherwise."""
    config = {
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "true",
    }
    config.update({key.replace("_", "."): value for key, value in overrides.items()})
    return broker_factory(overrides=config, shards=2)


def binding(restype, name, operation, permission, pattern=ResourcePatternType.LITERAL,
            principal=ANONYMOUS):
    return AclBinding(restype, name, pattern, principal, "*", operation, permission)


def create_acls(bootstrap, *bindings):
    client = clients.admin(bootstrap)
    futures = client.create_acls(list(bindings), request_timeout=REQUEST_TIMEOUT_S)
    for future in futures.values():
        future.result(timeout=REQUEST_TIMEOUT_S)


def every_acl():
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                            AclOperation.ANY, AclPermissionType.ANY)


def describe_acls(bootstrap, acl_filter=None):
    client = clients.admin(bootstrap)
    future = client.describe_acls(acl_filter or every_acl(), request_timeout=REQUEST_TIMEOUT_S)
    return future.result(timeout=REQUEST_TIMEOUT_S)


def new_topic(bootstrap, prefix=""):
    name = f"{prefix}acl-{uuid.uuid4().hex[:8]}"
    clients.create_topic(bootstrap, name, 1)
    return name


def produce_error(bootstrap, topic):
    """The error of producing one record to `topic`, None if it is acked."""
    prod = clients.producer(bootstrap, message_timeout_ms=DENIAL_WAIT_S * 1000)
    log = clients.DeliveryLog()
    prod.produce(topic, value=b"v", on_delivery=log)
    clients.flush(prod, DENIAL_WAIT_S + 5)
    return log.errors[0].code() if log.errors else None


def consume_error(bootstrap, topic, group=None):
    """The first error a consumer of `topic` reports (assigned, or
    subscribed in `group`: librdkafka reports a topic it may not describe
    only to a subscription), None if it reads to the end without one."""
    config = {"auto.offset.reset": "earliest"}
    if group is not None:
        config["group.id"] = group
    consumer = clients.consumer(bootstrap, extra_config=config)
    try:
        if group is None:
            consumer.assign([TopicPartition(topic, 0, 0)])
        else:
            consumer.subscribe([topic])
        deadline = time.monotonic() + DENIAL_WAIT_S
        while time.monotonic() < deadline:
            msg = consumer.poll(clients.POLL_TIMEOUT_S)
            if msg is None:
                continue
            if msg.error() is None:
                continue
            if msg.error().code() == KafkaError._PARTITION_EOF:
                return None
            return msg.error().code()
        return None
    finally:
        consumer.close()


def test_kafka_acls_tool_and_shoal_acl_add_list_remove(broker_factory):
    kt.require_tools()
    broker = secured(broker_factory)
    b = broker.bootstrap
    out = kt.run(ACL_COMMAND, "--bootstrap-server", b, "--add", "--allow-principal", "User:alice",
                 "--operation", "Read", "--operation", "Describe", "--topic", "orders")
    assert "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`" in out
    out = kt.run(ACL_COMMAND, "--bootstrap-server", b, "--list", "--topic", "orders")
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in out
    assert "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)" in out
    # shoal's tool sees what Kafka's added, and adds in its turn.
    listed = shoal("acl", "list", "--topic", "orders", "--bootstrap", b).stdout.decode()
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in listed
    shoal("acl", "add", "--deny-principal", "User:bob", "--operation", "Write", "--topic", "fin.",
          "--resource-pattern-type", "prefixed", "--bootstrap", b)
    out = kt.run(ACL_COMMAND, "--bootstrap-server", b, "--list", "--topic", "fin.",
                 "--resource-pattern-type", "prefixed")
    assert "(principal=User:bob, host=*, operation=WRITE, permissionType=DENY)" in out
    kt.run(ACL_COMMAND, "--bootstrap-server", b, "--remove", "--force", "--topic", "orders")
    removed = shoal("acl", "remove", "--topic", "fin.", "--resource-pattern-type", "prefixed",
                    "--bootstrap", b).stdout.decode()
    assert "principal=User:bob" in removed
    assert shoal("acl", "list", "--bootstrap", b).stdout.decode() == ""
    assert describe_acls(b) == []


def test_admin_client_create_describe_delete(broker_factory):
    broker = secured(broker_factory)
    b = broker.bootstrap
    read = binding(ResourceType.TOPIC, "t", AclOperation.READ, AclPermissionType.ALLOW)
    group = binding(ResourceType.GROUP, "g", AclOperation.ALL, AclPermissionType.DENY,
                    pattern=ResourcePatternType.PREFIXED, principal="User:bob")
    create_acls(b, read, group)
    assert sorted(describe_acls(b), key=str) == sorted([read, group], key=str)
    # MATCH: every ACL that applies to the group "gx".
    matching = AclBindingFilter(ResourceType.GROUP, "gx", ResourcePatternType.MATCH, None, None,
                                AclOperation.ANY, AclPermissionType.ANY)
    assert describe_acls(b, matching) == [group]
    # An invalid ACL is refused alone.
    client = clients.admin(b)
    bad = binding(ResourceType.BROKER, "not-the-cluster", AclOperation.ALTER, AclPermissionType.ALLOW)
    with pytest.raises(Exception, match="INVALID_REQUEST|CLUSTER resource"):
        client.create_acls([bad], request_timeout=REQUEST_TIMEOUT_S)[bad].result(timeout=REQUEST_TIMEOUT_S)
    everything = every_acl()
    futures = client.delete_acls([everything], request_timeout=REQUEST_TIMEOUT_S)
    deleted = futures[everything].result(timeout=REQUEST_TIMEOUT_S)
    assert sorted(deleted, key=str) == sorted([read, group], key=str)
    assert describe_acls(b) == []


def test_acl_apis_without_an_authorizer_are_security_disabled(broker):
    read = binding(ResourceType.TOPIC, "t", AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(Exception, match="SECURITY_DISABLED|No Authorizer"):
        create_acls(broker.bootstrap, read)
    listed = shoal("acl", "list", "--bootstrap", broker.bootstrap, check=False)
    assert listed.returncode == 1
    assert "SECURITY_DISABLED" in listed.stderr.decode()


def test_a_deny_keeps_the_principal_off_one_topic_only(broker_factory):
    broker = secured(broker_factory)
    b = broker.bootstrap
    denied, open_topic = new_topic(b), new_topic(b)
    # Deny over allow: the ALLOW of everything changes nothing.
    create_acls(
        b,
        binding(ResourceType.TOPIC, denied, AclOperation.ALL, AclPermissionType.ALLOW),
        binding(ResourceType.TOPIC, denied, AclOperation.ALL, AclPermissionType.DENY),
    )
    group = f"g-{uuid.uuid4().hex[:8]}"
    assert produce_error(b, denied) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert consume_error(b, denied, group=group) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_error(b, open_topic) is None
    assert consume_error(b, open_topic, group=group) is None
    # Metadata of every topic hides it.
    listed = clients.admin(b).list_topics(timeout=REQUEST_TIMEOUT_S).topics
    assert open_topic in listed and denied not in listed


def test_prefixed_acls_and_no_acl_found_denies(broker_factory):
    broker = secured(broker_factory)
    b = broker.bootstrap
    inside, outside = new_topic(b, "team."), new_topic(b)
    create_acls(
        b,
        binding(ResourceType.BROKER, "kafka-cluster", AclOperation.ALL, AclPermissionType.ALLOW),
        binding(ResourceType.TOPIC, "team.", AclOperation.ALL, AclPermissionType.ALLOW,
                pattern=ResourcePatternType.PREFIXED),
    )
    # Closed where no ACL names a resource: the ACLs live on, in the
    # metadata log, across the restart.
    broker.overrides["allow.everyone.if.no.acl.found"] = "false"
    broker.restart()
    assert produce_error(b, inside) is None
    assert produce_error(b, outside) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    listed = clients.admin(b).list_topics(timeout=REQUEST_TIMEOUT_S).topics
    assert inside in listed and outside not in listed


def test_group_read_denied(broker_factory):
    broker = secured(broker_factory)
    b = broker.bootstrap
    topic = new_topic(b)
    assert produce_error(b, topic) is None
    create_acls(b, binding(ResourceType.GROUP, "blocked", AclOperation.READ, AclPermissionType.DENY))
    assert consume_error(b, topic, group="blocked") == KafkaError.GROUP_AUTHORIZATION_FAILED
    assert consume_error(b, topic, group="allowed") is None


def test_super_users_pass_everything(broker_factory):
    broker = secured(broker_factory, super_users=ANONYMOUS, allow_everyone_if_no_acl_found="false")
    b = broker.bootstrap
    topic = new_topic(b)
    create_acls(
        b,
        binding(ResourceType.TOPIC, "*", AclOperation.ALL, AclPermissionType.DENY),
        binding(ResourceType.GROUP, "*", AclOperation.ALL, AclPermissionType.DENY),
    )
    assert produce_error(b, topic) is None
    assert consume_error(b, topic, group="any") is None


def fetch_as(bootstrap, topic, replica_id):
    """Fetch v4 of partition 0 from offset 0 with `replica_id` (-1: a
    consumer's): the partition's error code."""
    body = kafka_wire.fetch_request([(topic, 0, 0, 1 << 20)], 4, replica_id=replica_id)
    with contextlib.closing(kafka_wire.connect(bootstrap)) as sock:
        response = kafka_wire.call(sock, kafka_wire.API_FETCH, 4, 21, body)
    return kafka_wire.parse_fetch_response(response, 4)[2][(topic, 0)][0]


def test_a_follower_fetch_needs_cluster_action(broker_factory):
    """Kafka's KafkaApis: a fetch naming a replica id needs CLUSTER_ACTION
    on the cluster, and without it every partition is
    TOPIC_AUTHORIZATION_FAILED, READ on the topic or not."""
    broker = secured(broker_factory)
    b = broker.bootstrap
    topic = new_topic(b)
    assert produce_error(b, topic) is None
    create_acls(
        b,
        binding(ResourceType.TOPIC, topic, AclOperation.READ, AclPermissionType.ALLOW),
        binding(ResourceType.BROKER, "kafka-cluster", AclOperation.CLUSTER_ACTION, AclPermissionType.DENY),
    )
    assert fetch_as(b, topic, -1) == kafka_wire.ERR_NONE
    assert fetch_as(b, topic, 1) == KafkaError.TOPIC_AUTHORIZATION_FAILED


CONSUMER_GROUP_HEARTBEAT = 68


def heartbeat_error(bootstrap, group, topics):
    """The error code of a first ConsumerGroupHeartbeat (v0, KIP-848) that
    joins `group` subscribed to `topics`, on a raw socket."""
    null = kafka_wire.uvarint(0)
    body = (kafka_wire.compact_string(group)  # group id
            + kafka_wire.compact_string(uuid.uuid4().hex[:22])  # member id
            + struct.pack(">i", 0)  # member epoch: joining
            + null + null  # instance id, rack id
            + struct.pack(">i", 30_000)  # rebalance timeout
            + kafka_wire.compact_array([kafka_wire.compact_string(t) for t in topics])
            + null + kafka_wire.compact_array([])  # server assignor, owned partitions
            + null)  # tagged fields
    with kafka_wire.connect(bootstrap) as sock:
        response = kafka_wire.call(sock, CONSUMER_GROUP_HEARTBEAT, 0, 1, body, flexible=True)
    reader = kafka_wire.Reader(response)
    reader.take(">i")  # throttle time
    return reader.take(">h")


def test_a_subscription_needs_describe_on_each_topic(broker_factory):
    """As Kafka's: a member the group admits is refused with
    TOPIC_AUTHORIZATION_FAILED when it subscribes to a topic it may not
    DESCRIBE; the group's own READ is checked first."""
    broker = secured(broker_factory)
    b = broker.bootstrap
    hidden, visible = new_topic(b), new_topic(b)
    create_acls(
        b,
        binding(ResourceType.TOPIC, hidden, AclOperation.DESCRIBE, AclPermissionType.DENY),
        binding(ResourceType.GROUP, "blocked", AclOperation.READ, AclPermissionType.DENY),
    )
    assert heartbeat_error(b, "g-ok", [visible]) == KafkaError.NO_ERROR
    assert heartbeat_error(b, "g-hidden", [visible, hidden]) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert heartbeat_error(b, "blocked", [hidden]) == KafkaError.GROUP_AUTHORIZATION_FAILED
