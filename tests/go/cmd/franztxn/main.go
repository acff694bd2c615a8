// Command franztxn drives franz-go's transactions against a broker for the
// integration tests: a transactional producer committing and aborting, a
// read_committed or read_uncommitted consumer, a producer fenced by a newer
// one with its transactional id, and a consume-transform-produce loop in a
// GroupTransactSession. Records and results are JSON (see package drive);
// every check is the test's.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"shoal/tests/go/internal/drive"
)

// extraPoll is how long read polls after it has the records it was asked
// for, so that records which should not be there show up.
const extraPoll = 500 * time.Millisecond

func main() {
	if len(os.Args) < 2 {
		drive.Fail("usage: franztxn transact|read|fence|etl -brokers host:port ...")
	}
	if os.Getenv("FRANZ_DEBUG") != "" {
		debug = []kgo.Opt{kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelDebug, nil))}
	}
	switch os.Args[1] {
	case "transact":
		transact(os.Args[2:])
	case "read":
		read(os.Args[2:])
	case "fence":
		fence(os.Args[2:])
	case "etl":
		etl(os.Args[2:])
	default:
		drive.Fail("unknown subcommand %q", os.Args[1])
	}
}

// debug holds the client options that FRANZ_DEBUG turns on.
var debug []kgo.Opt

// Transaction is one transaction to produce: its records, then how it ends
// ("commit" or "abort"; "open", last only, leaves it open as the program
// exits, for the broker to abort when it times out).
type Transaction struct {
	End     string         `json:"end"`
	Records []drive.Record `json:"records"`
}

func producer(brokers, topic, txnID string) *kgo.Client {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID(txnID),
		kgo.ProducerLinger(5 * time.Millisecond),
	}, debug...)...)
	if err != nil {
		drive.Fail("client: %v", err)
	}
	return cl
}

// produceAll produces records in the client's open transaction and waits
// for every acknowledgement.
func produceAll(ctx context.Context, cl *kgo.Client, records []drive.Record) {
	var rs []*kgo.Record
	for _, rec := range records {
		rs = append(rs, &kgo.Record{Partition: rec.Partition, Key: rec.Key, Value: rec.Value})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		drive.Fail("produce: %v", err)
	}
}

// transact produces the transactions on stdin one after the other with one
// transactional producer.
func transact(args []string) {
	fs := flag.NewFlagSet("transact", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	topic := fs.String("topic", "", "topic")
	txnID := fs.String("transactional-id", "", "transactional id")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	var txns []Transaction
	if err := json.NewDecoder(os.Stdin).Decode(&txns); err != nil {
		drive.Fail("reading transactions from stdin: %v", err)
	}
	cl := producer(*brokers, *topic, *txnID)
	defer cl.Close()
	ctx, cancel := drive.Context(*timeout)
	defer cancel()
	for _, txn := range txns {
		if err := cl.BeginTransaction(); err != nil {
			drive.Fail("begin: %v", err)
		}
		produceAll(ctx, cl, txn.Records)
		if txn.End == "open" {
			break
		}
		if err := cl.EndTransaction(ctx, txn.End == "commit"); err != nil {
			drive.Fail("end (%s): %v", txn.End, err)
		}
	}
	drive.Print(map[string]int{"transactions": len(txns)})
}

// read consumes count records from the start of every partition of the
// topic at an isolation level, without a group, and prints them.
func read(args []string) {
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	topic := fs.String("topic", "", "topic")
	isolation := fs.String("isolation", "", "committed|uncommitted")
	count := fs.Int("count", 0, "records to read")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	levels := map[string]kgo.IsolationLevel{"committed": kgo.ReadCommitted(), "uncommitted": kgo.ReadUncommitted()}
	level, ok := levels[*isolation]
	if !ok {
		drive.Fail("unknown isolation %q", *isolation)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(*brokers),
		kgo.ConsumeTopics(*topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(level),
	}, debug...)...)
	if err != nil {
		drive.Fail("client: %v", err)
	}
	defer cl.Close()
	ctx, cancel := drive.Context(*timeout)
	defer cancel()

	got := []drive.Record{}
	take := func(fetches kgo.Fetches) {
		if err := fetches.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			drive.Fail("poll: %v", err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			got = append(got, drive.Record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value})
		})
	}
	for len(got) < *count {
		take(cl.PollFetches(ctx))
		if ctx.Err() != nil {
			drive.Fail("read %d of %d records before the timeout", len(got), *count)
		}
	}
	extra, cancelExtra := context.WithTimeout(ctx, extraPoll)
	defer cancelExtra()
	take(cl.PollFetches(extra))
	drive.Print(got)
}

