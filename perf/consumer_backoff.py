#!/usr/bin/env python3
"""Why a default librdkafka consumer reads slowly from a fast broker, counted
(issue 16): confluent-kafka consuming W3's preload from the beginning at
librdkafka's defaults, against shoal and the peers, with librdkafka's own
`debug=fetch` log counted.

    perf/consumer_backoff.py [--records 2000000] [--runs 1] [--record] [--out FILE]

Per broker and run: a fresh broker, its topic made and warmed up as by
`perf/run --quick`, W3's preload (`shoal bench produce`, 100 B records,
8 partitions), then `perf/kafka_client.py consume` at
librdkafka's defaults with `--librdkafka-debug fetch`, and from its log:
the Fetch requests sent, the records and bytes per partition per response
("Enqueue N message(s)" / "MessageSet size"), the queue length the client
saw before each enqueue, and the partition pauses ("Fetch backoff for
1000ms: Local: Queue full", one line per partition paused). librdkafka
pauses a partition for `fetch.queue.backoff.ms` (1000 ms) whenever, at one
of its fetch decisions, the consumer's queue holds `queued.min.messages`
(100 000) records or more; the queue is the consumer's one queue, so the
count is over all partitions (rdkafka_fetcher.c, rd_kafka_toppar_fetch_decide).

--record writes the section into perf/RESULTS.md between its markers.
Standard library only; the brokers and bounds are perf/run's.
"""

import argparse
import dataclasses
import os
import re
import statistics
import sys
import uuid

from procs import PERF_DIR, VENV, CommandsLog, _cleanup_everything, last_json_line, run_bounded
from brokers import Kafka, Shoal, TANSU_BIN, Tansu, kafka_jars_present
from runs import PARTITIONS, QUICK, bench_timeout_s, prepare_topic
from clients import preload
from results import loadavg, machine, replace_section

SECTION_BEGIN = "<!-- section:consumer-backoff -->"
SECTION_END = "<!-- /section:consumer-backoff -->"
DEFAULT_RECORDS = 2_000_000
# librdkafka's debug lines this counts (2.x; see the docstring).
FETCH_SENT = re.compile(r"Fetch (\d+)/\d+/\d+ toppar\(s\)")
ENQUEUED = re.compile(r"Enqueue (\d+) (?:\S+ )?message\(s\) \((\d+) bytes.*?fetch queue \(qlen (\d+)")
QUEUE_FULL_BACKOFF = re.compile(r"Fetch backoff for (\d+)ms: Local: Queue full")


def count_log(text):
    """What librdkafka's fetch log says of one consume."""
    sent = [int(m.group(1)) for m in FETCH_SENT.finditer(text)]
    enqueued = [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for m in ENQUEUED.finditer(text)]
    backoffs = [int(m.group(1)) for m in QUEUE_FULL_BACKOFF.finditer(text)]
    per_partition = [records for records, _, _ in enqueued if records]
    return {
        "fetches": len(sent),
        "partition_responses": len(per_partition),
        "records_per_partition_response": statistics.median(per_partition) if per_partition else None,
        "bytes_per_partition_response": statistics.median([b for r, b, _ in enqueued if r]) if per_partition else None,
        "queue_max": max((qlen for _, _, qlen in enqueued), default=None),
        "queue_full_backoffs": len(backoffs),
        "backoff_ms": backoffs[0] if backoffs else None,
    }


