"""The web console the admin listener serves (/console/), in a real browser:
Debian's chromium, headless, driven by Selenium through Debian's
chromedriver (browser.py). The pages load, the charts are SVG with
data, a record a real client (confluent-kafka) produces shows up in the
browser's following record view within a second, and the console's JSON
endpoints stay bounded and read-only (the admin actions, off by default,
are test_console_actions.py's). The test saves a screenshot of each
page in target/console-screenshots/ (docs/images/console-*.png are copies)."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest

import clients
from browser import headless_chromium, needs_chromium
from conftest import HOST, free_port, wait_until

pytestmark = pytest.mark.shoal_only

SCREENSHOTS = os.path.join(os.path.dirname(__file__), "..", "..", "target", "console-screenshots")
WINDOW = (1200, 800)
# The record view follows a partition by polling (console.js FOLLOW_MS,
# 250 ms): a produced record must be on screen within this.
RECORD_VISIBLE_S = 1.0
# A page's JSON and drawing, on a loaded 2-core machine.
PAGE_TIMEOUT_S = 15
# The history keeps a sample every 10 s (src/admin/history.rs): a rate line
# of two points needs three samples, the last of them "now".
CHART_LINES_TIMEOUT_S = 40
HTTP_TIMEOUT_S = 10


@pytest.fixture
def admin_broker(broker_factory):
    port = free_port()
    broker = broker_factory(overrides={"admin.listeners": f"http://{HOST}:{port}"}, shards=2)
    broker.admin = f"http://{HOST}:{port}"
    return broker


def get(url):
    """(status, parsed JSON body or text) of one GET."""
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read().decode()
            status = response.status
            kind = response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        body, status, kind = error.read().decode(), error.code, error.headers["Content-Type"]
    return status, json.loads(body) if kind.startswith("application/json") else body


@pytest.fixture
def browser():
    """A headless chromium, 1200x800; at teardown every process of theirs
    is gone (browser.py)."""
    with headless_chromium(WINDOW) as driver:
        yield driver


def open_page(driver, broker, page):
    """Opens the console at `#page` and waits until its script drew it (a
    change of the hash alone reloads nothing: the old mark is cleared
    first)."""
    driver.execute_script("if (document.body) delete document.body.dataset.loaded")
    driver.get(f"{broker.admin}/console/#{page}")
    name = page.split("?")[0].split("/")[0]
    wait_until(
        lambda: driver.execute_script("return document.body.dataset.loaded") in (name, "error"),
        PAGE_TIMEOUT_S,
        f"the console's {name} page",
    )
    assert driver.execute_script("return document.body.dataset.loaded") == name, page_text(driver)


def page_text(driver):
    return driver.execute_script("return document.getElementById('page').innerText")


def screenshot(driver, name):
    os.makedirs(SCREENSHOTS, exist_ok=True)
    assert driver.save_screenshot(os.path.join(SCREENSHOTS, f"console-{name}.png"))


def chart_points(driver):
    """(data points, path points) of each chart's SVG on the page."""
    return driver.execute_script(
        """return Array.from(document.querySelectorAll('.chart svg')).map((s) => [
            Number(s.dataset.points),
            Array.from(s.querySelectorAll('path.series')).map((p) => p.getAttribute('d').split(/[ML]/).length - 1)])"""
    )


def produce_json(bootstrap, topic, partition, values, key=b"k"):
    prod = clients.producer(bootstrap, linger_ms=0)
    log = clients.DeliveryLog()
    for value in values:
        prod.produce(
            topic,
            key=key,
            value=json.dumps(value).encode(),
            headers=[("source", b"test_console")],
            partition=partition,
            on_delivery=log,
        )
    clients.flush(prod)
    assert log.errors == []
    return log.acked


