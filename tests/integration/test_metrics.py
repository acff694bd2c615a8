"""The admin HTTP listener (admin.listeners): /metrics in the Prometheus text
format, whose counters and histograms move as confluent-kafka produces and
fetches; /v1/status/live and /v1/status/ready; log levels changed at
runtime, and no log line per request at the default level; HTTP clients that
are slow, silent or send garbage are bounded and never disturb Kafka clients;
and, where Debian's `prometheus` is installed, a real Prometheus scrapes the
broker and the Grafana dashboard's queries return series."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from confluent_kafka import TopicPartition

import clients
from conftest import HOST, free_port, make_temp_dir, read_text, remove_temp_dir, wait_until
from records import make_records

pytestmark = pytest.mark.shoal_only

# The admin listener's bounds (src/admin/mod.rs).
ADMIN_CONNECTIONS_MAX = 8
ADMIN_REQUEST_TIMEOUT_S = 5
HTTP_TIMEOUT_S = 10
DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "grafana", "shoal.json")


@pytest.fixture
def admin_broker(broker_factory):
    port = free_port()
    broker = broker_factory(overrides={"admin.listeners": f"http://{HOST}:{port}"}, shards=2)
    broker.admin_port = port
    broker.admin = f"http://{HOST}:{port}"
    return broker


def http(method, url, timeout=HTTP_TIMEOUT_S):
    """(status, headers, body) of one request; an HTTP error is an answer too."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def scrape(broker):
    """{series: value} of one scrape; checks the text format on the way:
    every sample belongs to the family its HELP and TYPE lines announced."""
    status, headers, text = http("GET", f"{broker.admin}/metrics")
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    series = {}
    family = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family = line.split(" ")[2]
            continue
        if line.startswith("# TYPE "):
            assert line.split(" ")[2] == family, line
            continue
        name_and_labels, value = line.rsplit(" ", 1)
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name_and_labels).group(0)
        assert re.sub(r"_(bucket|sum|count)$", "", name) == family or name == family, line
        series[name_and_labels] = float(value)
    return series


