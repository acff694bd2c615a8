"""The admin HTTP listener (admin.listeners): /metrics in the Prometheus text
format, whose counters and histograms move as confluent-kafka produces and
fetches; /v1/status/live and /v1/status/ready; log levels changed at
runtime, and no log line per request at the default level; HTTP clients that
are slow, silent or send garbage are bounded and never disturb Kafka clients;
and, where Debian's `prometheus` is installed, a real Prometheus scrapes the
broker and the Grafana dashboard's queries return series; with Debian's
chromium too, the dashboard is drawn in the browser from its JSON and that
Prometheus's answers (dashboard_render/, no Grafana), every panel with a
line, and its screenshot saved in target/dashboard-screenshots/."""

import contextlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from confluent_kafka import TopicPartition

import clients
from browser import headless_chromium, needs_chromium
from conftest import HOST, free_port, make_temp_dir, read_text, remove_temp_dir, wait_until
from records import make_records

pytestmark = pytest.mark.shoal_only

# The admin listener's bounds (src/admin/mod.rs).
ADMIN_CONNECTIONS_MAX = 8
ADMIN_REQUEST_TIMEOUT_S = 5
HTTP_TIMEOUT_S = 10
DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "grafana", "shoal.json")
# The page that draws the dashboard in the browser, and where its
# screenshot goes (docs/images/dashboard.png is a copy).
DASHBOARD_PAGE = os.path.join(os.path.dirname(__file__), "dashboard_render")
SCREENSHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "target", "dashboard-screenshots")
# Grafana's grid is 24 columns wide: at 1200 px a half-width panel is
# about 580 px, as on a laptop's screen.
DASHBOARD_WINDOW = (1200, 900)
# Every panel's queries and drawing, on a loaded 2-core machine.
DASHBOARD_DRAWN_TIMEOUT_S = 30
# Prometheus's scrapes: a rate window of four of them (Grafana's
# $__rate_interval) holds a few seconds of traffic.
SCRAPE_INTERVAL_S = 1
# The traffic behind the drawn lines: 20 s in ticks of half a second,
# each producing between 20 and 220 records, up and down every 10 s.
TRAFFIC_TICKS = 40
TICK_S = 0.5
TRAFFIC_WAVE_TICKS = 20
TRAFFIC_RECORDS_MIN = 20
TRAFFIC_RECORDS_STEP = 20
# Names that read well in the screenshot.
DASHBOARD_TOPIC = "orders"
DASHBOARD_GROUP = "billing"


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


needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None, reason="Debian's prometheus is not installed")


@contextlib.contextmanager
def running_prometheus(admin_port, cors_origin=None):
    """A real Prometheus scraping the admin listener at `admin_port` every
    second, answering cross-origin to `cors_origin` (a regex) if given;
    yields its port, URL and log once it has scraped the broker. Stopped and its
    directory removed on exit, whatever happened."""
    root = make_temp_dir("shoal-prometheus-")
    prom_port = free_port()
    config_path = os.path.join(root, "prometheus.yml")
    with open(config_path, "w") as f:
        f.write(
            f"global:\n  scrape_interval: {SCRAPE_INTERVAL_S}s\n"
            "scrape_configs:\n"
            "  - job_name: shoal\n"
            f"    static_configs:\n      - targets: ['{HOST}:{admin_port}']\n"
        )
    log_path = os.path.join(root, "prometheus.log")
    command = [
        "prometheus",
        f"--config.file={config_path}",
        f"--storage.tsdb.path={os.path.join(root, 'data')}",
        f"--web.listen-address={HOST}:{prom_port}",
    ]
    if cors_origin is not None:
        command.append(f"--web.cors.origin={cors_origin}")
    with open(log_path, "wb") as log:
        prom = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        def scraped():
            try:
                return prometheus_query(prom_port, 'up{job="shoal"} == 1')
            except (OSError, AssertionError):
                return None

        wait_until(scraped, 60, "Prometheus to scrape the broker", interval_s=0.5)
        yield types.SimpleNamespace(port=prom_port, url=f"http://{HOST}:{prom_port}", log_path=log_path)
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=20)
        except subprocess.TimeoutExpired:
            prom.kill()
        remove_temp_dir(root)


@needs_prometheus
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

    with running_prometheus(admin_broker.admin_port) as prom:
        # Rates need two samples in their window.
        time.sleep(3)
        clients.produce_records(bootstrap, topic, records)
        time.sleep(3)
        for query in dashboard_queries():
            assert prometheus_query(prom.port, query), f"no series for {query}\n{read_text(prom.log_path)[-2000:]}"


@contextlib.contextmanager
def serving_dashboard_page():
    """An HTTP server on a free port for the page that draws the dashboard
    (dashboard_render/) and the dashboard's JSON, at /shoal.json; yields its
    base URL. Shut down on exit."""
    files = {f"/{name}": os.path.join(DASHBOARD_PAGE, name) for name in os.listdir(DASHBOARD_PAGE)}
    files["/shoal.json"] = DASHBOARD
    kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path = files.get(urllib.parse.urlsplit(self.path).path)
            if path is None:
                self.send_error(404)
                return
            with open(path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", kinds[os.path.splitext(path)[1]] + "; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=HTTP_TIMEOUT_S)


