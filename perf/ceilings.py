"""The machine's ceilings, measured before the brokers: iperf3 over
loopback, fio sequential O_DIRECT writes and reads, W2's write pattern
(8 files, 16 KiB O_DSYNC writes) and 4 KiB write + fdatasync latency on the disk the brokers' data dirs live on; each one
measured or the reason it could not be.
"""

import json
import os
import time

from runs import PARTITIONS

from procs import (
    BENCH_SLACK_S, HOST, POLL_INTERVAL_S, READY_TIMEOUT_S, _kill, free_port, make_temp_dir, remove_temp_dir,
    run_bounded, spawn, tail,
)


# ---------------------------------------------------------------- ceilings

# The batch W2's producer fills per partition: `shoal bench`'s default
# --batch-bytes, which perf/run's workloads keep.
W2_BATCH_BYTES = 16384


def iperf3_loopback(seconds, commands):
    port = free_port()
    root = make_temp_dir("iperf3-")
    log_path = os.path.join(root, "server.log")
    # -1: the server serves one test, so readiness is read from its log; a
    # probing connect would be that one test.
    server_command = ["iperf3", "-s", "-1", "-B", HOST, "-p", str(port), "--forceflush"]
    commands.add(server_command, {f" {port} ": " $PORT "})
    server = spawn(server_command, log_path)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Server listening" not in tail(log_path):
            if server.poll() is not None or time.monotonic() >= deadline:
                raise RuntimeError(f"iperf3 server did not start:\n{tail(log_path)}")
            time.sleep(POLL_INTERVAL_S)
        command = ["iperf3", "-c", HOST, "-p", str(port), "-t", str(seconds), "-J"]
        commands.add(command, {f" {port} ": " $PORT "})
        code, out, err = run_bounded(command, seconds + BENCH_SLACK_S)
        if code != 0:
            raise RuntimeError(f"iperf3 exited with {code}: {err.strip()[-300:]}")
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8
    finally:
        _kill(server)
        remove_temp_dir(root)


def fio_run(name, extra, seconds, commands, rw="write"):
    root = make_temp_dir("fio-")
    try:
        command = ["fio", f"--name={name}", f"--directory={root}", f"--rw={rw}", "--time_based",
                   f"--runtime={seconds}", "--output-format=json", *extra]
        commands.add(command, {root: "$TMP"})
        code, out, err = run_bounded(command, seconds + BENCH_SLACK_S)
        if code != 0:
            raise RuntimeError(f"fio exited with {code}: {(err or out).strip()[-300:]}")
        return last_fio_job(out)
    finally:
        remove_temp_dir(root)


def last_fio_job(out):
    # fio may print warnings before its JSON.
    return json.loads(out[out.index("{"):])["jobs"][0]


def ceilings(size, commands):
    """Each ceiling, or the reason it could not be measured."""
    found = {}
    seconds = size.ceiling_s
    measures = {
        "loopback_bytes_per_s": lambda: iperf3_loopback(seconds, commands),
        "disk_seq_write_bytes_per_s": lambda: fio_run(
            "seqwrite", ["--bs=1M", "--size=512M", "--direct=1", "--ioengine=libaio", "--iodepth=8"],
            seconds, commands)["write"]["bw_bytes"],
        "fdatasync_latency_ms": lambda: fdatasync_latency(seconds, commands),
        # W2's ceiling (issue 16): W2's write pattern without a broker: its 8
        # partitions' files written side by side, one W2_BATCH_BYTES batch
        # at a time each, buffered with O_DSYNC as shoal's durable log writes.
        "disk_w2_pattern_bytes_per_s": lambda: fio_run(
            "w2pattern", [f"--bs={W2_BATCH_BYTES}", "--size=128M", f"--numjobs={PARTITIONS}", "--ioengine=sync",
                          "--sync=dsync", "--group_reporting"],
            seconds, commands)["write"]["bw_bytes"],
        # W8's ceiling: what the disk reads sequentially, past the page cache
        # (fio lays the file out first, then reads it for `seconds`).
        "disk_seq_read_bytes_per_s": lambda: fio_run(
            "seqread", ["--bs=1M", "--size=512M", "--direct=1", "--ioengine=libaio", "--iodepth=8"],
            seconds, commands, rw="read")["read"]["bw_bytes"],
    }
    for key, measure in measures.items():
        try:
            found[key] = measure()
        except Exception as error:  # noqa: BLE001 - report any failure as "not measured"
            found[key] = {"error": str(error).strip()[-300:]}
    return found


def fdatasync_latency(seconds, commands):
    job = fio_run("fdatasync", ["--bs=4k", "--size=64M", "--fdatasync=1", "--ioengine=sync"],
                  seconds, commands)
    percentiles = job["sync"]["lat_ns"]["percentile"]
    return {"p50": percentiles["50.000000"] / 1e6, "p99": percentiles["99.000000"] / 1e6}
