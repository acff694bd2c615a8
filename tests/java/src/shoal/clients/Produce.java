package shoal.clients;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * KafkaProducer: sends the records read from stdin (each with its partition, key, value, headers
 * and CreateTime) and prints where each landed, in the order given. Without -default-config the
 * producer is not idempotent (so that -acks may be 0 or 1, which idempotence forbids); with it,
 * it is the user's out-of-the-box producer. With -report-errors a record that fails is printed as
 * its exception's class and message instead of failing the run. With -rate-per-s the records are
 * sent at that pace rather than all at once, so that a broker killed meanwhile meets the producer
 * mid-stream.
 */
final class Produce {
    private Produce() {}

    static JsonNode run(Main.Flags flags) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, flags.get("brokers"));
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        long timeoutMs = flags.timeout().toMillis();
        // The producer gives up within the run's bound instead of its two-minute default.
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, String.valueOf(timeoutMs / 2));
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs / 2));
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs / 4));
        if (!flags.has("default-config")) {
            props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
            props.put(ProducerConfig.ACKS_CONFIG, flags.get("acks", "all"));
            props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, flags.get("codec", "none"));
        }
        for (Map.Entry<String, String> e : flags.keyValues("config").entrySet()) {
            props.put(e.getKey(), e.getValue());
        }
        String topic = flags.get("topic");
        JsonNode records = Main.readStdin();
        long ratePerS = Long.parseLong(flags.get("rate-per-s", "0"));
        List<Future<RecordMetadata>> sent = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            long startNs = System.nanoTime();
            for (JsonNode r : records) {
                if (ratePerS > 0) {
                    long dueNs = startNs + sent.size() * 1_000_000_000L / ratePerS;
                    long aheadNs = dueNs - System.nanoTime();
                    if (aheadNs > 0) {
                        TimeUnit.NANOSECONDS.sleep(aheadNs);
                    }
                }
                RecordHeaders headers = new RecordHeaders();
                for (JsonNode h : r.path("headers")) {
                    headers.add(new RecordHeader(h.get("key").asText(), Main.unb64(h.get("value"))));
                }
                sent.add(producer.send(new ProducerRecord<>(
                        topic,
                        r.get("partition").asInt(),
                        r.get("timestamp_ms").asLong(),
                        Main.unb64(r.get("key")),
                        Main.unb64(r.get("value")),
                        headers)));
            }
            producer.flush();
            ArrayNode acks = Main.array();
            for (Future<RecordMetadata> f : sent) {
                RecordMetadata m;
                try {
                    m = f.get(timeoutMs, TimeUnit.MILLISECONDS);
                } catch (ExecutionException e) {
                    if (!flags.has("report-errors")) {
                        throw e;
                    }
                    // What the application is told about this one record.
                    acks.add(Main.object()
                            .put("error", e.getCause().getClass().getSimpleName())
                            .put("message", e.getCause().getMessage()));
                    continue;
                }
                // acks=0 learns no offset: Kafka's client reports -1.
                acks.add(Main.object().put("partition", m.partition()).put("offset", m.offset()));
            }
            return acks;
        }
    }
}
