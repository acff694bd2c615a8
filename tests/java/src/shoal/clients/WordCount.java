package shoal.clients;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import java.io.OutputStream;
import java.util.Arrays;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * Kafka Streams: a word count that runs until its stdin closes. Lines of space-separated words
 * come from -input; groupBy on the word makes Streams create the repartition topic
 * {app-id}-words-repartition, and count() keeps the store "counts" with its changelog
 * {app-id}-counts-changelog; every new count goes to -output (word, count as a long).
 *
 * <p>When stdin closes, it closes Streams (which commits what it processed and leaves the group)
 * and prints the states it went through and the one it ended in. A fatal error in a stream thread
 * exits 1 with the error. The test may instead SIGKILL the JVM to crash the application
 * mid-stream.
 *
 * <pre>
 *   wordcount -brokers B -app-id A -input T -output O -state-dir D [-config k=v,...]
 * </pre>
 *
 * -config is applied last, over the settings below, with Streams' own prefixes
 * ("producer.", "consumer.", ...).
 */
final class WordCount {
    /** Streams' store and repartition names, and so its internal topics' names. */
    static final String STORE = "counts";

    static final String REPARTITION = "words";

    /** Lowest commit interval worth having: the test waits on commits, not the 30 s default. */
    private static final int COMMIT_INTERVAL_MS = 200;

    /** Kafka's group.min.session.timeout.ms: a SIGKILLed member leaves the group this soon. */
    private static final int SESSION_TIMEOUT_MS = 6000;

    private static final int HEARTBEAT_INTERVAL_MS = 1000;

    /** Bounds the walk down a chain of causes, which could loop. */
    private static final int MAX_CAUSE_DEPTH = 32;

    private WordCount() {}

    static JsonNode run(Main.Flags flags) throws Exception {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, flags.get("app-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, flags.get("brokers"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, flags.get("state-dir"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, COMMIT_INTERVAL_MS);
        // Streams deletes (DeleteRecords) what it committed of its repartition topic at the first
        // commit after this interval: at every commit, not every 30 s, so the test sees it.
        props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, COMMIT_INTERVAL_MS);
        // No record cache: every count goes out as it changes, so a crash finds output that was
        // sent but whose input was not committed yet, the case at-least-once is about.
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.consumerPrefix("session.timeout.ms"), SESSION_TIMEOUT_MS);
        props.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), HEARTBEAT_INTERVAL_MS);
        for (Map.Entry<String, String> e : flags.keyValues("config").entrySet()) {
            props.put(e.getKey(), e.getValue());
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(flags.get("input"), Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.split(" ")))
                .groupBy((key, word) -> word, Grouped.with(REPARTITION, Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as(STORE))
                .toStream()
                .to(flags.get("output"), Produced.with(Serdes.String(), Serdes.Long()));

        ArrayNode states = Main.array();
        String last;
        try (KafkaStreams streams = new KafkaStreams(builder.build(), props)) {
            streams.setStateListener((now, before) -> {
                synchronized (states) {
                    states.add(now.name());
                }
            });
            // A stream thread's fatal error ends the run at once, with its cause, instead of
            // leaving the test to wait for output that will never come.
            streams.setUncaughtExceptionHandler(e -> {
                Main.fail("Kafka Streams failed: " + e + ", caused by " + rootCause(e));
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.start();
            // Nothing is sent on stdin: its end is the test's signal to close cleanly.
            System.in.transferTo(OutputStream.nullOutputStream());
            // Leaving the group spares the next run waiting out this member's session.
            CloseOptions leave = CloseOptions.groupMembershipOperation(
                            CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                    .withTimeout(flags.timeout());
            if (!streams.close(leave)) {
                throw new IllegalStateException("Kafka Streams did not close within " + flags.timeout());
            }
            // The listener may hear of the last change after close() returned.
            last = streams.state().name();
        }
        synchronized (states) {
            return Main.object().put("last", last).set("states", states.deepCopy());
        }
    }

    /** Streams wraps a client's error in layers of its own; the innermost names what went wrong. */
    private static Throwable rootCause(Throwable e) {
        Throwable t = e;
        for (int depth = 0; t.getCause() != null && t.getCause() != t && depth < MAX_CAUSE_DEPTH; depth++) {
            t = t.getCause();
        }
        return t;
    }
}
