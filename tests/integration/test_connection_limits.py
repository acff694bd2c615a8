"""Bounds at the edge, with Kafka's names: `max.connections.per.ip` (and its
overrides) closes connections past the limit and serves the others;
`max.connections` holds new clients back until one closes;
`connections.max.idle.ms` closes silent connections; and a broker out of file
descriptors backs off instead of spinning, logs it a bounded number of times,
answers SIGTERM and serves again when descriptors free up."""

import contextlib
import os
import socket
import struct
import time

import pytest

import kafka_wire
from conftest import HOST, Broker, wait_until


# Connections the broker takes from 127.0.0.3 (the default limit), and from
# 127.0.0.2 by override. Not from 127.0.0.1: an external broker's readiness
# probe connects from there, and Kafka counts that connection against the
# limit until it has seen it close.
PER_IP = 3
PER_IP_OVERRIDE = 5
OTHER_LOOPBACK = "127.0.0.2"
LIMITED_LOOPBACK = "127.0.0.3"
SERVED_TIMEOUT_S = 10.0
CLOSED_TIMEOUT_S = 10.0


def connect_from(broker, source_ip=HOST):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source_ip, 0))
    sock.settimeout(kafka_wire.SOCKET_TIMEOUT_S)
    sock.connect(kafka_wire.parse_bootstrap(broker.bootstrap))
    return sock


def api_versions_request(correlation_id):
    return kafka_wire.frame(kafka_wire.request_header(kafka_wire.API_VERSIONS, 0, correlation_id))


def served(sock, correlation_id=1, timeout_s=SERVED_TIMEOUT_S):
    """True when the broker answers an ApiVersions request on `sock`; False
    when it closed the connection or did not answer within timeout_s."""
    try:
        sock.sendall(api_versions_request(correlation_id))
        body = kafka_wire.read_response(sock, correlation_id, timeout_s)
    except (ConnectionError, socket.timeout, OSError):
        return False
    (error_code,) = struct.unpack(">h", body[:2])
    return error_code == kafka_wire.ERR_NONE


def served_new_connection(broker, source_ip):
    with contextlib.closing(connect_from(broker, source_ip)) as sock:
        return served(sock)


def test_connections_past_the_per_ip_limit_are_closed_and_overrides_apply(broker_factory):
    broker = broker_factory(
        shards=2,
        overrides={
            "max.connections.per.ip": PER_IP,
            "max.connections.per.ip.overrides": f"{OTHER_LOOPBACK}:{PER_IP_OVERRIDE}",
        },
    )
    with contextlib.ExitStack() as stack:
        ours = [
            stack.enter_context(contextlib.closing(connect_from(broker, LIMITED_LOOPBACK))) for _ in range(PER_IP)
        ]
        assert all(served(sock) for sock in ours)
        extra = stack.enter_context(contextlib.closing(connect_from(broker, LIMITED_LOOPBACK)))
        assert kafka_wire.wait_closed(extra, CLOSED_TIMEOUT_S), "connection past the per-IP limit stayed open"
        # The broker keeps serving the connections it took.
        assert all(served(sock, correlation_id=2) for sock in ours)

        # 127.0.0.2 has an override: more connections, then the same refusal.
        others = [
            stack.enter_context(contextlib.closing(connect_from(broker, OTHER_LOOPBACK)))
            for _ in range(PER_IP_OVERRIDE)
        ]
        assert all(served(sock) for sock in others)
        extra_other = stack.enter_context(contextlib.closing(connect_from(broker, OTHER_LOOPBACK)))
        assert kafka_wire.wait_closed(extra_other, CLOSED_TIMEOUT_S)

        # Once one closes, a new connection from that address is served (the
        # broker frees the slot when it sees the close).
        ours.pop().close()
        wait_until(lambda: served_new_connection(broker, LIMITED_LOOPBACK), SERVED_TIMEOUT_S, "a freed per-IP slot")
        assert "max.connections.per.ip" in open(broker.log_path, errors="replace").read()


def test_max_connections_holds_new_clients_until_one_closes(broker_factory):
    limit = 4
    broker = broker_factory(shards=2, overrides={"max.connections": limit})
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(contextlib.closing(connect_from(broker))) for _ in range(limit)]
        assert all(served(sock) for sock in held)
        # The kernel completes the handshake, but the broker does not take
        # the connection while all its slots are in use.
        waiting = stack.enter_context(contextlib.closing(connect_from(broker)))
        waiting.sendall(api_versions_request(9))
        with pytest.raises(socket.timeout):
            waiting.settimeout(1.0)
            waiting.recv(1)
        held.pop().close()
        body = kafka_wire.read_response(waiting, 9, SERVED_TIMEOUT_S)
        assert struct.unpack(">h", body[:2])[0] == kafka_wire.ERR_NONE


