package shoal.clients;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DeleteTopicsOptions;
import org.apache.kafka.clients.admin.DeleteTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.FenceProducersOptions;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.ApiException;
import org.apache.kafka.common.errors.ThrottlingQuotaExceededException;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.RemoveMembersFromConsumerGroupOptions;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.quota.ClientQuotaFilter;

/** Admin: one call (or one short sequence) per -op, its answer as JSON. */
final class AdminOps {
    /** fenceProducers' bound in the `unsupported` probe: long enough for an answer, short enough to wait out. */
    private static final int FENCE_TIMEOUT_MS = 3000;

    private AdminOps() {}

    static JsonNode run(Main.Flags flags) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, flags.get("brokers"));
        int timeoutMs = (int) flags.timeout().toMillis();
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs / 2));
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs / 4));
        if (flags.has("client-id")) {
            props.put(AdminClientConfig.CLIENT_ID_CONFIG, flags.get("client-id"));
        }
        try (Admin admin = Admin.create(props)) {
            return new AdminOps.Call(admin, flags, timeoutMs).run();
        }
    }

    private record Call(Admin admin, Main.Flags flags, long timeoutMs) {
        <T> T get(KafkaFuture<T> f) throws Exception {
            return f.get(timeoutMs, TimeUnit.MILLISECONDS);
        }

        String topic() {
            return flags.get("topic");
        }

        TopicPartition partition0() {
            return new TopicPartition(topic(), 0);
        }

        JsonNode run() throws Exception {
            return switch (flags.get("op")) {
                case "create-topic" -> createTopic();
                case "delete-topic" -> deleteTopic();
                case "create-topics-once" -> createTopicsOnce();
                case "delete-topics-once" -> deleteTopicsOnce();
                case "topics" -> topics();
                case "describe-topic" -> describeTopic();
                case "create-partitions" -> {
                    NewPartitions total = NewPartitions.increaseTo(flags.integer("total"));
                    get(admin.createPartitions(Map.of(topic(), total)).all());
                    yield Main.object();
                }
                case "describe-configs" -> describeConfigs();
                case "alter-configs" -> alterConfigs();
                case "delete-records" -> deleteRecords();
                case "offsets" -> offsets();
                case "log-dirs" -> logDirs();
                case "cluster" -> cluster();
                case "list-groups" -> listGroups();
                case "describe-groups" -> describeGroup();
                case "fetch-offsets" -> fetchOffsets();
                case "alter-offsets" -> {
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    flags.keyValues("offsets").forEach((p, o) -> offsets.put(
                            new TopicPartition(topic(), Integer.parseInt(p)), new OffsetAndMetadata(Long.parseLong(o))));
                    get(admin.alterConsumerGroupOffsets(flags.get("group"), offsets).all());
                    yield Main.object();
                }
                case "delete-offsets" -> {
                    Set<TopicPartition> partitions = new HashSet<>();
                    flags.partitions("partitions").forEach(p -> partitions.add(new TopicPartition(topic(), p)));
                    get(admin.deleteConsumerGroupOffsets(flags.get("group"), partitions).all());
                    yield Main.object();
                }
                case "remove-members" -> {
                    var everyone = new RemoveMembersFromConsumerGroupOptions();
                    get(admin.removeMembersFromConsumerGroup(flags.get("group"), everyone).all());
                    yield Main.object();
                }
                case "delete-group" -> {
                    get(admin.deleteConsumerGroups(List.of(flags.get("group"))).all());
                    yield Main.object();
                }
                case "unsupported" -> unsupported();
                default -> throw new IllegalArgumentException("unknown -op " + flags.get("op"));
            };
        }

        JsonNode createTopic() throws Exception {
            NewTopic t = new NewTopic(topic(), Optional.of(flags.integer("partitions")), Optional.empty())
                    .configs(flags.keyValues("config"));
            CreateTopicsResult r = admin.createTopics(List.of(t));
            get(r.all());
            return Main.object()
                    .put("id", get(r.topicId(topic())).toString())
                    .put("partitions", get(r.numPartitions(topic())))
                    .put("replication_factor", get(r.replicationFactor(topic())));
        }

        /** -partitions-of name=count,...: created in one request, not retried past a quota. */
        JsonNode createTopicsOnce() throws Exception {
            List<NewTopic> topics = new ArrayList<>();
            flags.keyValues("partitions-of").forEach((name, count) ->
                    topics.add(new NewTopic(name, Optional.of(Integer.parseInt(count)), Optional.empty())));
            CreateTopicsOptions once = new CreateTopicsOptions().retryOnQuotaViolation(false);
            CreateTopicsResult r = admin.createTopics(topics, once);
            ObjectNode out = Main.object();
            for (NewTopic t : topics) {
                out.set(t.name(), outcome(r.values().get(t.name())));
            }
            return out;
        }

        /** -topics a,b,...: deleted in one request, not retried past a quota. */
        JsonNode deleteTopicsOnce() throws Exception {
            List<String> names = List.of(flags.get("topics").split(","));
            DeleteTopicsOptions once = new DeleteTopicsOptions().retryOnQuotaViolation(false);
            DeleteTopicsResult r = admin.deleteTopics(TopicCollection.ofTopicNames(names), once);
            ObjectNode out = Main.object();
            for (String name : names) {
                out.set(name, outcome(r.topicNameValues().get(name)));
            }
            return out;
        }

        /** One topic's outcome: its error's class (null when none) and a throttle's time. */
        JsonNode outcome(KafkaFuture<?> f) throws Exception {
            ObjectNode o = Main.object();
            try {
                get(f);
                o.putNull("error");
            } catch (ExecutionException e) {
                o.put("error", e.getCause().getClass().getSimpleName());
                if (e.getCause() instanceof ThrottlingQuotaExceededException t) {
                    o.put("throttle_time_ms", t.throttleTimeMs());
                }
            }
            return o;
        }

        JsonNode deleteTopic() throws Exception {
            TopicCollection which = flags.has("topic-id")
                    ? TopicCollection.ofTopicIds(List.of(Uuid.fromString(flags.get("topic-id"))))
                    : TopicCollection.ofTopicNames(List.of(topic()));
            get(admin.deleteTopics(which).all());
            return Main.object();
        }

        JsonNode topics() throws Exception {
            var options = new ListTopicsOptions().listInternal(flags.has("internal"));
            ObjectNode out = Main.object();
            for (TopicListing l : new TreeMap<>(get(admin.listTopics(options).namesToListings())).values()) {
                out.set(l.name(), Main.object().put("id", l.topicId().toString()).put("internal", l.isInternal()));
            }
            return out;
        }

        JsonNode describeTopic() throws Exception {
            TopicDescription d = get(admin.describeTopics(List.of(topic())).allTopicNames()).get(topic());
            ObjectNode out = Main.object().put("id", d.topicId().toString()).put("internal", d.isInternal());
            ArrayNode partitions = out.putArray("partitions");
            for (TopicPartitionInfo p : d.partitions()) {
                ObjectNode o = partitions.addObject().put("partition", p.partition()).put("leader", p.leader().id());
                p.replicas().forEach(n -> o.withArray("replicas").add(n.id()));
                p.isr().forEach(n -> o.withArray("isr").add(n.id()));
            }
            return out;
        }

        ConfigResource resource() {
            return flags.has("broker")
                    ? new ConfigResource(ConfigResource.Type.BROKER, flags.get("broker"))
                    : new ConfigResource(ConfigResource.Type.TOPIC, topic());
        }

        JsonNode describeConfigs() throws Exception {
            ConfigResource r = resource();
            Config config = get(admin.describeConfigs(List.of(r)).all()).get(r);
            ObjectNode out = Main.object();
            for (ConfigEntry e : config.entries()) {
                out.set(e.name(), Main.object()
                        .put("value", e.value())
                        .put("source", e.source().name())
                        .put("sensitive", e.isSensitive())
                        .put("read_only", e.isReadOnly()));
            }
            return out;
        }

        JsonNode alterConfigs() throws Exception {
            List<AlterConfigOp> ops = new ArrayList<>();
            flags.keyValues("set").forEach((k, v) ->
                    ops.add(new AlterConfigOp(new ConfigEntry(k, v), AlterConfigOp.OpType.SET)));
            for (String k : flags.get("delete", "").split(",")) {
                if (!k.isEmpty()) {
                    ops.add(new AlterConfigOp(new ConfigEntry(k, null), AlterConfigOp.OpType.DELETE));
                }
            }
            get(admin.incrementalAlterConfigs(Map.of(resource(), ops)).all());
            return Main.object();
        }

        JsonNode deleteRecords() throws Exception {
            Map<TopicPartition, RecordsToDelete> which = new LinkedHashMap<>();
            flags.keyValues("offsets").forEach((p, o) ->
                    which.put(new TopicPartition(topic(), Integer.parseInt(p)),
                            RecordsToDelete.beforeOffset(Long.parseLong(o))));
            ObjectNode out = Main.object();
            for (var e : admin.deleteRecords(which).lowWatermarks().entrySet()) {
                out.put(String.valueOf(e.getKey().partition()), get(e.getValue()).lowWatermark());
            }
            return out;
        }

        /** -spec earliest|latest|max-timestamp|MS for every partition of -topic. */
        JsonNode offsets() throws Exception {
            String s = flags.get("spec");
            OffsetSpec spec = switch (s) {
                case "earliest" -> OffsetSpec.earliest();
                case "latest" -> OffsetSpec.latest();
                case "max-timestamp" -> OffsetSpec.maxTimestamp();
                default -> OffsetSpec.forTimestamp(Long.parseLong(s));
            };
            TopicDescription described = get(admin.describeTopics(List.of(topic())).allTopicNames()).get(topic());
            int partitions = described.partitions().size();
            Map<TopicPartition, OffsetSpec> query = new LinkedHashMap<>();
            for (int p = 0; p < partitions; p++) {
                query.put(new TopicPartition(topic(), p), spec);
            }
            Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> found = get(admin.listOffsets(query).all());
            ObjectNode out = Main.object();
            for (TopicPartition tp : query.keySet()) {
                var i = found.get(tp);
                out.set(String.valueOf(tp.partition()),
                        Main.object().put("offset", i.offset()).put("timestamp_ms", i.timestamp()));
            }
            return out;
        }

        JsonNode logDirs() throws Exception {
            List<Integer> brokers = new ArrayList<>();
            get(admin.describeCluster().nodes()).forEach(n -> brokers.add(n.id()));
            ObjectNode out = Main.object();
            for (var perBroker : get(admin.describeLogDirs(brokers).allDescriptions()).entrySet()) {
                for (Map.Entry<String, LogDirDescription> dir : perBroker.getValue().entrySet()) {
                    ApiException error = dir.getValue().error();
                    ObjectNode o = Main.object()
                            .put("broker", perBroker.getKey())
                            .put("error", error == null ? null : error.getClass().getSimpleName());
                    ObjectNode replicas = o.putObject("replicas");
                    dir.getValue().replicaInfos().forEach((tp, info) -> replicas.put(tp.toString(), info.size()));
                    out.set(dir.getKey(), o);
                }
            }
            return out;
        }

        JsonNode cluster() throws Exception {
            DescribeClusterResult r = admin.describeCluster();
            ObjectNode out = Main.object()
                    .put("cluster_id", get(r.clusterId()))
                    .put("controller", get(r.controller()).id());
            ArrayNode nodes = out.putArray("nodes");
            for (Node n : get(r.nodes())) {
                nodes.addObject().put("id", n.id()).put("host", n.host()).put("port", n.port());
            }
            return out;
        }

        JsonNode listGroups() throws Exception {
            ObjectNode out = Main.object();
            for (GroupListing g : get(admin.listGroups().all())) {
                out.set(g.groupId(), Main.object()
                        .put("state", g.groupState().map(Object::toString).orElse(null))
                        .put("type", g.type().map(Object::toString).orElse(null))
                        .put("protocol", g.protocol()));
            }
            return out;
        }

        JsonNode describeGroup() throws Exception {
            String group = flags.get("group");
            ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(group)).all()).get(group);
            ObjectNode out = Main.object()
                    .put("state", d.groupState().toString())
                    .put("type", d.type().toString())
                    .put("assignor", d.partitionAssignor());
            ArrayNode members = out.putArray("members");
            for (MemberDescription m : d.members()) {
                ObjectNode o = members.addObject()
                        .put("client_id", m.clientId())
                        .put("instance_id", m.groupInstanceId().orElse(null));
                ObjectNode assigned = o.putObject("assigned");
                Map<String, List<Integer>> byTopic = new TreeMap<>();
                for (TopicPartition tp : m.assignment().topicPartitions()) {
                    byTopic.computeIfAbsent(tp.topic(), t -> new ArrayList<>()).add(tp.partition());
                }
                byTopic.forEach((t, ps) -> {
                    ArrayNode a = assigned.putArray(t);
                    ps.stream().sorted().forEach(a::add);
                });
            }
            return out;
        }

        JsonNode fetchOffsets() throws Exception {
            Map<TopicPartition, OffsetAndMetadata> offsets =
                    get(admin.listConsumerGroupOffsets(flags.get("group")).partitionsToOffsetAndMetadata());
            ObjectNode out = Main.object();
            offsets.entrySet().stream()
                    .sorted(Map.Entry.comparingByKey(Comparator.comparing(TopicPartition::toString)))
                    .forEach(e -> {
                        ObjectNode perTopic = out.has(e.getKey().topic()) ? (ObjectNode) out.get(e.getKey().topic())
                                : out.putObject(e.getKey().topic());
                        perTopic.put(String.valueOf(e.getKey().partition()), e.getValue().offset());
                    });
            return out;
        }

        /**
         * Admin calls for APIs shoal does not serve: for each, the exception the client raised
         * (its simple class name), or "ok".
         */
        JsonNode unsupported() {
            Map<String, KafkaFuture<?>> calls = new LinkedHashMap<>();
            calls.put("describeAcls", admin.describeAcls(AclBindingFilter.ANY).values());
            calls.put("describeClientQuotas", admin.describeClientQuotas(ClientQuotaFilter.all()).entities());
            calls.put("describeUserScramCredentials", admin.describeUserScramCredentials().all());
            calls.put("listTransactions", admin.listTransactions().all());
            calls.put("listPartitionReassignments", admin.listPartitionReassignments().reassignments());
            calls.put("describeMetadataQuorum", admin.describeMetadataQuorum().quorumInfo());
            calls.put("describeDelegationToken", admin.describeDelegationToken().delegationTokens());
            calls.put("describeProducers", admin.describeProducers(List.of(partition0())).all());
            calls.put("electLeaders", admin.electLeaders(ElectionType.PREFERRED, Set.of(partition0())).all());
            calls.put("createAcls", admin.createAcls(List.of(new AclBinding(
                            new ResourcePattern(ResourceType.TOPIC, topic(), PatternType.LITERAL),
                            new AccessControlEntry("User:test", "*", AclOperation.READ, AclPermissionType.ALLOW))))
                    .all());
            calls.put("alterClientQuotas", admin.alterClientQuotas(List.of(new ClientQuotaAlteration(
                            new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, "test")),
                            List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1024.0)))))
                    .all());
            calls.put("alterUserScramCredentials", admin.alterUserScramCredentials(List.of(
                            new UserScramCredentialUpsertion(
                                    "test", new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), "secret")))
                    .all());
            calls.put("alterPartitionReassignments", admin.alterPartitionReassignments(
                            Map.of(partition0(), Optional.of(new NewPartitionReassignment(List.of(1)))))
                    .all());
            // Retried until its deadline (shoal's transaction FindCoordinator answer is retriable):
            // a short one keeps the run short.
            calls.put("fenceProducers", admin.fenceProducers(
                            List.of("shoal-test-txn"), new FenceProducersOptions().timeoutMs(FENCE_TIMEOUT_MS))
                    .all());
            calls.put("describeFeatures", admin.describeFeatures().featureMetadata());
            ObjectNode out = Main.object();
            calls.forEach((name, f) -> {
                String outcome;
                try {
                    get(f);
                    outcome = "ok";
                } catch (Exception e) {
                    outcome = Main.unwrap(e).getClass().getSimpleName();
                }
                out.put(name, outcome);
            });
            return out;
        }
    }

}
