"""Delay, jitter (hence reordering) and loss of packets without netem: a
userspace netem over NFQUEUE, for kernels built without
CONFIG_NET_SCH_NETEM (this machine's).

    python3 nfdelay.py --queue N --delay-ms D [--jitter-ms J] [--loss P]

binds netfilter queue N of the network namespace it runs in (run it with
`ip netns exec`), and gives each packet an iptables rule sends there
(`-j NFQUEUE --queue-num N --queue-bypass`) its verdict D ms after it
arrived, plus a uniform draw in [0, J) ms, so that with J > 0 packets
leave in another order than they came; with probability P a packet is
dropped instead. It prints `nfdelay ready` once bound, and runs until
killed (SIGTERM/SIGKILL: the kernel unbinds the queue with the socket,
and `--queue-bypass` lets packets through while nothing listens).

The protocol is nfnetlink_queue's (linux/netfilter/nfnetlink_queue.h),
spoken over a raw netlink socket so that no C library is needed: a
CONFIG message binds the queue and asks for packet metadata only (the
payload is never read or changed), each PACKET message carries the
packet's id, and a VERDICT message accepts or drops that id.

Bounds: the kernel queue holds at most QUEUE_MAX_PACKETS (the rest are
let through unqueued: fail-open), and so does this process's schedule.
"""

import argparse
import heapq
import os
import random
import select
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = (NFNL_SUBSYS_QUEUE << 8) | 0
NFQNL_MSG_VERDICT = (NFNL_SUBSYS_QUEUE << 8) | 1
NFQNL_MSG_CONFIG = (NFNL_SUBSYS_QUEUE << 8) | 2
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQA_CFG_F_FAIL_OPEN = 1
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NF_DROP = 0
NF_ACCEPT = 1
NLMSG_HEADER = struct.Struct("=IHHII")
NFGEN_HEADER = struct.Struct("=BBH")
ATTR_HEADER = struct.Struct("=HH")
# The kernel's queue and ours: enough for a loaded broker-to-broker link
# at tens of milliseconds of delay; past it packets go through undelayed.
QUEUE_MAX_PACKETS = 20_000
# Room for a burst of packet messages (about 100 bytes each) between reads.
RECEIVE_BUFFER_BYTES = 16 * 1024 * 1024
READ_BYTES = 256 * 1024
# How long the loop sleeps at most when nothing is due.
IDLE_WAIT_S = 0.05


def _attr(kind, payload):
    length = ATTR_HEADER.size + len(payload)
    return ATTR_HEADER.pack(length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _message(kind, queue, attrs, flags=NLM_F_REQUEST):
    body = NFGEN_HEADER.pack(socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), kind, flags, 0, 0) + body


def _config(sock, queue, attrs):
    """Sends one CONFIG message and raises on the kernel's error answer."""
    sock.send(_message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK))
    answer = sock.recv(READ_BYTES)
    _, kind, _, _, _ = NLMSG_HEADER.unpack_from(answer)
    if kind == NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", answer, NLMSG_HEADER.size)
        if error != 0:
            raise OSError(-error, f"nfqueue config of queue {queue}: {os.strerror(-error)}")


def bind(queue):
    """A netlink socket bound to `queue`, metadata only, fail-open."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER_BYTES)  # SO_RCVBUFFORCE (root)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    sock.bind((0, 0))
    _config(sock, queue, [_attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0))])
    _config(sock, queue, [_attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
                          _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAX_PACKETS)),
                          _attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                          _attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))])
    sock.setblocking(False)
    return sock


def packet_ids(data):
    """The packet ids of the PACKET messages in one read."""
    at = 0
    while at + NLMSG_HEADER.size <= len(data):
        length, kind, _, _, _ = NLMSG_HEADER.unpack_from(data, at)
        if length < NLMSG_HEADER.size:
            return
        if kind == NFQNL_MSG_PACKET:
            attr = at + NLMSG_HEADER.size + NFGEN_HEADER.size
            while attr + ATTR_HEADER.size <= at + length:
                attr_length, attr_kind = ATTR_HEADER.unpack_from(data, attr)
                if attr_length < ATTR_HEADER.size:
                    break
                if attr_kind & 0x7FFF == NFQA_PACKET_HDR:
                    (packet_id,) = struct.unpack_from("!I", data, attr + ATTR_HEADER.size)
                    yield packet_id
                    break
                attr += (attr_length + 3) & ~3
        at += (length + 3) & ~3


def verdict(sock, queue, packet_id, accept):
    message = _message(NFQNL_MSG_VERDICT, queue,
                       [_attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT if accept else NF_DROP, packet_id))])
    try:
        sock.send(message)
    except BlockingIOError:
        # The kernel takes verdicts as fast as they come; a full socket
        # buffer here would be a bug, and the packet times out as dropped.
        pass


def run(queue, delay_s, jitter_s, loss):
    sock = bind(queue)
    print("nfdelay ready", flush=True)
    due = []  # (time, packet id, accept)
    while True:
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, packet_id, accept = heapq.heappop(due)
            verdict(sock, queue, packet_id, accept)
        wait = min(IDLE_WAIT_S, max(0.0, due[0][0] - now)) if due else IDLE_WAIT_S
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            continue
        try:
            data = sock.recv(READ_BYTES)
        except BlockingIOError:
            continue
        except OSError:
            # ENOBUFS: messages were lost; their packets fail open or time out.
            continue
        arrived = time.monotonic()
        for packet_id in packet_ids(data):
            if len(due) >= QUEUE_MAX_PACKETS:
                verdict(sock, queue, packet_id, True)
                continue
            at = arrived + delay_s + random.uniform(0.0, jitter_s)
            heapq.heappush(due, (at, packet_id, random.random() >= loss))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0, help="probability of a drop, 0 to 1")
    args = parser.parse_args()
    if not 0.0 <= args.loss < 1.0:
        sys.exit(f"--loss is a probability below 1, not {args.loss}")
    run(args.queue, args.delay_ms / 1000.0, args.jitter_ms / 1000.0, args.loss)


if __name__ == "__main__":
    main()