@needs_chromium
def test_console_pages_charts_and_a_produced_record_in_the_browser(admin_broker, browser, topic):
    bootstrap = admin_broker.bootstrap
    clients.create_topic(bootstrap, topic, 2, config={"retention.ms": "3600000"})
    produce_json(bootstrap, topic, 0, [{"n": n, "kind": "first"} for n in range(30)])
    produce_json(bootstrap, topic, 1, [{"n": n} for n in range(10)])
    # A consumer's fetches, for the Fetch latency chart.
    clients.consume(bootstrap, topic, {0: 30, 1: 10})
    group = f"{topic}-group"
    consumer = clients.consumer(bootstrap, group_id=group)
    try:
        from confluent_kafka import TopicPartition

        consumer.commit(offsets=[TopicPartition(topic, 0, 12), TopicPartition(topic, 1, 10)], asynchronous=False)
    finally:
        consumer.close()

    open_page(browser, admin_broker, "brokers")
    text = page_text(browser)
    assert "active" in text and "this node" in text and "Shards of node" in text, text
    screenshot(browser, "brokers")

    open_page(browser, admin_broker, "topics")
    assert topic in page_text(browser)
    screenshot(browser, "topics")
    open_page(browser, admin_broker, f"topic/{topic}")
    text = page_text(browser)
    assert "retention.ms" in text and "3600000" in text, text
    rows = browser.execute_script("return document.querySelectorAll('#page tbody tr').length")
    assert rows >= 2 + 1, text

    open_page(browser, admin_broker, f"records?topic={topic}&partition=0&from=earliest&format=json&follow=1")
    wait_until(
        lambda: browser.execute_script("return document.querySelectorAll('#records tr').length") == 30,
        PAGE_TIMEOUT_S,
        "the partition's 30 records in the record view",
    )
    text = page_text(browser)
    assert '"kind": "first"' in text and "source: test_console" in text, text[:2000]
    # A record produced now is on screen within a second of its ack.
    marker = f"fresh-{time.time_ns()}"
    acked = produce_json(bootstrap, topic, 0, [{"marker": marker}])
    acked_at = time.monotonic()
    assert acked[0][1] == 30, acked
    wait_until(lambda: marker in page_text(browser), RECORD_VISIBLE_S, "the produced record in the browser")
    seen_s = time.monotonic() - acked_at
    assert seen_s <= RECORD_VISIBLE_S, seen_s
    last = browser.execute_script("return document.querySelector('#records tr:last-child').dataset.offset")
    assert last == "30"
    screenshot(browser, "records")

    # Hex and a start by timestamp: the same records, shown another way.
    open_page(browser, admin_broker, f"records?topic={topic}&partition=1&from=timestamp&offset=0&format=hex")
    wait_until(
        lambda: browser.execute_script("return document.querySelectorAll('#records tr').length") == 10,
        PAGE_TIMEOUT_S,
        "partition 1's records from timestamp 0",
    )
    assert "7b 22 6e 22" in page_text(browser)  # {"n"

    open_page(browser, admin_broker, f"groups/{group}")
    text = page_text(browser)
    assert group in text and "Empty" in text, text
    lags = browser.execute_script(
        "return Array.from(document.querySelectorAll('#page table')[1].querySelectorAll('tbody tr'))"
        ".map((r) => Array.from(r.cells).map((c) => c.innerText))"
    )
    assert [topic, "0", "12", "31", "19"] in lags, lags
    assert [topic, "1", "10", "10", "0"] in lags, lags
    points = chart_points(browser)
    assert len(points) == 1 and points[0][0] >= 1, points
    screenshot(browser, "groups")

    # Throughput and latency: lines of at least two points once the
    # history holds enough samples (the page redraws every 5 s).
    open_page(browser, admin_broker, "charts")

    def lines_drawn():
        points = chart_points(browser)
        return len(points) == 4 and all(
            data >= 2 and paths and max(paths) >= 2 for data, paths in points[:2]
        ) and all(data >= 1 for data, _ in points[2:])

    deadline = time.monotonic() + CHART_LINES_TIMEOUT_S
    while not lines_drawn() and time.monotonic() < deadline:
        produce_json(bootstrap, topic, 1, [{"n": "more"}] * 5)
        time.sleep(1)
    assert lines_drawn(), chart_points(browser)
    screenshot(browser, "charts")


def test_console_endpoints_are_bounded_and_read_only(admin_broker, topic):
    bootstrap = admin_broker.bootstrap
    clients.create_topic(bootstrap, topic, 1)
    produce_json(bootstrap, topic, 0, [{"n": n} for n in range(150)])

    status, html = get(f"{admin_broker.admin}/console/")
    assert status == 200 and "/console/console.js" in html
    status, page = get(f"{admin_broker.admin}/v1/console/records?topic={topic}&partition=0&offset=0&limit=1000")
    assert status == 200, page
    # A page is cut at RECORDS_MAX (src/admin/browse.rs).
    assert [r["offset"] for r in page["records"]] == list(range(100))
    assert page["next_offset"] == 100 and page["high_watermark"] == 150
    status, page = get(f"{admin_broker.admin}/v1/console/records?topic={topic}&partition=0&from=latest&limit=5")
    assert [r["offset"] for r in page["records"]] == [145, 146, 147, 148, 149]
    status, page = get(f"{admin_broker.admin}/v1/console/records?topic={topic}&partition=0&offset=150")
    assert status == 200 and page["records"] == [] and page["next_offset"] == 150

    for query, want in (
        (f"topic={topic}&partition=7", 404),
        ("topic=no-such-topic", 404),
        (f"topic={topic}&offset=1&timestamp=1", 400),
        (f"topic={topic}&offset=999", 409),
    ):
        status, answer = get(f"{admin_broker.admin}/v1/console/records?{query}")
        assert status == want and "error" in answer, (query, status, answer)

    status, history = get(f"{admin_broker.admin}/v1/console/history")
    assert status == 200 and history["samples_max"] == 360 and len(history["samples"]) >= 1
    assert history["samples"][-1]["records_in"] >= 150

    # Read-only: nothing but GET and HEAD.
    request = urllib.request.Request(f"{admin_broker.admin}/v1/console/topics", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
    assert refused.value.code == 405


def test_records_ask_for_credentials_while_the_authorizer_is_on(broker_factory):
    port = free_port()
    broker_factory(
        overrides={
            "admin.listeners": f"http://{HOST}:{port}",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "true",
        },
        shards=1,
    )
    # Who reads records is authenticated (test_console_actions.py has the
    # credentials and ACLs); the lists stay open, as /metrics is.
    try:
        urllib.request.urlopen(f"http://{HOST}:{port}/v1/console/records?topic=t&partition=0", timeout=HTTP_TIMEOUT_S)
        raise AssertionError("records shown without credentials")
    except urllib.error.HTTPError as error:
        assert error.code == 401 and error.headers["WWW-Authenticate"].startswith("Basic"), error.headers
    status, _ = get(f"http://{HOST}:{port}/v1/console/brokers")
    assert status == 200