def one_run(make_broker, shoal_bin, records, commands):
    python = os.path.join(VENV, "bin", "python")
    broker = make_broker()
    try:
        broker.start(commands)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        # perf/run --quick's topic creation and warm-up: a Kafka just started
        # answers NOT_LEADER_OR_FOLLOWER for a new topic's first second.
        size = dataclasses.replace(QUICK, consume_records=records)
        prepare_topic(broker, shoal_bin, topic, size, commands)
        error = preload(broker, shoal_bin, topic, size, commands)
        if error:
            return error
        command = [python, os.path.join(PERF_DIR, "kafka_client.py"), "consume", "--bootstrap", broker.bootstrap,
                   "--topic", topic, "--records", str(records), "--librdkafka-debug", "fetch"]
        commands.add(command, {**broker.placeholders(), topic: "$TOPIC"})
        code, out, err = run_bounded(command, bench_timeout_s(size))
        if code != 0:
            return {"error": f"consume exited with {code}: {err.strip()[-300:]}"}
        return {**last_json_line(out), **count_log(err)}
    except Exception as error:  # noqa: BLE001 - one failed run must not end the comparison
        return {"error": str(error).strip()[-300:]}
    finally:
        broker.close()


def section(results, records, runs, commands, info):
    lines = [SECTION_BEGIN, "## The default librdkafka consumer's queue backoff (`perf/consumer_backoff.py`)", "",
             f"Written by `perf/consumer_backoff.py --records {records} --runs {runs}` ({info['date']}, commit "
             f"`{info['commit']}`, load average {info['loadavg']} at the start, {loadavg()} at the end: the "
             "rates move with the machine's load, the counts hardly). Each run: a fresh broker, W3's "
             f"preload of {records:,} records of 100 B to {PARTITIONS} partitions, then confluent-kafka "
             "(librdkafka) consuming them from the beginning at librdkafka's defaults with `debug=fetch`; "
             "the counts are from that log. The median run per broker (by records/s).", "",
             "| broker | records/s | Fetch requests | records per partition per response | bytes per partition "
             "per response | largest queue seen | partition pauses for a full queue |",
             "|---|---|---|---|---|---|---|"]
    for name, reports in results.items():
        ok = sorted((r for r in reports if "error" not in r), key=lambda r: r["records_per_s"])
        if not ok:
            lines.append(f"| {name} | failed: {' '.join(reports[0]['error'].split())[:200]} | | | | | |")
            continue
        r = ok[len(ok) // 2]
        cells = [f"{r['records_per_s']:,.0f}", str(r["fetches"]),
                 "—" if r["records_per_partition_response"] is None else f"{r['records_per_partition_response']:,.0f}",
                 "—" if r["bytes_per_partition_response"] is None else f"{r['bytes_per_partition_response']:,.0f}",
                 "—" if r["queue_max"] is None else f"{r['queue_max']:,}",
                 f"{r['queue_full_backoffs']}" + (f" × {r['backoff_ms']} ms" if r["backoff_ms"] else "")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "```"] + commands.lines + ["```", "", SECTION_END]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--record", action="store_true", help="write the section into perf/RESULTS.md")
    parser.add_argument("--out", help="write the section into this file instead")
    parser.add_argument("--shoal-bin", default=os.environ.get("SHOAL_BIN") or
                        os.path.join(os.path.dirname(PERF_DIR), "target", "release", "shoal"))
    args = parser.parse_args()
    shoal_bin = os.path.abspath(args.shoal_bin)
    makers = {"shoal": lambda: Shoal(shoal_bin)}
    if kafka_jars_present():
        makers["kafka"] = Kafka
    if os.access(TANSU_BIN, os.X_OK):
        makers["tansu"] = Tansu
    commands, info, results = CommandsLog(), machine(), {}
    try:
        for run in range(args.runs):
            for name, make in makers.items():
                report = one_run(make, shoal_bin, args.records, commands)
                results.setdefault(name, []).append(report)
                print(f"consumer_backoff: run {run + 1} {name}: {report}", file=sys.stderr)
    finally:
        _cleanup_everything()
    text = section(results, args.records, args.runs, commands, info)
    if args.record or args.out:
        replace_section(args.out or os.path.join(PERF_DIR, "RESULTS.md"), SECTION_BEGIN, SECTION_END, text)
    print(text)


if __name__ == "__main__":
    main()
