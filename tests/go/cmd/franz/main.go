// Command franz drives franz-go (kgo and kadm) against a broker for the
// integration tests: one subcommand per client role, records and results as
// JSON (see package drive). It only does what a flag asks and reports what
// the client answered; every check is the test's.
package main

import (
	"errors"
	"flag"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shoal/tests/go/internal/drive"
)

func main() {
	if len(os.Args) < 2 {
		drive.Fail("usage: franz produce|consume|admin -brokers host:port ...")
	}
	if os.Getenv("FRANZ_DEBUG") != "" {
		// A test that fails shows the client's own account of what it did.
		debug = []kgo.Opt{kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil))}
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

// debug holds the client options that FRANZ_DEBUG turns on.
var debug []kgo.Opt

var codecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

// produce sends the records on stdin to their partitions with acks=all and
// prints the offset each one got, in input order.
func produce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	topic := fs.String("topic", "", "topic")
	codec := fs.String("codec", "none", "none|gzip|snappy|lz4|zstd")
	idempotent := fs.Bool("idempotent", false, "keep franz-go's default idempotent produce")
	lingerMs := fs.Int("linger-ms", 5, "linger")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	c, ok := codecs[*codec]
	if !ok {
		drive.Fail("unknown codec %q", *codec)
	}
	records := drive.ReadRecords()
	opts := []kgo.Opt{
		kgo.SeedBrokers(*brokers),
		kgo.DefaultProduceTopic(*topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(c),
		kgo.ProducerLinger(time.Duration(*lingerMs) * time.Millisecond),
		// No kgo.RecordDeliveryTimeout: franz-go measures it from each
		// record's Timestamp, and the tests' explicit timestamps are years
		// old. The context bounds the run instead.
	}
	if !*idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	cl, err := kgo.NewClient(append(opts, debug...)...)
	if err != nil {
		drive.Fail("client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := drive.Context(*timeout)
	defer cancel()

	acked := make([]drive.Ack, len(records))
	errs := make([]error, len(records))
	for i, rec := range records {
		r := &kgo.Record{
			Partition: rec.Partition,
			Key:       rec.Key,
			Value:     rec.Value,
			Timestamp: time.UnixMilli(rec.TimestampMs),
		}
		for _, h := range rec.Headers {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			errs[i] = err
			acked[i] = drive.Ack{Partition: r.Partition, Offset: r.Offset}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		drive.Fail("flush: %v", err)
	}
	if err := errors.Join(errs...); err != nil {
		drive.Fail("produce: %v", err)
	}
	drive.Print(acked)
}

// consume joins a group, reads count records, commits just those and
// leaves, printing the records in the order received.
func consume(args []string) {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	protocol := fs.String("protocol", "classic", "classic|consumer (KIP-848)")
	count := fs.Int("count", 0, "records to read")
	timeout := fs.Duration("timeout", 40*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	opts := []kgo.Opt{
		kgo.SeedBrokers(*brokers),
		kgo.ConsumeTopics(*topic),
		kgo.ConsumerGroup(*group),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	switch *protocol {
	case "classic":
	case "consumer":
		// franz-go takes KIP-848 only with a balancer the broker can run
		// (range or sticky) and only if the broker serves
		// ConsumerGroupHeartbeat v1; otherwise it silently stays classic,
		// which the test catches through DescribeConsumerGroups.
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()))
	default:
		drive.Fail("unknown protocol %q", *protocol)
	}
	cl, err := kgo.NewClient(append(opts, debug...)...)
	if err != nil {
		drive.Fail("client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := drive.Context(*timeout)
	defer cancel()

	var got []drive.Record
	var taken []*kgo.Record
	for len(got) < *count {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			drive.Fail("read %d of %d records before the timeout", len(got), *count)
		}
		if err := fetches.Err(); err != nil {
			drive.Fail("poll: %v", err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			// A poll can return more than asked for: the rest stays
			// uncommitted, for the group's next member to read.
			if len(got) == *count {
				return
			}
			taken = append(taken, r)
			producerID := r.ProducerID
			rec := drive.Record{
				Partition:   r.Partition,
				Offset:      r.Offset,
				Key:         r.Key,
				Value:       r.Value,
				TimestampMs: r.Timestamp.UnixMilli(),
				ProducerID:  &producerID,
			}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, drive.Header{Key: h.Key, Value: h.Value})
			}
			got = append(got, rec)
		})
	}
	if err := cl.CommitRecords(ctx, taken...); err != nil {
		drive.Fail("commit: %v", err)
	}
	if err := cl.LeaveGroupContext(ctx); err != nil {
		drive.Fail("leave group: %v", err)
	}
	drive.Print(got)
}

// admin runs one kadm call (-op) and prints what it returned.
func admin(args []string) {
	fs := flag.NewFlagSet("admin", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	op := fs.String("op", "", "the kadm call")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "group id")
	partitions := fs.Int("partitions", 1, "partitions to create or add")
	configs := fs.String("config", "", "k=v,... topic configs (create-topic) or to set (alter-configs)")
	offsets := fs.String("offsets", "", "partition=offset,... (commit-offsets, delete-records)")
	millis := fs.Int64("millis", 0, "timestamp (offsets-after)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(*brokers)}, debug...)...)
	if err != nil {
		drive.Fail("client: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := drive.Context(*timeout)
	defer cancel()

	switch *op {
	case "create-topic":
		cfg := map[string]*string{}
		for k, v := range drive.KeyValues(*configs) {
			cfg[k] = &v
		}
		resp, err := adm.CreateTopic(ctx, int32(*partitions), 1, cfg, *topic)
		check(err, resp.Err)
		drive.Print(map[string]any{"topic": resp.Topic, "id": resp.ID.String(), "partitions": resp.NumPartitions})
	case "topics":
		// Every topic (the internal ones too) or the one named.
		var details kadm.TopicDetails
		if *topic == "" {
			details, err = adm.ListTopicsWithInternal(ctx)
		} else {
			details, err = adm.ListTopics(ctx, *topic)
		}
		check(err)
		out := map[string]any{}
		for name, d := range details {
			out[name] = map[string]any{
				"id":         d.ID.String(),
				"internal":   d.IsInternal,
				"partitions": d.Partitions.Numbers(),
				"error":      errString(d.Err),
			}
		}
		drive.Print(out)
	case "delete-topic":
		resp, err := adm.DeleteTopic(ctx, *topic)
		check(err, resp.Err)
		drive.Print(map[string]any{"topic": resp.Topic})
	case "create-partitions":
		resps, err := adm.CreatePartitions(ctx, *partitions, *topic)
		check(err)
		resp, err := resps.On(*topic, nil)
		check(err, resp.Err)
		drive.Print(map[string]any{"topic": resp.Topic})
	case "describe-configs":
		resps, err := adm.DescribeTopicConfigs(ctx, *topic)
		check(err)
		resp, err := resps.On(*topic, nil)
		check(err, resp.Err)
		out := map[string]any{}
		for _, c := range resp.Configs {
			out[c.Key] = map[string]any{"value": c.Value, "source": c.Source.String(), "sensitive": c.Sensitive}
		}
		drive.Print(out)
	case "alter-configs":
		var alter []kadm.AlterConfig
		for k, v := range drive.KeyValues(*configs) {
			alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
		}
		resps, err := adm.AlterTopicConfigs(ctx, alter, *topic)
		check(err)
		resp, err := resps.On(*topic, nil)
		check(err, resp.Err)
		drive.Print(map[string]any{"topic": resp.Name})
	case "list-groups":
		groups, err := adm.ListGroups(ctx)
		check(err)
		out := map[string]any{}
		for name, g := range groups {
			out[name] = map[string]any{"state": g.State, "protocol_type": g.ProtocolType, "type": g.GroupType}
		}
		drive.Print(out)
	case "describe-groups":
		groups, err := adm.DescribeGroups(ctx, *group)
		check(err)
		g, ok := groups[*group]
		if !ok {
			drive.Fail("group %q missing from the answer", *group)
		}
		check(g.Err)
		var members []any
		for _, m := range g.Members {
			members = append(members, map[string]any{"member_id": m.MemberID, "client_id": m.ClientID, "assigned": assignedOf(m)})
		}
		drive.Print(map[string]any{"state": g.State, "protocol_type": g.ProtocolType, "protocol": g.Protocol, "members": members})
	case "describe-consumer-groups":
		groups, err := adm.DescribeConsumerGroups(ctx, *group)
		check(err)
		g, ok := groups[*group]
		if !ok {
			drive.Fail("group %q missing from the answer", *group)
		}
		check(g.Err)
		var members []any
		for _, m := range g.Members {
			assigned := map[string][]int32{}
			for topic, ps := range m.Assignment {
				for p := range ps {
					assigned[topic] = append(assigned[topic], p)
				}
				sortPartitions(assigned[topic])
			}
			members = append(members, map[string]any{"member_id": m.MemberID, "client_id": m.ClientID, "assigned": assigned})
		}
		drive.Print(map[string]any{"state": g.State, "epoch": g.Epoch, "assignor": g.AssignorName, "members": members})
	case "offsets":
		start, err := adm.ListStartOffsets(ctx, *topic)
		check(err, start.Error())
		end, err := adm.ListEndOffsets(ctx, *topic)
		check(err, end.Error())
		out := map[string]map[string]int64{"start": {}, "end": {}}
		start.Each(func(o kadm.ListedOffset) { out["start"][strconv.Itoa(int(o.Partition))] = o.Offset })
		end.Each(func(o kadm.ListedOffset) { out["end"][strconv.Itoa(int(o.Partition))] = o.Offset })
		drive.Print(out)
	case "offsets-after":
		// ListOffsets by timestamp: the first offset at or after -millis.
		listed, err := adm.ListOffsetsAfterMilli(ctx, *millis, *topic)
		check(err, listed.Error())
		out := map[string]int64{}
		listed.Each(func(o kadm.ListedOffset) { out[strconv.Itoa(int(o.Partition))] = o.Offset })
		drive.Print(out)
	case "delete-records":
		resps, err := adm.DeleteRecords(ctx, topicOffsets(*topic, *offsets))
		check(err, resps.Error())
		out := map[string]int64{}
		for p, r := range resps[*topic] {
			out[strconv.Itoa(int(p))] = r.LowWatermark
		}
		drive.Print(out)
	case "commit-offsets":
		resps, err := adm.CommitOffsets(ctx, *group, topicOffsets(*topic, *offsets))
		check(err, resps.Error())
		drive.Print(map[string]any{"group": *group})
	case "fetch-offsets":
		resps, err := adm.FetchOffsets(ctx, *group)
		check(err, resps.Error())
		out := map[string]map[string]int64{}
		resps.Each(func(o kadm.OffsetResponse) {
			if out[o.Topic] == nil {
				out[o.Topic] = map[string]int64{}
			}
			out[o.Topic][strconv.Itoa(int(o.Partition))] = o.At
		})
		drive.Print(out)
	case "delete-group":
		resp, err := adm.DeleteGroup(ctx, *group)
		check(err, resp.Err)
		drive.Print(map[string]any{"group": resp.Group})
	default:
		drive.Fail("unknown op %q", *op)
	}
}

// assignedOf decodes a classic consumer member's assignment (topic →
// partitions, sorted).
func assignedOf(m kadm.DescribedGroupMember) map[string][]int32 {
	out := map[string][]int32{}
	if a, ok := m.Assigned.AsConsumer(); ok {
		for _, t := range a.Topics {
			out[t.Topic] = append([]int32(nil), t.Partitions...)
			sortPartitions(out[t.Topic])
		}
	}
	return out
}

func sortPartitions(ps []int32) {
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
}

// topicOffsets parses "p=o,..." for one topic.
func topicOffsets(topic, spec string) kadm.Offsets {
	os := kadm.Offsets{}
	for p, o := range drive.KeyValues(spec) {
		partition, err1 := strconv.ParseInt(p, 10, 32)
		offset, err2 := strconv.ParseInt(o, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			drive.Fail("offsets %q: %v", spec, err)
		}
		os.Add(kadm.Offset{Topic: topic, Partition: int32(partition), At: offset, LeaderEpoch: -1})
	}
	return os
}

// check fails the run with the first error among errs.
func check(errs ...error) {
	for _, err := range errs {
		if err != nil {
			drive.Fail("%v", err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