// fence: an older producer opens a transaction with the "older" records; a
// newer one with the same transactional id commits the "newer" ones; then
// the older one tries to commit. Prints the older one's error.
func fence(args []string) {
	fs := flag.NewFlagSet("fence", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	topic := fs.String("topic", "", "topic")
	txnID := fs.String("transactional-id", "", "transactional id")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	var in struct {
		Older []drive.Record `json:"older"`
		Newer []drive.Record `json:"newer"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		drive.Fail("reading records from stdin: %v", err)
	}
	ctx, cancel := drive.Context(*timeout)
	defer cancel()
	older := producer(*brokers, *topic, *txnID)
	defer older.Close()
	if err := older.BeginTransaction(); err != nil {
		drive.Fail("older begin: %v", err)
	}
	produceAll(ctx, older, in.Older)
	// The newer producer's first produce gets it the transactional id's
	// producer id with a bumped epoch (InitProducerId), which aborts the
	// older one's transaction.
	newer := producer(*brokers, *topic, *txnID)
	defer newer.Close()
	if err := newer.BeginTransaction(); err != nil {
		drive.Fail("newer begin: %v", err)
	}
	produceAll(ctx, newer, in.Newer)
	if err := newer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		drive.Fail("newer commit: %v", err)
	}
	err := older.EndTransaction(ctx, kgo.TryCommit)
	drive.Print(map[string]string{"older_commit_error": errString(err)})
}

// etl reads the input in a group in a GroupTransactSession, read_committed,
// at most -batch records a transaction, and writes "out:" + value of each to
// the same partition of the output, the input offsets committed in the
// transaction, until the group's offsets reach the input's end. With
// -stall-at K the K-th transaction's output is acknowledged and then the
// program leaves, the transaction neither committed nor aborted (as an
// application that died there). Prints the transactions begun and, per
// partition, the first input offset it read.
func etl(args []string) {
	fs := flag.NewFlagSet("etl", flag.ExitOnError)
	brokers := fs.String("brokers", "", "bootstrap host:port")
	input := fs.String("input", "", "input topic")
	output := fs.String("output", "", "output topic")
	group := fs.String("group", "", "group id")
	txnID := fs.String("transactional-id", "", "transactional id")
	batch := fs.Int("batch", 25, "records a transaction reads at most")
	stallAt := fs.Int("stall-at", 0, "leave with the K-th transaction open (0: never)")
	timeout := fs.Duration("timeout", 40*time.Second, "bound on the whole run")
	_ = fs.Parse(args)
	ctx, cancel := drive.Context(*timeout)
	defer cancel()
	ends := inputEnds(ctx, *brokers, *input)

	sess, err := kgo.NewGroupTransactSession(append([]kgo.Opt{
		kgo.SeedBrokers(*brokers),
		kgo.TransactionalID(*txnID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*input),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
	}, debug...)...)
	if err != nil {
		drive.Fail("client: %v", err)
	}
	defer sess.Close()

	transactions := 0
	first := map[string]int64{}
	for !reached(sess.Client().CommittedOffsets()[*input], ends) {
		fetches := sess.PollRecords(ctx, *batch)
		if ctx.Err() != nil {
			drive.Fail("after %d transactions the group's offsets are %v of %v", transactions,
				sess.Client().CommittedOffsets()[*input], ends)
		}
		if err := fetches.Err(); err != nil {
			drive.Fail("poll: %v", err)
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			drive.Fail("begin: %v", err)
		}
		transactions++
		var out []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			p := strconv.Itoa(int(r.Partition))
			if _, ok := first[p]; !ok {
				first[p] = r.Offset
			}
			value := append([]byte("out:"), r.Value...)
			out = append(out, &kgo.Record{Topic: *output, Partition: r.Partition, Key: r.Key, Value: value})
		})
		if err := sess.ProduceSync(ctx, out...).FirstErr(); err != nil {
			drive.Fail("produce: %v", err)
		}
		if transactions == *stallAt {
			break
		}
		// An End that aborts instead (the group rebalanced under the
		// transaction) rewinds the session to the committed offsets: the
		// records are read again.
		if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
			drive.Fail("end: %v", err)
		}
	}
	drive.Print(map[string]any{"transactions": transactions, "first": first})
}

// inputEnds is the high watermark of each input partition.
func inputEnds(ctx context.Context, brokers, topic string) map[int32]int64 {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers)}, debug...)...)
	if err != nil {
		drive.Fail("client: %v", err)
	}
	defer cl.Close()
	listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		drive.Fail("end offsets: %v", err)
	}
	ends := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends
}

func reached(committed map[int32]kgo.EpochOffset, ends map[int32]int64) bool {
	for p, end := range ends {
		if c, ok := committed[p]; !ok || c.Offset < end {
			return false
		}
	}
	return true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
