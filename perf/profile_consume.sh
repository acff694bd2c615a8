#!/usr/bin/env bash
# Consume-side profiles (W3, W7, W8; issue 16) of the release binary (SHOAL_BIN overrides):
# `perf record -a -g`
# over one `shoal bench consume` (one connection, from the beginning), then the
# machine's CPU split by command (swapper = idle) and the broker process's top symbols
# as shares of all samples. Needs perf and root (W8 drops the page cache).
set -u
BIN=${SHOAL_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/shoal}
D=$(mktemp -d /tmp/profc.XXXX)
PORT=19093
B=127.0.0.1:$PORT
$BIN serve --listen $B --advertise $B --data-dir $D/data > $D/broker.log 2>&1 &
BP=$!
trap 'kill $BP 2>/dev/null; wait $BP 2>/dev/null; rm -rf $D' EXIT
for i in $(seq 50); do grep -q "shoal ready" $D/broker.log && break; sleep 0.2; done
$BIN bench produce --bootstrap $B --topic w3 --partitions 8 --record-size 100 --acks -1 --connections 4 --records 10000000 --json | tail -1
$BIN bench produce --bootstrap $B --topic w7 --partitions 8 --record-size 1024 --acks -1 --connections 4 --records 2000000 --json | tail -1
report() {
  echo "### $1"
  perf report -i $D/$1.data --no-children --stdio --sort comm -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -8
  echo "top symbols of the broker (share of all samples):"
  perf report -i $D/$1.data --no-children --stdio --pid $BP --sort sym -g none 2>/dev/null | grep -v "^#" | grep -v "^$" | head -16
}
prof() { # name, consume args
  name=$1; shift
  perf record -a -g -F 999 -o $D/$name.data -- $BIN bench consume --bootstrap $B "$@" --connections 1 --json 2>/dev/null | tail -1
  report $name
}
prof w3 --topic w3 --records 10000000
prof w7 --topic w7 --records 2000000
sync; echo 3 > /proc/sys/vm/drop_caches
prof w8 --topic w7 --records 2000000
