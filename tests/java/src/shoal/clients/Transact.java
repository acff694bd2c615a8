package shoal.clients;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A transactional KafkaProducer and read_committed / read_uncommitted KafkaConsumers in one JVM.
 * Stdin is a list of transactions, each {"end": "commit"|"abort"|"open", "records": [{"partition",
 * "value"}]}; at most the last may stay "open". The producer runs them in order, then a consumer of
 * each isolation level reads every partition of -topic from the beginning up to the end offset it
 * is given (the last stable offset for read_committed). Then an open transaction is aborted and the
 * read_committed end offsets asked again. Prints {"read_committed": {"ends", "values"},
 * "read_uncommitted": {...}, "ends_after": {...}}, values per partition in offset order (base64).
 *
 * <pre>
 *   transact -brokers B -topic T -transactional-id X
 * </pre>
 */
final class Transact {
    private static final Duration POLL = Duration.ofMillis(200);

    private Transact() {}

    static JsonNode run(Main.Flags flags) throws Exception {
        String topic = flags.get("topic");
        long timeoutMs = flags.timeout().toMillis();
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, flags.get("brokers"));
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, flags.get("transactional-id"));
        // Every blocking call gives up within the run's bound instead of its minute-long default.
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, String.valueOf(timeoutMs / 2));
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs / 2));
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, String.valueOf(timeoutMs / 4));
        JsonNode transactions = Main.readStdin();
        ObjectNode out = Main.object();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            boolean open = false;
            for (JsonNode txn : transactions) {
                if (open) {
                    throw new IllegalArgumentException("only the last transaction may stay open");
                }
                producer.beginTransaction();
                for (JsonNode r : txn.get("records")) {
                    producer.send(new ProducerRecord<>(topic, r.get("partition").asInt(), null, Main.unb64(r.get("value"))));
                }
                switch (txn.get("end").asText()) {
                    case "commit" -> producer.commitTransaction();
                    case "abort" -> {
                        // Records not sent yet would be dropped by the abort, never reaching the log.
                        producer.flush();
                        producer.abortTransaction();
                    }
                    case "open" -> {
                        producer.flush();
                        open = true;
                    }
                    default -> throw new IllegalArgumentException("unknown end " + txn.get("end"));
                }
            }
            out.set("read_committed", read(flags, topic, "read_committed"));
            out.set("read_uncommitted", read(flags, topic, "read_uncommitted"));
            if (open) {
                producer.abortTransaction();
            }
        }
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(flags, "read_committed")) {
            out.set("ends_after", ends(consumer, partitions(consumer, topic, flags), flags));
        }
        return out;
    }

    private static KafkaConsumer<byte[], byte[]> consumer(Main.Flags flags, String isolation) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, flags.get("brokers"));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        return new KafkaConsumer<>(props);
    }

    private static List<TopicPartition> partitions(KafkaConsumer<byte[], byte[]> consumer, String topic, Main.Flags flags) {
        List<TopicPartition> out = new ArrayList<>();
        consumer.partitionsFor(topic, flags.timeout()).forEach(i -> out.add(new TopicPartition(topic, i.partition())));
        out.sort((a, b) -> Integer.compare(a.partition(), b.partition()));
        return out;
    }

    private static ObjectNode ends(KafkaConsumer<byte[], byte[]> consumer, List<TopicPartition> partitions, Main.Flags flags) {
        ObjectNode out = Main.object();
        for (Map.Entry<TopicPartition, Long> e : consumer.endOffsets(partitions, flags.timeout()).entrySet()) {
            out.put(String.valueOf(e.getKey().partition()), e.getValue());
        }
        return out;
    }

    /** Everything a consumer at `isolation` reads from the beginning up to its end offsets. */
    private static ObjectNode read(Main.Flags flags, String topic, String isolation) throws Exception {
        long deadlineNs = System.nanoTime() + flags.timeout().toNanos() / 4;
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(flags, isolation)) {
            List<TopicPartition> partitions = partitions(consumer, topic, flags);
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            ObjectNode ends = ends(consumer, partitions, flags);
            ObjectNode values = Main.object();
            for (TopicPartition tp : partitions) {
                values.putArray(String.valueOf(tp.partition()));
            }
            while (!partitions.stream().allMatch(tp -> consumer.position(tp) >= ends.get(String.valueOf(tp.partition())).asLong())) {
                if (System.nanoTime() > deadlineNs) {
                    throw new TimeoutException(isolation + " consumer did not reach " + ends + ": read " + values);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(POLL)) {
                    ((ArrayNode) values.get(String.valueOf(r.partition()))).add(Main.b64(r.value()));
                }
            }
            ObjectNode out = Main.object();
            out.set("ends", ends);
            out.set("values", values);
            return out;
        }
    }
}
