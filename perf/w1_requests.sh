#!/bin/bash
# The Produce requests and records a W1 run (perf/run's: 8 partitions, 100 B,
# acks=all, 1 connection, 5 s) puts through a fresh broker, from its /metrics,
# and the broker's CPU time: a W1 request's CPU cost (perf/RESULTS.md,
# "What the metrics cost a request").
#
#   perf/w1_requests.sh [BIN]     BIN: a shoal binary, target/release/shoal by default
set -e
BIN=${1:-target/release/shoal}
TMP=$(mktemp -d /tmp/w1req.XXXX)
PORT=19092; APORT=19644
$BIN serve --listen 127.0.0.1:$PORT --advertise 127.0.0.1:$PORT --data-dir $TMP/data --override admin.listeners=http://127.0.0.1:$APORT > $TMP/log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf $TMP' EXIT
for i in $(seq 50); do curl -sf http://127.0.0.1:$APORT/v1/status/ready >/dev/null && break; sleep 0.2; done
cpu0=$(awk '{print $14+$15}' /proc/$PID/stat)
$BIN bench produce --bootstrap 127.0.0.1:$PORT --topic w1 --partitions 8 --record-size 100 --acks -1 --connections 1 --duration 5 --json | tail -1
cpu1=$(awk '{print $14+$15}' /proc/$PID/stat)
echo "broker cpu ticks: $((cpu1-cpu0)) (of $(getconf CLK_TCK)/s)"
curl -s http://127.0.0.1:$APORT/metrics | grep -E '^shoal_(requests_total|records_in_total|produced_records|bytes_in)' | grep -E 'Produce|records|bytes_in' | head