def run_traffic(bootstrap, topic, group):
    """Produces and reads for TRAFFIC_TICKS ticks of TICK_S: each tick a
    producer sends to both partitions a number of records that rises and
    falls (a triangle wave), and a reader of `group` reads at most the
    wave's mean and commits its position, so its lag rises and falls too."""
    prod = clients.producer(bootstrap)
    reader = clients.consumer(bootstrap, group_id=group, enable_partition_eof=False)
    partitions = [TopicPartition(topic, p, 0) for p in (0, 1)]
    reader.assign(partitions)
    log = clients.DeliveryLog()
    started = time.monotonic()
    try:
        for tick in range(TRAFFIC_TICKS):
            level = abs((tick + TRAFFIC_WAVE_TICKS // 2) % TRAFFIC_WAVE_TICKS - TRAFFIC_WAVE_TICKS // 2)
            count = TRAFFIC_RECORDS_MIN + TRAFFIC_RECORDS_STEP * level
            for n in range(count):
                prod.produce(topic, key=b"k%d" % n, value=b"v" * (100 + 7 * n), partition=n % 2, on_delivery=log)
            clients.flush(prod)
            mean = TRAFFIC_RECORDS_MIN + TRAFFIC_RECORDS_STEP * TRAFFIC_WAVE_TICKS // 4
            read = reader.consume(num_messages=mean, timeout=TICK_S / 2)
            assert not [m.error() for m in read if m.error()]
            positions = [p for p in reader.position(partitions) if p.offset >= 0]
            if positions:
                reader.commit(offsets=positions, asynchronous=False)
            time.sleep(max(0.0, started + (tick + 1) * TICK_S - time.monotonic()))
    finally:
        reader.close()
    assert log.errors == []


@needs_prometheus
@needs_chromium
def test_the_dashboard_drawn_from_its_json_with_a_real_prometheus(admin_broker):
    """The dashboard's panels, laid out and drawn in chromium from the
    dashboard's JSON and the answers of a real Prometheus scraping a broker
    under produce and fetch traffic: every panel draws a line. The
    screenshot is docs/images/dashboard.png (a copy of the one in
    target/dashboard-screenshots/)."""
    with open(DASHBOARD) as f:
        titles = [panel["title"] for panel in json.load(f)["panels"]]
    clients.create_topic(admin_broker.bootstrap, DASHBOARD_TOPIC, 2)
    with serving_dashboard_page() as page_url, running_prometheus(
        admin_broker.admin_port, cors_origin=re.escape(page_url)
    ) as prom:
        scraped_since = time.time()
        run_traffic(admin_broker.bootstrap, DASHBOARD_TOPIC, DASHBOARD_GROUP)
        range_s = math.ceil(time.time() - scraped_since) + 2
        query = urllib.parse.urlencode({"prometheus": prom.url, "range_s": range_s, "scrape_s": SCRAPE_INTERVAL_S})
        with headless_chromium(DASHBOARD_WINDOW) as driver:
            driver.get(f"{page_url}/index.html?{query}")
            wait_until(
                lambda: driver.execute_script("return document.body.dataset.loaded") in ("done", "error"),
                DASHBOARD_DRAWN_TIMEOUT_S,
                "the dashboard's panels",
            )
            assert driver.execute_script("return document.body.dataset.loaded") == "done", driver.page_source[-2000:]
            panels = driver.execute_script(
                """return Array.from(document.querySelectorAll('section.panel')).map((p) => ({
                    title: p.dataset.title, series: Number(p.dataset.series || 0), error: p.dataset.error || null,
                    lines: p.querySelectorAll('path.series').length,
                    legend: Array.from(p.querySelectorAll('.legend span')).map((s) => s.textContent)}))"""
            )
            assert [p["title"] for p in panels] == titles
            for panel in panels:
                assert panel["error"] is None and panel["series"] >= 1, (
                    f"panel {panel['title']!r} drew no line: {panel['error']}\n{read_text(prom.log_path)[-2000:]}"
                )
                assert panel["lines"] >= panel["series"] and len(panel["legend"]) == panel["series"], panel
            legends = {p["title"]: p["legend"] for p in panels}
            assert {"Produce", "Fetch"} <= set(legends["Requests per second by API"]), legends
            assert f"{DASHBOARD_GROUP} {DASHBOARD_TOPIC}" in legends["Consumer group lag"], legends
            assert {"produced", "sent", "received"} == set(legends["Bytes in and out"]), legends

            # The whole page in one image: a viewport as tall as the page.
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(DASHBOARD_WINDOW[0], height)
            short_px = height - driver.execute_script("return window.innerHeight")
            if short_px > 0:
                driver.set_window_size(DASHBOARD_WINDOW[0], height + short_px)
            os.makedirs(SCREENSHOTS, exist_ok=True)
            assert driver.save_screenshot(os.path.join(SCREENSHOTS, "dashboard.png"))
