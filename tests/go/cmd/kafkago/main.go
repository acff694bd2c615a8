// Command kafkago drives segmentio/kafka-go against a broker for the
// integration tests: Writer producing, Reader consuming in a group, and the
// kafka.Client admin calls, with records and results as JSON (see package
// drive). It only does what a flag asks and reports what the client
// answered; every check is the test's.
package main

import (
	"errors"
	"flag"
	"os"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"shoal/tests/go/internal/drive"
)

func main() {
	if len(os.Args) < 2 {
		drive.Fail("usage: kafkago produce|consume|admin -brokers host:port ...")
	}
	switch os.Args[1] {
	case "produce":
		produce(os.Args[2:])
	case "consume":
		consume(os.Args[2:])
	case "admin":
		admin(os.Args[2:])
	default:
		drive.Fail("unknown subcommand %q", os.Args[1])
	}
}

var codecs = map[string]kafka.Compression{
	"none":   0,
	"gzip":   kafka.Gzip,
	"snappy": kafka.Snappy,
	"lz4":    kafka.Lz4,
	"zstd":   kafka.Zstd,
}

// byKey sends each record to the partition the test chose for it. kafka-go's
// Writer ignores Message.Partition and asks a Balancer, which sees only the
// message: the test gives every record a distinct key.
type byKey map[string]int

func (b byKey) Balance(msg kafka.Message, _ ...int) int { return b[string(msg.Key)] }

// produce writes the records on stdin with one synchronous WriteMessages
// (acks=all) and prints nothing but the count: kafka-go's Writer does not
// report offsets, the test reads them back.
func produce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	topic := fs.String("topic", "", "topic")
	codec := fs.String("codec", "none", "none|gzip|snappy|lz4|zstd")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	c, ok := codecs[*codec]
	if !ok {
		drive.Fail("unknown codec %q", *codec)
	}
	records := drive.ReadRecords()
	partitions := byKey{}
	msgs := make([]kafka.Message, 0, len(records))
	for _, rec := range records {
		if _, dup := partitions[string(rec.Key)]; dup || rec.Key == nil {
			drive.Fail("kafkago produce needs a distinct non-null key per record, got %q twice or null", rec.Key)
		}
		partitions[string(rec.Key)] = int(rec.Partition)
		msg := kafka.Message{Key: rec.Key, Value: rec.Value, Time: time.UnixMilli(rec.TimestampMs)}
		for _, h := range rec.Headers {
			msg.Headers = append(msg.Headers, kafka.Header{Key: h.Key, Value: h.Value})
		}
		msgs = append(msgs, msg)
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(*brokers),
		Topic:        *topic,
		Balancer:     partitions,
		RequiredAcks: kafka.RequireAll,
		Compression:  c,
		BatchSize:    50,
		BatchTimeout: 5 * time.Millisecond,
		WriteTimeout: *timeout,
		ReadTimeout:  *timeout,
	}
	ctx, cancel := drive.Context(*timeout)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		drive.Fail("write: %v", err)
	}
	if err := w.Close(); err != nil {
		drive.Fail("close: %v", err)
	}
	drive.Print(map[string]int{"written": len(msgs)})
}

// consume reads count records as a member of a group (classic protocol, the
// only one kafka-go has), commits the last one of each partition and leaves,
// printing the records in the order received.
func consume(args []string) {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	count := fs.Int("count", 0, "records to read")
	timeout := fs.Duration("timeout", 40*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     []string{*brokers},
		GroupID:     *group,
		Topic:       *topic,
		StartOffset: kafka.FirstOffset,
		MaxWait:     500 * time.Millisecond,
		// Commits are explicit, once, at the end.
		CommitInterval: 0,
	})
	ctx, cancel := drive.Context(*timeout)
	defer cancel()
	var got []drive.Record
	var msgs []kafka.Message
	for len(got) < *count {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			drive.Fail("read %d of %d records: %v", len(got), *count, err)
		}
		msgs = append(msgs, m)
		rec := drive.Record{
			Partition:   int32(m.Partition),
			Offset:      m.Offset,
			Key:         m.Key,
			Value:       m.Value,
			TimestampMs: m.Time.UnixMilli(),
		}
		for _, h := range m.Headers {
			rec.Headers = append(rec.Headers, drive.Header{Key: h.Key, Value: h.Value})
		}
		got = append(got, rec)
	}
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		drive.Fail("commit: %v", err)
	}
	if err := r.Close(); err != nil {
		drive.Fail("close: %v", err)
	}
	drive.Print(got)
}

