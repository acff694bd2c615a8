// Package drive is what the Go client programs share with the Python tests
// that run them: the JSON shape of records and results, and how a program
// reports its outcome. It depends only on the standard library and never
// talks to a broker itself.
package drive

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// Header is one record header. Values travel as base64 (encoding/json's
// []byte form) so that any bytes survive the round trip.
type Header struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

// Record is what a test asks a program to produce and what a program reports
// it consumed. A nil Key or Value is JSON null (a null key, a tombstone).
type Record struct {
	Partition   int32    `json:"partition"`
	Offset      int64    `json:"offset"`
	Key         []byte   `json:"key"`
	Value       []byte   `json:"value"`
	Headers     []Header `json:"headers"`
	TimestampMs int64    `json:"timestamp_ms"`
	// ProducerID is the batch's producer id as consumed (-1: not idempotent),
	// for clients that expose it.
	ProducerID *int64 `json:"producer_id,omitempty"`
}

// Ack is where a produced record landed, in the order the records were given.
type Ack struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

// ReadRecords decodes the records to produce from stdin.
func ReadRecords() []Record {
	var records []Record
	if err := json.NewDecoder(os.Stdin).Decode(&records); err != nil {
		Fail("reading records from stdin: %v", err)
	}
	return records
}

// Print writes v as one JSON document on stdout: the program's result.
func Print(v any) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		Fail("writing the result: %v", err)
	}
}

// Fail reports an error on stderr and exits with 1, so a test sees the
// client's own error message.
func Fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", args...)
	os.Exit(1)
}

// Context bounds a whole program run: a test never waits on a client that
// hangs, the program gives up and says so.
func Context(timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), timeout)
}

// KeyValues parses "k=v,k2=v2" (the -config and -set flags).
func KeyValues(s string) map[string]string {
	out := map[string]string{}
	if s == "" {
		return out
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			Fail("%q is not key=value", pair)
		}
		out[k] = v
	}
	return out
}