def total(series, name, **labels):
    """The sum of every series of `name` whose labels include `labels`."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        value
        for key, value in series.items()
        if re.match(rf"{name}(\{{|$)", key) and all(w in key for w in wanted)
    )


def test_counters_and_histograms_move_with_produce_and_fetch(admin_broker, topic):
    bootstrap = admin_broker.bootstrap
    before = scrape(admin_broker)
    assert total(before, "shoal_requests_total", api="Produce") == 0
    assert before["shoal_ready"] == 1
    clients.create_topic(bootstrap, topic, 2)
    records = make_records(seed="metrics", partitions=2, per_partition=100)
    clients.produce_records(bootstrap, topic, records, linger_ms=0)
    clients.assert_read_back(bootstrap, topic, records)
    after = scrape(admin_broker)

    produces = total(after, "shoal_requests_total", api="Produce")
    assert produces >= 2, after
    assert total(after, "shoal_requests_total", api="Fetch") >= 1
    assert total(after, "shoal_requests_total", api="CreateTopics") >= 1
    # Every request answered is in its API's latency histogram, whose
    # buckets never decrease and end with +Inf at its count.
    for api in ("Produce", "Fetch", "Metadata"):
        count = after[f'shoal_request_latency_seconds_count{{api="{api}"}}']
        assert count == total(after, "shoal_requests_total", api=api), api
        buckets = [
            value
            for key, value in after.items()
            if key.startswith(f'shoal_request_latency_seconds_bucket{{api="{api}"')
        ]
        assert buckets == sorted(buckets) and buckets[-1] == count, (api, buckets)
    value_bytes = sum(len(r.value) for rows in records.values() for r in rows)
    assert total(after, "shoal_records_in_total") >= 200
    assert total(after, "shoal_bytes_in_total") > value_bytes
    assert total(after, "shoal_network_sent_bytes_total") > value_bytes
    assert total(after, "shoal_network_received_bytes_total") > value_bytes
    assert total(after, "shoal_connections_opened_total") > total(before, "shoal_connections_opened_total")
    # The default flush policy makes every group durable as it is written.
    assert after["shoal_log_flush_seconds_count"] >= 1
    assert after["shoal_log_group_commit_batches_count"] >= 1
    for partition in (0, 1):
        labels = f'{{topic="{topic}",partition="{partition}"}}'
        assert after[f"shoal_partition_log_end_offset{labels}"] == 100
        assert after[f"shoal_partition_high_watermark{labels}"] == 100
        assert after[f"shoal_partition_log_start_offset{labels}"] == 0
        assert after[f"shoal_partition_segments{labels}"] == 1
        assert after[f"shoal_partition_size_bytes{labels}"] > 0
        assert after[f"shoal_partition_leader{labels}"] == 1
    assert total(after, "shoal_partitions") >= 2
    assert total(after, "shoal_under_replicated_partitions") == 0
    assert after["shoal_offline_partitions"] == 0
    assert after["shoal_active_controller"] == 1

    # A group's committed offsets and its lag to the high watermark.
    group = f"{topic}-group"
    c = clients.consumer(bootstrap, group_id=group)
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 60), TopicPartition(topic, 1, 100)], asynchronous=False)
    finally:
        c.close()
    grouped = scrape(admin_broker)
    lag = f'shoal_group_lag{{group="{group}",topic="{topic}",partition="0"}}'
    assert grouped[lag] == 40, grouped.get(lag)
    assert grouped[f'shoal_group_members{{group="{group}"}}'] == 0
    assert grouped[f'shoal_group_state{{group="{group}",state="Empty"}}'] == 1


def test_partition_series_can_be_turned_off(broker_factory, topic):
    port = free_port()
    broker = broker_factory(
        overrides={"admin.listeners": f"http://{HOST}:{port}", "metrics.partition.series.enabled": "false"},
    )
    broker.admin = f"http://{HOST}:{port}"
    clients.create_topic(broker.bootstrap, topic, 3)
    clients.produce_records(broker.bootstrap, topic, make_records(seed="off", partitions=3, per_partition=5))
    series = scrape(broker)
    per_partition = [key for key in series if 'partition="' in key or key.startswith("shoal_group_lag")]
    assert not per_partition, per_partition
    assert total(series, "shoal_partitions") >= 3
    assert total(series, "shoal_requests_total", api="Produce") >= 1


def test_metrics_can_be_turned_off(broker_factory, topic):
    port = free_port()
    broker = broker_factory(overrides={"admin.listeners": f"http://{HOST}:{port}", "metrics.enabled": "false"})
    broker.admin = f"http://{HOST}:{port}"
    clients.create_topic(broker.bootstrap, topic, 1)
    clients.produce_records(broker.bootstrap, topic, make_records(seed="none", partitions=1, per_partition=5))
    series = scrape(broker)
    assert total(series, "shoal_requests_total") == 0
    assert total(series, "shoal_records_in_total") == 0
    # Levels read at the scrape are there whatever the switch.
    assert total(series, "shoal_partitions") >= 1


def test_live_ready_and_http_errors(admin_broker):
    status, headers, body = http("GET", f"{admin_broker.admin}/v1/status/live")
    assert (status, json.loads(body)) == (200, {"status": "live"})
    assert headers["Connection"] == "close"
    status, _, body = http("GET", f"{admin_broker.admin}/v1/status/ready")
    assert (status, json.loads(body)) == (200, {"status": "ready"})
    status, headers, body = http("HEAD", f"{admin_broker.admin}/metrics")
    assert status == 200 and body == "" and int(headers["Content-Length"]) > 0
    assert http("GET", f"{admin_broker.admin}/nowhere")[0] == 404
    status, headers, _ = http("POST", f"{admin_broker.admin}/metrics")
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_log_levels_change_at_runtime_and_requests_log_nothing_by_default(admin_broker, topic):
    bootstrap = admin_broker.bootstrap
    clients.create_topic(bootstrap, topic, 1, config={"cleanup.policy": "compact"})
    refused = f"produce to {topic}-0 refused"

    def produce_keyless():
        prod = clients.producer(bootstrap, message_timeout_ms=5000)
        log = clients.DeliveryLog()
        prod.produce(topic, value=b"no key on a compacted topic", partition=0, on_delivery=log)
        prod.flush(10)
        assert log.errors, "a compacted topic refuses records without a key"

    # The default level (info) has no line per request: 300 produce
    # requests add none.
    clients.create_topic(bootstrap, f"{topic}-plain", 1)
    lines_before = len(read_text(admin_broker.log_path).splitlines())
    records = make_records(seed="quiet", partitions=1, per_partition=300, with_headers=False)
    clients.produce_records(bootstrap, f"{topic}-plain", records, linger_ms=0, batch_num_messages=1)
    produce_keyless()
    added = read_text(admin_broker.log_path).splitlines()[lines_before:]
    assert len(added) < 10, added
    assert refused not in "\n".join(added)

    module = "shoal::server::handlers::produce"
    query = urllib.parse.urlencode({"module": module, "level": "debug"})
    status, _, body = http("PUT", f"{admin_broker.admin}/v1/log/level?{query}")
    assert status == 200, body
    assert json.loads(body)["modules"] == {module: "debug"}
    produce_keyless()
    wait_until(lambda: refused in read_text(admin_broker.log_path), 10, "the produce handler's debug line")

    query = urllib.parse.urlencode({"module": module, "level": "reset"})
    status, _, body = http("PUT", f"{admin_broker.admin}/v1/log/level?{query}")
    assert (status, json.loads(body)["modules"]) == (200, {})
    seen = read_text(admin_broker.log_path).count(refused)
    produce_keyless()
    assert read_text(admin_broker.log_path).count(refused) == seen

    for bad in ("module=shoal&level=loud", "module=a%20b&level=debug", "level=debug"):
        assert http("PUT", f"{admin_broker.admin}/v1/log/level?{bad}")[0] == 400, bad


def raw_exchange(port, payload, timeout=HTTP_TIMEOUT_S):
    """Sends payload on a fresh connection and reads until the broker closes."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_slow_and_garbage_http_clients_are_bounded_and_leave_kafka_alone(admin_broker, topic):
    port = admin_broker.admin_port
    assert raw_exchange(port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    # One byte over the bound: refused once all of it is read, so the
    # close is a FIN after the answer, not a reset.
    assert raw_exchange(port, b"G" * 8193).startswith(b"HTTP/1.1 431 ")
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").startswith(b"HTTP/1.1 501 ")

    # Every admin slot and more held by clients that never finish a request.
    silent = []
    for _ in range(ADMIN_CONNECTIONS_MAX + 4):
        sock = socket.create_connection((HOST, port), timeout=HTTP_TIMEOUT_S)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        silent.append(sock)
    try:
        # Kafka clients are served meanwhile.
        clients.create_topic(admin_broker.bootstrap, topic, 1)
        records = make_records(seed="slow-http", partitions=1, per_partition=50)
        clients.produce_records(admin_broker.bootstrap, topic, records)
        clients.assert_read_back(admin_broker.bootstrap, topic, records)
        # The silent ones are cut at the request timeout, with a 408 for
        # those that were being served.
        for sock in silent[:ADMIN_CONNECTIONS_MAX]:
            sock.settimeout(ADMIN_REQUEST_TIMEOUT_S * 3)
            answer = sock.recv(65536)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    finally:
        for sock in silent:
            sock.close()
    # Then a scrape is served again.
    assert total(scrape(admin_broker), "shoal_requests_total", api="Produce") >= 1


def dashboard_queries():
    """Every PromQL expression of the Grafana dashboard, with Grafana's
    interval variables given values a short test can answer."""
    with open(DASHBOARD) as f:
        dashboard = json.load(f)
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append(target["expr"].replace("$__rate_interval", "1m").replace("$__range", "5m"))
    assert queries, "the dashboard has no queries"
    return queries


def prometheus_query(prom_port, query):
    url = f"http://{HOST}:{prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    status, _, body = http("GET", url)
    assert status == 200, (query, body)
    answer = json.loads(body)
    assert answer["status"] == "success", (query, answer)
    return answer["data"]["result"]


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is not installed")
def test_a_real_prometheus_scrapes_the_broker_and_the_dashboard_queries_answer(admin_broker, topic):
    bootstrap = admin_broker.bootstrap
    clients.create_topic(bootstrap, topic, 2)
    records = make_records(seed="prometheus", partitions=2, per_partition=50)
    clients.produce_records(bootstrap, topic, records)
    clients.assert_read_back(bootstrap, topic, records)
    c = clients.consumer(bootstrap, group_id=f"{topic}-group")
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
    finally:
        c.close()

    root = make_temp_dir("shoal-prometheus-")
    prom_port = free_port()
    config_path = os.path.join(root, "prometheus.yml")
    with open(config_path, "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: shoal\n"
            f"    static_configs:\n      - targets: ['{HOST}:{admin_broker.admin_port}']\n"
        )
    log_path = os.path.join(root, "prometheus.log")
    with open(log_path, "wb") as log:
        prom = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config_path}",
                f"--storage.tsdb.path={os.path.join(root, 'data')}",
                f"--web.listen-address={HOST}:{prom_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        def scraped():
            try:
                return prometheus_query(prom_port, 'up{job="shoal"} == 1')
            except (OSError, AssertionError):
                return None

        wait_until(scraped, 60, "Prometheus to scrape the broker", interval_s=0.5)
        # Rates need two samples in their window.
        time.sleep(3)
        clients.produce_records(bootstrap, topic, records)
        time.sleep(3)
        for query in dashboard_queries():
            assert prometheus_query(prom_port, query), f"no series for {query}\n{read_text(log_path)[-2000:]}"
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
        remove_temp_dir(root)