// admin runs one kafka.Client call (-op) and prints what it returned.
func admin(args []string) {
	fs := flag.NewFlagSet("admin", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	op := fs.String("op", "", "the kafka.Client call")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	partitions := fs.Int("partitions", 1, "partitions to create, or the new total")
	configs := fs.String("config", "", "k=v,... topic configs (create-topic) or to set (alter-configs)")
	offsets := fs.String("offsets", "", "partition=offset,... (commit-offsets)")
	millis := fs.Int64("millis", 0, "timestamp (offsets-after)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	addr := kafka.TCP(*brokers)
	cl := &kafka.Client{Addr: addr, Timeout: *timeout}
	ctx, cancel := drive.Context(*timeout)
	defer cancel()

	switch *op {
	case "create-topic":
		var entries []kafka.ConfigEntry
		for k, v := range drive.KeyValues(*configs) {
			entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: *topic, NumPartitions: *partitions, ReplicationFactor: 1, ConfigEntries: entries,
		}}})
		check(err)
		check(resp.Errors[*topic])
		drive.Print(map[string]any{"topic": *topic})
	case "topics":
		req := &kafka.MetadataRequest{}
		if *topic != "" {
			req.Topics = []string{*topic}
		}
		resp, err := cl.Metadata(ctx, req)
		check(err)
		out := map[string]any{}
		for _, t := range resp.Topics {
			var ps []int
			for _, p := range t.Partitions {
				ps = append(ps, p.ID)
			}
			out[t.Name] = map[string]any{"internal": t.Internal, "partitions": ps, "error": errString(t.Error)}
		}
		drive.Print(map[string]any{"brokers": len(resp.Brokers), "topics": out})
	case "delete-topic":
		resp, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{*topic}})
		check(err)
		check(resp.Errors[*topic])
		drive.Print(map[string]any{"topic": *topic})
	case "create-partitions":
		resp, err := cl.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{
			Name: *topic, Count: int32(*partitions),
		}}})
		check(err)
		check(resp.Errors[*topic])
		drive.Print(map[string]any{"topic": *topic})
	case "describe-configs":
		resp, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: *topic,
		}}})
		check(err)
		out := map[string]any{}
		for _, res := range resp.Resources {
			check(res.Error)
			for _, e := range res.ConfigEntries {
				out[e.ConfigName] = map[string]any{"value": e.ConfigValue, "source": e.ConfigSource, "read_only": e.ReadOnly}
			}
		}
		drive.Print(out)
	case "alter-configs":
		var entries []kafka.IncrementalAlterConfigsRequestConfig
		for k, v := range drive.KeyValues(*configs) {
			entries = append(entries, kafka.IncrementalAlterConfigsRequestConfig{Name: k, Value: v, ConfigOperation: kafka.ConfigOperationSet})
		}
		resp, err := cl.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: *topic, Configs: entries,
		}}})
		check(err)
		for _, res := range resp.Resources {
			check(res.Error)
		}
		drive.Print(map[string]any{"topic": *topic})
	case "list-groups":
		resp, err := cl.ListGroups(ctx, &kafka.ListGroupsRequest{})
		check(err, resp.Error)
		out := map[string]any{}
		for _, g := range resp.Groups {
			out[g.GroupID] = map[string]any{"coordinator": g.Coordinator}
		}
		drive.Print(out)
	case "describe-groups":
		resp, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{*group}})
		check(err)
		if len(resp.Groups) != 1 {
			drive.Fail("%d groups in the answer for one", len(resp.Groups))
		}
		g := resp.Groups[0]
		check(g.Error)
		var members []any
		for _, m := range g.Members {
			assigned := map[string][]int{}
			for _, t := range m.MemberAssignments.Topics {
				assigned[t.Topic] = t.Partitions
			}
			members = append(members, map[string]any{"member_id": m.MemberID, "client_id": m.ClientID, "assigned": assigned})
		}
		drive.Print(map[string]any{"state": g.GroupState, "members": members})
	case "offsets":
		meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{*topic}})
		check(err)
		var requests []kafka.OffsetRequest
		for _, t := range meta.Topics {
			check(t.Error)
			for _, p := range t.Partitions {
				requests = append(requests, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
			}
		}
		resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{*topic: requests}})
		check(err)
		out := map[string]map[string]int64{"start": {}, "end": {}}
		for _, p := range resp.Topics[*topic] {
			check(p.Error)
			out["start"][strconv.Itoa(p.Partition)] = p.FirstOffset
			out["end"][strconv.Itoa(p.Partition)] = p.LastOffset
		}
		drive.Print(out)
	case "offsets-after":
		// ListOffsets by timestamp: the first offset at or after -millis, per
		// partition (-1: none).
		meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{*topic}})
		check(err)
		var requests []kafka.OffsetRequest
		for _, t := range meta.Topics {
			check(t.Error)
			for _, p := range t.Partitions {
				requests = append(requests, kafka.TimeOffsetOf(p.ID, time.UnixMilli(*millis)))
			}
		}
		resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{*topic: requests}})
		check(err)
		out := map[string]int64{}
		for _, p := range resp.Topics[*topic] {
			check(p.Error)
			// One request per partition, so one offset; kafka-go pairs it
			// with the requested time, not the record's.
			if len(p.Offsets) != 1 {
				drive.Fail("partition %d: %d offsets for one timestamp", p.Partition, len(p.Offsets))
			}
			for offset := range p.Offsets {
				out[strconv.Itoa(p.Partition)] = offset
			}
		}
		drive.Print(out)
	case "commit-offsets":
		// Outside any generation (-1, no member), as an admin tool commits.
		var parts []kafka.OffsetCommit
		for p, o := range drive.KeyValues(*offsets) {
			parts = append(parts, kafka.OffsetCommit{Partition: atoi(p), Offset: int64(atoi(o))})
		}
		resp, err := cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
			Addr: addr, GroupID: *group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{*topic: parts},
		})
		check(err)
		for _, ps := range resp.Topics {
			for _, p := range ps {
				check(p.Error)
			}
		}
		drive.Print(map[string]any{"group": *group})
	case "fetch-offsets":
		resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{Addr: addr, GroupID: *group})
		check(err, resp.Error)
		out := map[string]map[string]int64{}
		for t, ps := range resp.Topics {
			out[t] = map[string]int64{}
			for _, p := range ps {
				check(p.Error)
				out[t][strconv.Itoa(p.Partition)] = p.CommittedOffset
			}
		}
		drive.Print(out)
	case "delete-group":
		resp, err := cl.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{Addr: addr, GroupIDs: []string{*group}})
		check(err, resp.Errors[*group])
		drive.Print(map[string]any{"group": *group})
	default:
		drive.Fail("unknown op %q", *op)
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		drive.Fail("%q is not a number", s)
	}
	return n
}

// check fails the run with the first error among errs.
func check(errs ...error) {
	if err := errors.Join(errs...); err != nil {
		drive.Fail("%v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
