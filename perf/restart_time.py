#!/usr/bin/env python3
"""Restart time with several GiB of data (issue 4): how long `shoal serve`
takes to print its ready line after a clean shutdown (SIGTERM: recovery
trusts every segment and scans nothing) and after kill -9 (recovery scans
only the segments past the recovery point, i.e. the active ones).

    perf/restart_time.py [--gib 3] [--partitions 2] [--runs 3] [--record]

Writes --gib GiB of 1 KiB records with `shoal bench produce` (acks=all) into
a data directory under target/ (on the disk, not a tmpfs), then restarts the
broker --runs times each way and reports the median time to ready and the
bytes recovery scanned (the broker logs them per partition). The page cache
is left warm (dropping it would disturb whatever else runs on the machine);
--cold drops it (as root) before every start. --record writes the section
into perf/RESULTS.md between its markers, replacing the previous one. The
data directory is deleted at the end, whatever happens.

Standard library only."""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results import replace_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD_BYTES = 1024
READY_TIMEOUT_S = 600
STOP_TIMEOUT_S = 120
POLL_S = 0.002
SECTION_BEGIN = "<!-- section:restart-time -->"
SECTION_END = "<!-- /section:restart-time -->"
SCANNED = re.compile(r"recovery scanned (\d+) bytes past the recovery point")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Broker:
    def __init__(self, binary, data_dir, port, log_dir):
        self.binary = binary
        self.data_dir = data_dir
        self.bootstrap = f"127.0.0.1:{port}"
        self.log_dir = log_dir
        self.proc = None
        self.starts = 0

    def command(self):
        return [self.binary, "serve", "--listen", self.bootstrap, "--advertise", self.bootstrap,
                "--data-dir", self.data_dir]

    def start(self):
        """Starts the broker; returns (seconds to the ready line, log text)."""
        self.starts += 1
        log_path = os.path.join(self.log_dir, f"broker-{self.starts}.log")
        ready = f"shoal ready on {self.bootstrap}"
        with open(log_path, "wb") as log:
            began = time.monotonic()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        with open(log_path, "r", errors="replace") as log:
            text = ""
            while ready not in text:
                text += log.read()
                if self.proc.poll() is not None:
                    sys.exit(f"broker exited with {self.proc.returncode}:\n{text[-3000:]}")
                if time.monotonic() - began > READY_TIMEOUT_S:
                    sys.exit(f"broker not ready within {READY_TIMEOUT_S}s")
                time.sleep(POLL_S)
            elapsed = time.monotonic() - began
            time.sleep(0.2)
            text += log.read()
        return elapsed, text

    def stop(self):
        """SIGTERM; returns the seconds the clean shutdown took."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        if code != 0:
            sys.exit(f"broker exited with {code} after SIGTERM")
        return time.monotonic() - began

    def kill9(self):
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def du_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def measure(args, binary, work_dir):
    data_dir = os.path.join(work_dir, "data")
    broker = Broker(binary, data_dir, free_port(), work_dir)
    try:
        broker.start()
        records = args.gib * (1 << 30) // RECORD_BYTES
        produce = [binary, "bench", "produce", "--bootstrap", broker.bootstrap, "--topic", "restart",
                   "--partitions", str(args.partitions), "--record-size", str(RECORD_BYTES), "--acks", "-1",
                   "--records", str(records), "--connections", "4", "--batch-bytes", str(1 << 20),
                   "--linger-ms", "5"]
        print("writing:", " ".join(produce), file=sys.stderr)
        began = time.monotonic()
        subprocess.run(produce, check=True, stdout=subprocess.DEVNULL)
        write_s = time.monotonic() - began
        on_disk = du_bytes(data_dir)
        segments = sum(1 for _, _, files in os.walk(data_dir) for n in files if n.endswith(".log"))
        print(f"wrote {on_disk / (1 << 30):.2f} GiB in {write_s:.1f}s, {segments} segment files",
              file=sys.stderr)

        results = {"clean": [], "kill": []}
        for way in ("clean", "kill"):
            for run in range(args.runs):
                stop_s = None
                if way == "clean":
                    stop_s = broker.stop()
                else:
                    broker.kill9()
                if args.cold:
                    drop_caches()
                ready_s, text = broker.start()
                scanned = sum(int(m) for m in SCANNED.findall(text))
                results[way].append((ready_s, scanned, stop_s))
                print(f"{way} run {run + 1}: ready in {ready_s * 1000:.0f} ms, scanned {scanned} bytes",
                      file=sys.stderr)
        broker.stop()
        return results, on_disk, segments
    finally:
        broker.close()


def section(args, results, on_disk, segments):
    def median_ms(way):
        return statistics.median(r[0] for r in results[way]) * 1000

    def scanned(way):
        return statistics.median(r[1] for r in results[way])

    stops = [r[2] for r in results["clean"] if r[2] is not None]
    lines = [
        SECTION_BEGIN,
        "## Restart time (issue 4)",
        "",
        f"Produced by `perf/restart_time.py --gib {args.gib} --partitions {args.partitions} --runs {args.runs}"
        f"{' --cold' if args.cold else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{on_disk / (1 << 30):.2f} GiB in {segments} segment files ({args.partitions} partitions, "
        f"1 KiB records, the default `segment.bytes` of 1 GiB) written by `shoal bench produce`, then "
        f"the broker restarted {args.runs} times each way. Time is from spawning `shoal serve` to its "
        f"ready line, median of {args.runs}; page cache "
        f"{'dropped before every start' if args.cold else 'warm (the data was just written)'}.",
        "",
        "| restart after | ready in (median) | all runs (ms) | bytes scanned by recovery |",
        "|---|---|---|---|",
    ]
    for way, label in (("clean", "clean shutdown (SIGTERM)"), ("kill", "kill -9")):
        runs = ", ".join(f"{r[0] * 1000:.0f}" for r in results[way])
        lines.append(f"| {label} | {median_ms(way):.0f} ms | {runs} | {scanned(way):,.0f} |")
    lines += [
        "",
        f"The clean shutdown itself took {statistics.median(stops) * 1000:.0f} ms (median). After it, "
        "recovery trusts every segment by its index (one header read each) and scans nothing. After "
        "kill -9 the recovery point is the base of each partition's active segment, so exactly the "
        "active segments are scanned (batch by batch, CRC-32C) and the sealed ones are trusted; the "
        "scan is bounded by `segment.bytes` per partition.",
        "",
        "Commands:",
        "",
        "```",
        "target/release/shoal serve --listen 127.0.0.1:$PORT --advertise 127.0.0.1:$PORT --data-dir $DIR",
        f"target/release/shoal bench produce --bootstrap 127.0.0.1:$PORT --topic restart --partitions "
        f"{args.partitions} --record-size {RECORD_BYTES} --acks -1 --records "
        f"{args.gib * (1 << 30) // RECORD_BYTES} --connections 4 --batch-bytes 1048576 --linger-ms 5",
        "kill -TERM $PID   # or kill -9 $PID, then the serve command again, timed to its ready line",
        "```",
        SECTION_END,
    ]
    return "\n".join(lines) + "\n"


def record(text):
    path = os.path.join(ROOT, "perf", "RESULTS.md")
    replace_section(path, SECTION_BEGIN, SECTION_END, text)
    print(f"wrote the section into {path}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=int, default=3, help="GiB of records to write (default 3)")
    parser.add_argument("--partitions", type=int, default=2, help="partitions of the topic (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="restarts each way (default 3)")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before every start (root)")
    parser.add_argument("--record", action="store_true", help="write the section into perf/RESULTS.md")
    args = parser.parse_args()
    binary = os.environ.get("SHOAL_BIN", os.path.join(ROOT, "target", "release", "shoal"))
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} is not built: cargo build --release (or set SHOAL_BIN)")
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    # On the disk the repository is on: /tmp may be a tmpfs.
    work_dir = tempfile.mkdtemp(prefix="restart-time-", dir=os.path.join(ROOT, "target"))
    try:
        results, on_disk, segments = measure(args, binary, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    text = section(args, results, on_disk, segments)
    print(text)
    if args.record:
        record(text)


if __name__ == "__main__":
    main()
