#!/usr/bin/env python3
"""Broker memory per connection (issue 11): the growth of `shoal serve`'s
resident memory (VmRSS in /proc/<pid>/status) per connection, for idle
connections that made one request, and for connections that sent three bytes
of a frame's size and stopped.

    perf/conn_memory.py [--connections 4000] [--shards 2] --bin LABEL=PATH [--bin LABEL=PATH ...]

For each binary: a fresh broker on a free port and an empty data directory
(its file-descriptor limit raised to fit), then --connections connections
that each send ApiVersions, read the answer and go quiet; then as many more
that send b"\\x00\\x00\\x00" (a size prefix cut short). Connections open in
batches of 250; the growth of VmRSS over each batch, divided by 250, gives
one sample, and the median of the samples is reported. Prints one Markdown
table for all binaries. The broker is stopped and its directory removed at
the end, whatever happens.

Standard library only."""

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import time

READY_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
SOCKET_TIMEOUT_S = 10
# Descriptors per connection in the broker (the socket and its writer's dup)
# plus what the broker holds without clients.
BROKER_FDS_PER_CONNECTION = 2
BROKER_FDS_BASE = 1024
API_VERSIONS_REQUEST = struct.pack(">ihhih", 14, 18, 0, 1, 4) + b"perf"
HALF_SIZE_PREFIX = b"\x00\x00\x00"
BATCH_CONNECTIONS = 250
# Time for the broker to accept and read what a batch sent.
BATCH_SETTLE_S = 0.3


def vm_rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def recv_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def ask_api_versions(sock):
    sock.sendall(API_VERSIONS_REQUEST)
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    recv_exact(sock, size)


def connect(bootstrap_port):
    sock = socket.create_connection(("127.0.0.1", bootstrap_port), timeout=SOCKET_TIMEOUT_S)
    sock.settimeout(SOCKET_TIMEOUT_S)
    return sock


def step(pid, port, connections, sockets, use):
    """Opens `connections` connections in batches, each handed to `use`;
    returns the median RSS growth per connection over the batches. The
    median leaves out one-time costs: the broker's first stall report
    (which the OS scheduler can cause on a busy machine) symbolizes a
    backtrace and maps tens of MiB of debug info."""
    growth = []
    for _ in range(max(1, connections // BATCH_CONNECTIONS)):
        before = vm_rss_bytes(pid)
        for _ in range(BATCH_CONNECTIONS):
            sock = connect(port)
            sockets.append(sock)
            use(sock)
        time.sleep(BATCH_SETTLE_S)
        growth.append((vm_rss_bytes(pid) - before) / BATCH_CONNECTIONS)
    return statistics.median(growth)


def measure(binary, connections, shards):
    nofile = BROKER_FDS_BASE + BROKER_FDS_PER_CONNECTION * 2 * connections
    work = tempfile.mkdtemp(prefix="shoal-conn-memory-")
    port = free_port()
    log_path = os.path.join(work, "broker.log")
    cmd = [
        binary, "serve", "--listen", f"127.0.0.1:{port}", "--advertise", f"127.0.0.1:{port}",
        "--data-dir", os.path.join(work, "data"), "--shards", str(shards),
    ]
    sockets = []
    proc = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)),
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "shoal ready" not in open(log_path, errors="replace").read():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"broker did not start:\n{open(log_path, errors='replace').read()[-2000:]}")
            time.sleep(0.05)
        base = vm_rss_bytes(proc.pid)
        idle = step(proc.pid, port, connections, sockets, ask_api_versions)
        half = step(proc.pid, port, connections, sockets, lambda sock: sock.sendall(HALF_SIZE_PREFIX))
        return base, idle, half
    finally:
        for sock in sockets:
            sock.close()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", action="append", required=True, help="LABEL=PATH of a shoal binary")
    parser.add_argument("--connections", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * args.connections + 64
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    print(f"{args.connections} connections per step, {args.shards} shards\n")
    print("| binary | RSS before clients | per idle connection | per connection with 3 bytes of a frame |")
    print("|---|---|---|---|")
    for spec in args.bin:
        label, _, path = spec.partition("=")
        base, idle, half = measure(path, args.connections, args.shards)
        print(f"| {label} | {base / 2**20:.1f} MiB | {idle / 1024:.1f} KiB | {half / 1024:.1f} KiB |", flush=True)


if __name__ == "__main__":
    main()
