"""The README's run command: `shoal serve` with no --data-dir keeps its data in
./shoal-data under the working directory, and works."""

import os
import signal
import subprocess

import pytest

import clients
from conftest import STOP_TIMEOUT_S, free_port, shoal_bin, wait_ready
from records import make_records

pytestmark = pytest.mark.shoal_only


def test_default_relative_data_dir_works(tmp_root, topic):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    log_path = os.path.join(tmp_root, "broker.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [shoal_bin(), "serve", "--listen", bootstrap],
            cwd=tmp_root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(proc, log_path, bootstrap)
        clients.create_topic(bootstrap, topic, 2)
        records = make_records(seed="default-dir", partitions=2, per_partition=20)
        clients.produce_records(bootstrap, topic, records)
        clients.assert_read_back(bootstrap, topic, records)
        assert os.path.isdir(os.path.join(tmp_root, "shoal-data", f"{topic}-0"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_TIMEOUT_S) == 0
        assert "ERROR" not in open(log_path).read(), open(log_path).read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
