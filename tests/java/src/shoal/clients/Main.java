package shoal.clients;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.common.KafkaException;

/**
 * The Java client programs that tests/integration/test_java_clients.py and test_kafka_streams.py
 * run: one JVM per call, records to produce as JSON on stdin, the client's answer as JSON on
 * stdout, the client's own error on stderr with exit code 1. The programs check nothing themselves: every check is in the
 * Python test. They depend on the Kafka jars of tests/kafka/pom.xml only (Jackson comes with them).
 *
 * <pre>
 *   produce -brokers B -topic T [-codec C] [-acks A] [-config k=v,...] [-default-config true]
 *   consume -brokers B -topic T -count N [-group G | -assign 0,1] [-protocol classic|consumer] ...
 *   admin   -brokers B -op OP ...
 *   wordcount -brokers B -app-id A -input T -output O -state-dir D (Kafka Streams, until stdin ends)
 *   transact -brokers B -topic T -transactional-id X (transactions from stdin, then reads back)
 * </pre>
 */
public final class Main {
    static final ObjectMapper JSON = new ObjectMapper();

    private Main() {}

    public static void main(String[] args) {
        if (args.length < 1) {
            fail("usage: produce|consume|query|admin|wordcount|transact -flag value ...");
        }
        Flags flags = Flags.parse(args);
        try {
            JsonNode result =
                    switch (args[0]) {
                        case "produce" -> Produce.run(flags);
                        case "consume" -> Consume.run(flags);
                        case "query" -> Consume.query(flags);
                        case "admin" -> AdminOps.run(flags);
                        case "wordcount" -> WordCount.run(flags);
                        case "transact" -> Transact.run(flags);
                        default -> throw new IllegalArgumentException("unknown command " + args[0]);
                    };
            System.out.println(JSON.writeValueAsString(result));
            System.out.flush();
            // The clients' own threads (a closed client's may linger) must not keep the JVM.
            System.exit(0);
        } catch (Exception e) {
            Throwable cause = unwrap(e);
            fail(cause.getClass().getName() + ": " + cause.getMessage());
        }
    }

    /** The exception a Kafka future or a client wrapped around the one that names the cause. */
    static Throwable unwrap(Throwable e) {
        Throwable t = e;
        while ((t instanceof ExecutionException
                        || t instanceof CompletionException
                        || t.getClass() == KafkaException.class)
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    static void fail(String message) {
        System.err.println("error: " + message);
        System.err.flush();
        System.exit(1);
    }

    static String b64(byte[] data) {
        return data == null ? null : Base64.getEncoder().encodeToString(data);
    }

    static byte[] unb64(JsonNode node) {
        return node == null || node.isNull() ? null : Base64.getDecoder().decode(node.asText());
    }

    static ObjectNode object() {
        return JSON.createObjectNode();
    }

    static ArrayNode array() {
        return JSON.createArrayNode();
    }

    static JsonNode readStdin() throws IOException {
        return JSON.readTree(System.in);
    }

    /** "-name value" pairs after the command. */
    static final class Flags {
        private final Map<String, String> values = new HashMap<>();

        static Flags parse(String[] args) {
            Flags flags = new Flags();
            for (int i = 1; i < args.length; i += 2) {
                if (!args[i].startsWith("-") || i + 1 >= args.length) {
                    fail("expected -flag value at " + args[i]);
                }
                flags.values.put(args[i].substring(1), args[i + 1]);
            }
            return flags;
        }

        String get(String name) {
            String v = values.get(name);
            if (v == null) {
                throw new IllegalArgumentException("-" + name + " is required");
            }
            return v;
        }

        String get(String name, String otherwise) {
            return values.getOrDefault(name, otherwise);
        }

        boolean has(String name) {
            return values.containsKey(name);
        }

        int integer(String name) {
            return Integer.parseInt(get(name));
        }

        /** The -timeout that bounds the whole run, in Go's "40s" form or milliseconds. */
        Duration timeout() {
            String t = get("timeout", "40s");
            return t.endsWith("s") ? Duration.ofSeconds(Long.parseLong(t.substring(0, t.length() - 1)))
                    : Duration.ofMillis(Long.parseLong(t));
        }

        /** "k=v,k2=v2" into an ordered map. */
        Map<String, String> keyValues(String name) {
            Map<String, String> out = new LinkedHashMap<>();
            String s = get(name, "");
            if (s.isEmpty()) {
                return out;
            }
            for (String pair : s.split(",")) {
                int eq = pair.indexOf('=');
                if (eq < 0) {
                    throw new IllegalArgumentException(pair + " is not key=value");
                }
                out.put(pair.substring(0, eq), pair.substring(eq + 1));
            }
            return out;
        }

        /** "0,2" into partitions. */
        List<Integer> partitions(String name) {
            List<Integer> out = new ArrayList<>();
            for (String p : get(name, "").split(",")) {
                if (!p.isEmpty()) {
                    out.add(Integer.parseInt(p));
                }
            }
            return out;
        }
    }
}
