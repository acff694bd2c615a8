"""A node's `process.roles` and the listener settings each role needs, as
Kafka's KafkaConfig checks them, for the node scripts (tests/cluster/shoal-node,
tests/kafka/kafka-cluster-node) and the harness:

- broker,controller (combined): both listeners, the client one advertised;
- broker: only the client listener, advertised; it reaches the quorum through
  `controller.listener.names` (the protocol) and `controller.quorum.voters`;
- controller: only the CONTROLLER listener, nothing advertised to clients.
"""

COMBINED = "broker,controller"
BROKER = "broker"
CONTROLLER = "controller"
ROLES = (COMBINED, BROKER, CONTROLLER)


def parse(roles):
    """The set of roles in a `process.roles` value; ValueError for one that
    is none of ROLES' forms."""
    names = {name.strip() for name in roles.split(",") if name.strip()}
    if not names or not names <= {BROKER, CONTROLLER}:
        raise ValueError(f"process.roles must be broker, controller or both, not {roles!r}")
    return names


def listener_properties(roles, host, port, controller_port):
    """`process.roles` and the listener settings of a node with `roles`."""
    names = parse(roles)
    listeners = []
    props = {"process.roles": ",".join(r for r in (BROKER, CONTROLLER) if r in names)}
    if BROKER in names:
        listeners.append(f"PLAINTEXT://{host}:{port}")
        props["advertised.listeners"] = f"PLAINTEXT://{host}:{port}"
        props["inter.broker.listener.name"] = "PLAINTEXT"
    if CONTROLLER in names:
        listeners.append(f"CONTROLLER://{host}:{controller_port}")
    props["listeners"] = ",".join(listeners)
    props["controller.listener.names"] = "CONTROLLER"
    props["listener.security.protocol.map"] = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    return props