def test_idle_connections_are_closed_after_connections_max_idle_ms(broker_factory):
    idle_ms = 2000
    broker = broker_factory(shards=2, overrides={"connections.max.idle.ms": idle_ms})
    with contextlib.ExitStack() as stack:
        idle = stack.enter_context(contextlib.closing(connect_from(broker)))
        assert served(idle)
        half_frame = stack.enter_context(contextlib.closing(connect_from(broker)))
        half_frame.sendall(b"\x00\x00\x00")
        busy = stack.enter_context(contextlib.closing(connect_from(broker)))
        # A connection that keeps talking stays open past the idle time.
        deadline = time.monotonic() + 2 * idle_ms / 1000
        correlation_id = 0
        while time.monotonic() < deadline:
            correlation_id += 1
            assert served(busy, correlation_id), "an active connection was closed"
            time.sleep(idle_ms / 1000 / 10)
        assert kafka_wire.wait_closed(idle, CLOSED_TIMEOUT_S), "idle connection stayed open"
        assert kafka_wire.wait_closed(half_frame, CLOSED_TIMEOUT_S), "half-sent frame stayed open"


# File descriptors the broker may hold: enough to start two shards, far
# fewer than the flood's connections (each takes two: socket and writer).
FLOOD_NOFILE = 256
FLOOD_CONNECTIONS = 600
# CPU seconds the broker may use over IDLE_WINDOW_S while flooded: a spinning
# accept loop uses both cores (about 2 s per second).
IDLE_WINDOW_S = 3.0
IDLE_CPU_S_MAX = 0.3
# Log lines about failing accepts: at most one per shard per 10 s
# (server/limits.rs), over a test of well under a minute.
ACCEPT_LOG_LINES_MAX = 20


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name, which may hold spaces: utime and
        # stime are fields 14 and 15 of the whole line.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_flood(broker):
    flood = []
    for _ in range(FLOOD_CONNECTIONS):
        try:
            sock = socket.create_connection(kafka_wire.parse_bootstrap(broker.bootstrap), timeout=2)
        except OSError:
            break  # every backlog is full: flooded enough
        flood.append(sock)
    return flood


def accept_failure_lines(broker):
    return [line for line in open(broker.log_path, errors="replace") if "accept failed" in line]


# shoal's own process under prlimit, and its log lines.
@pytest.mark.shoal_only
def test_a_broker_out_of_descriptors_backs_off_and_recovers(tmp_root):
    broker = Broker(tmp_root, shards=2)
    original = broker.command
    broker.command = lambda: ["prlimit", f"--nofile={FLOOD_NOFILE}:{FLOOD_NOFILE}", "--", *original()]
    flood = []
    try:
        broker.start()
        flood = open_flood(broker)
        assert len(flood) > FLOOD_NOFILE
        wait_until(lambda: accept_failure_lines(broker), 20, "the broker running out of descriptors")

        before = cpu_seconds(broker.proc.pid)
        time.sleep(IDLE_WINDOW_S)
        used = cpu_seconds(broker.proc.pid) - before
        assert used < IDLE_CPU_S_MAX, f"broker used {used:.2f} CPU s in {IDLE_WINDOW_S} s while flooded"
        assert broker.is_running()

        for sock in flood:
            sock.close()
        flood = []
        wait_until(lambda: _answers(broker), 30, "the broker serving again after the flood")
        lines = accept_failure_lines(broker)
        assert len(lines) <= ACCEPT_LOG_LINES_MAX, f"{len(lines)} accept failure lines"

        # SIGTERM is answered while the broker is out of descriptors too.
        flood = open_flood(broker)
        wait_until(lambda: len(accept_failure_lines(broker)) > len(lines), 20, "a second episode")
        broker.stop()
    finally:
        for sock in flood:
            sock.close()
        broker.close()


def _answers(broker):
    try:
        return bool(broker.answers())
    except (OSError, AssertionError):
        return False


# Lines a shard logs per second about connections it closes for a fault
# (server/limits.rs), before one summary line per second.
CLOSE_LOG_LINES_PER_SECOND = 10
BAD_CONNECTIONS = 300


# The rate bound is shoal's own logging's (server/limits.rs).
@pytest.mark.shoal_only
def test_closes_of_bad_connections_are_logged_at_a_bounded_rate(broker_factory):
    broker = broker_factory(shards=2)
    started = time.monotonic()
    for _ in range(BAD_CONNECTIONS):
        with contextlib.closing(connect_from(broker)) as sock:
            sock.sendall(struct.pack(">i", -1))
            assert kafka_wire.wait_closed(sock, CLOSED_TIMEOUT_S)
    # The summary of the last second is written a second after it.
    time.sleep(2)
    elapsed_s = time.monotonic() - started
    text = open(broker.log_path, errors="replace").read()
    closes = text.count("closing connection from")
    seconds = int(elapsed_s) + 1
    assert closes <= 2 * CLOSE_LOG_LINES_PER_SECOND * seconds, f"{closes} close lines in {elapsed_s:.1f} s"
    summarized = sum(
        int(line.split("... and ", 1)[1].split()[0])
        for line in text.splitlines()
        if "more closed connections not logged" in line
    )
    assert closes + summarized == BAD_CONNECTIONS, (closes, summarized)
    assert broker.answers()
