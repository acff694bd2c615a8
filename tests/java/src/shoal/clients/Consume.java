package shoal.clients;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * KafkaConsumer: reads exactly -count records and prints them in the order received, committing
 * exactly the records it printed (never one it polled but did not print).
 *
 * <p>In a group (-group): -protocol classic (with -assignor range|cooperative-sticky and
 * -instance-id for static membership) or consumer (KIP-848, -assignor names the broker's); -commit
 * sync|async|none. Without a group: -assign 0,1 and -seek 0=5 (offsets) or -seek-time MS
 * (offsetsForTimes). Either way -pause 0,1 -resume-after N pauses those partitions from the start
 * and resumes them once N records were printed.
 *
 * <p>The command `query` asks a consumer's metadata calls: -op for-times -millis MS, -op ends.
 */
final class Consume {
    private static final Duration POLL = Duration.ofMillis(200);

    private Consume() {}

    static Properties config(Main.Flags flags) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, flags.get("brokers"));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, flags.get("client-id", "shoal-java"));
        if (flags.has("group")) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, flags.get("group"));
            String protocol = flags.get("protocol", "classic");
            props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            if (protocol.equals("classic")) {
                String assignor =
                        switch (flags.get("assignor", "range")) {
                            case "range" -> RangeAssignor.class.getName();
                            case "cooperative-sticky" -> CooperativeStickyAssignor.class.getName();
                            default -> throw new IllegalArgumentException("unknown -assignor");
                        };
                props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
            } else if (flags.has("assignor")) {
                props.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, flags.get("assignor"));
            }
            if (flags.has("instance-id")) {
                props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, flags.get("instance-id"));
            }
        }
        return props;
    }

    static JsonNode run(Main.Flags flags) throws Exception {
        String topic = flags.get("topic");
        int count = flags.integer("count");
        String commit = flags.get("commit", flags.has("group") ? "sync" : "none");
        long deadlineNs = System.nanoTime() + flags.timeout().toNanos();
        Set<TopicPartition> toPause = new HashSet<>();
        for (int p : flags.partitions("pause")) {
            toPause.add(new TopicPartition(topic, p));
        }
        int resumeAfter = Integer.parseInt(flags.get("resume-after", "0"));
        AtomicInteger asyncIssued = new AtomicInteger();
        AtomicInteger asyncDone = new AtomicInteger();
        AtomicReference<Exception> asyncError = new AtomicReference<>();
        ArrayNode out = Main.array();

        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config(flags))) {
            boolean[] resumed = {false};
            if (flags.has("group")) {
                consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {}

                    @Override
                    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                        if (!resumed[0]) {
                            Set<TopicPartition> now = new HashSet<>(partitions);
                            now.retainAll(toPause);
                            consumer.pause(now);
                        }
                    }
                });
            } else {
                List<TopicPartition> assigned = new ArrayList<>();
                for (int p : flags.partitions("assign")) {
                    assigned.add(new TopicPartition(topic, p));
                }
                consumer.assign(assigned);
                seek(consumer, flags, topic, assigned);
                consumer.pause(toPause);
            }

            while (out.size() < count) {
                if (System.nanoTime() > deadlineNs) {
                    throw new TimeoutException("consumed " + out.size() + " of " + count + " records");
                }
                ConsumerRecords<byte[], byte[]> polled = consumer.poll(POLL);
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<byte[], byte[]> r : polled) {
                    if (out.size() == count) {
                        break;
                    }
                    out.add(record(r));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                if (!resumed[0] && out.size() >= resumeAfter && !toPause.isEmpty()) {
                    resumed[0] = true;
                    consumer.resume(toPause);
                }
                if (offsets.isEmpty()) {
                    continue;
                }
                switch (commit) {
                    case "sync" -> consumer.commitSync(offsets);
                    case "async" -> {
                        asyncIssued.incrementAndGet();
                        consumer.commitAsync(offsets, (committed, error) -> {
                            if (error != null) {
                                asyncError.compareAndSet(null, error);
                            }
                            asyncDone.incrementAndGet();
                        });
                    }
                    case "none" -> {}
                    default -> throw new IllegalArgumentException("unknown -commit " + commit);
                }
            }
            if (asyncIssued.get() > 0) {
                // KafkaConsumer's contract: commitSync, even of nothing, returns only after the
                // async commits before it completed and their callbacks ran (close() does not
                // promise the callbacks).
                consumer.commitSync(Map.of(), flags.timeout());
            }
        }
        if (asyncError.get() != null) {
            throw asyncError.get();
        }
        if (asyncDone.get() != asyncIssued.get()) {
            throw new IllegalStateException(
                    "close() left " + (asyncIssued.get() - asyncDone.get()) + " async commits unanswered");
        }
        return out;
    }

    private static void seek(
            KafkaConsumer<byte[], byte[]> consumer, Main.Flags flags, String topic, List<TopicPartition> assigned) {
        for (Map.Entry<String, String> e : flags.keyValues("seek").entrySet()) {
            consumer.seek(new TopicPartition(topic, Integer.parseInt(e.getKey())), Long.parseLong(e.getValue()));
        }
        if (flags.has("seek-time")) {
            long at = Long.parseLong(flags.get("seek-time"));
            Map<TopicPartition, Long> query = new HashMap<>();
            for (TopicPartition tp : assigned) {
                query.put(tp, at);
            }
            Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(query, flags.timeout());
            Map<TopicPartition, Long> ends = consumer.endOffsets(assigned, flags.timeout());
            for (TopicPartition tp : assigned) {
                OffsetAndTimestamp o = found.get(tp);
                consumer.seek(tp, o == null ? ends.get(tp) : o.offset());
            }
        }
    }

    private static ObjectNode record(ConsumerRecord<byte[], byte[]> r) {
        ArrayNode headers = Main.array();
        for (Header h : r.headers()) {
            headers.add(Main.object().put("key", h.key()).put("value", Main.b64(h.value())));
        }
        ObjectNode o = Main.object()
                .put("partition", r.partition())
                .put("offset", r.offset())
                .put("key", Main.b64(r.key()))
                .put("value", Main.b64(r.value()))
                .put("timestamp_ms", r.timestamp())
                .put("timestamp_type", r.timestampType().name);
        o.set("headers", headers);
        return o;
    }

    /** A consumer's metadata calls, without subscribing. */
    static JsonNode query(Main.Flags flags) throws Exception {
        String topic = flags.get("topic");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config(flags))) {
            List<TopicPartition> partitions = new ArrayList<>();
            consumer.partitionsFor(topic, flags.timeout())
                    .forEach(i -> partitions.add(new TopicPartition(topic, i.partition())));
            ObjectNode out = Main.object();
            switch (flags.get("op")) {
                case "for-times" -> {
                    Map<TopicPartition, Long> query = new HashMap<>();
                    partitions.forEach(tp -> query.put(tp, Long.parseLong(flags.get("millis"))));
                    Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(query, flags.timeout());
                    for (TopicPartition tp : partitions) {
                        OffsetAndTimestamp o = found.get(tp);
                        out.set(String.valueOf(tp.partition()), o == null ? null
                                : Main.object().put("offset", o.offset()).put("timestamp_ms", o.timestamp()));
                    }
                }
                case "ends" -> {
                    ObjectNode start = out.putObject("start");
                    consumer.beginningOffsets(partitions, flags.timeout())
                            .forEach((tp, o) -> start.put(String.valueOf(tp.partition()), o));
                    ObjectNode end = out.putObject("end");
                    consumer.endOffsets(partitions, flags.timeout())
                            .forEach((tp, o) -> end.put(String.valueOf(tp.partition()), o));
                }
                case "committed" -> consumer.committed(new HashSet<>(partitions), flags.timeout()).forEach((tp, o) -> {
                    if (o != null) {
                        out.put(String.valueOf(tp.partition()), o.offset());
                    }
                });
                default -> throw new IllegalArgumentException("unknown -op");
            }
            return out;
        }
    }
}
