"""The web console's admin actions (issue 18): off by default (403 with a
reason); on (`admin.console.actions.enabled=true`), a topic created from
the browser's form shows in Kafka's Metadata (confluent-kafka's admin
client) and in the page, Kafka's errors come back as HTTP statuses with
Kafka's names, a group's offsets reset from the browser are where its next
consumer starts, and a group with an active member is not reset. Requests
a page of another site could send (no X-Shoal-Console header, a foreign
Origin) are refused.

With SASL and the ACL authorizer on, the console asks for HTTP Basic
credentials checked against the broker's PLAIN and SCRAM users: none or a
wrong password is 401 with `WWW-Authenticate: Basic`, a user the ACLs do
not allow is 403, one they allow creates a topic, resets a group and reads
records; no password reaches the broker's log."""

import base64
import json
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

import clients
from conftest import HOST, free_port, wait_until
from test_console import (  # noqa: F401 (the browser fixture)
    HTTP_TIMEOUT_S,
    PAGE_TIMEOUT_S,
    browser,
    get,
    needs_chromium,
    open_page,
    page_text,
    screenshot,
)
from test_sasl import (
    ADMIN_PASSWORD,
    ALICE_PLAIN_PASSWORD,
    CAROL_SCRAM_PASSWORD,
    WRONG_PASSWORD,
    add_scram_user,
    assert_no_secret_in_log,
    sasl,
    sasl_overrides,
)
from test_sasl import admin as sasl_admin

pytestmark = pytest.mark.shoal_only

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CREATE = "/v1/console/actions/create-topic"
RESET = "/v1/console/actions/reset-offsets"
# A consumer's first record, or its group joining, on a loaded machine.
CONSUME_TIMEOUT_S = 30


def post(url, payload, headers=None, auth=None, console=True, raw=None):
    """(status, parsed JSON body, response headers) of one POST."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if console:
        sent["X-Shoal-Console"] = "1"
    if auth is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    data = raw if raw is not None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        body = error.read().decode()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body
        return error.code, parsed, error.headers


def get_auth(url, auth=None):
    """(status, parsed JSON body, response headers) of one GET, with Basic
    credentials when `auth` is (user, password)."""
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers


def admin_broker(broker_factory, actions, extra=None):
    port = free_port()
    overrides = {"admin.listeners": f"http://{HOST}:{port}", **(extra or {})}
    if actions:
        overrides["admin.console.actions.enabled"] = "true"
    broker = broker_factory(overrides=overrides, shards=2)
    broker.admin = f"http://{HOST}:{port}"
    return broker


def produce(bootstrap, topic, partition, count, **config):
    prod = clients.producer(bootstrap, linger_ms=0, **config)
    log = clients.DeliveryLog()
    for n in range(count):
        prod.produce(topic, value=f"v{n}".encode(), partition=partition, on_delivery=log)
    clients.flush(prod)
    assert log.errors == []


def first_offset(consumer, timeout_s=CONSUME_TIMEOUT_S):
    """The offset of the first record `consumer` (subscribed) reads."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.2) + 1):
        if time.monotonic() >= deadline:
            break
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(msg.error())
        return msg.offset()
    raise AssertionError("no record within the timeout")


def group_consumer(bootstrap, group, topic, **config):
    consumer = clients.consumer(bootstrap, group_id=group, auto_offset_reset="earliest",
                                enable_partition_eof=False, **config)
    consumer.subscribe([topic])
    return consumer


def test_actions_are_off_by_default(broker_factory):
    broker = admin_broker(broker_factory, actions=False)
    status, answer = get(f"{broker.admin}/v1/console/actions")
    assert status == 200 and answer == {"enabled": False, "authentication": "none"}, answer
    status, answer, _ = post(f"{broker.admin}{CREATE}",
                             {"name": "t", "partitions": 1, "replication_factor": 1})
    assert status == 403 and "admin.console.actions.enabled" in answer["error"], answer
    status, answer, _ = post(f"{broker.admin}{RESET}", {"group": "g", "topic": "t", "to": "earliest"})
    assert status == 403, answer
    assert clients.topic_partitions(broker.bootstrap, "t") is None


@needs_chromium
def test_create_a_topic_and_reset_a_group_from_the_browser(broker_factory, browser, topic):  # noqa: F811
    broker = admin_broker(broker_factory, actions=True)
    bootstrap = broker.bootstrap

    open_page(browser, broker, "topics")
    form = browser.find_element("id", "create-topic")
    form.find_element("name", "name").send_keys(topic)
    partitions = form.find_element("name", "partitions")
    partitions.clear()
    partitions.send_keys("3")
    form.find_element("name", "configs").send_keys("retention.ms=3600000")
    form.find_element("css selector", "button").click()
    wait_until(lambda: f"Created topic {topic}" in page_text(browser), PAGE_TIMEOUT_S,
               "the created topic's message in the page")
    clients.wait_for_partitions(bootstrap, topic, 3)
    configs = clients.describe_topic_configs(bootstrap, topic)
    assert configs["retention.ms"].value == "3600000"
    screenshot(browser, "create-topic")
    # Opened again (by way of another page: the same URL reloads nothing).
    open_page(browser, broker, "brokers")
    open_page(browser, broker, "topics")
    assert any(row.startswith(f"{topic}\t3\t1") for row in topic_rows(browser)), topic_rows(browser)

    # Kafka's errors, with Kafka's names.
    status, answer, _ = post(f"{broker.admin}{CREATE}", {"name": topic, "partitions": 1, "replication_factor": 1})
    assert (status, answer["error"]) == (409, "TOPIC_ALREADY_EXISTS"), answer
    status, answer, _ = post(f"{broker.admin}{CREATE}", {"name": "rf", "partitions": 1, "replication_factor": 3})
    assert (status, answer["error"]) == (400, "INVALID_REPLICATION_FACTOR"), answer
    status, answer, _ = post(f"{broker.admin}{CREATE}", {"name": "bad/name", "partitions": 1, "replication_factor": 1})
    assert (status, answer["error"]) == (400, "INVALID_TOPIC_EXCEPTION"), answer
    # What a page of another site could send.
    status, answer, _ = post(f"{broker.admin}{CREATE}", {"name": "x1", "partitions": 1, "replication_factor": 1},
                             console=False)
    assert status == 403 and "X-Shoal-Console" in answer["error"], answer
    status, answer, _ = post(f"{broker.admin}{CREATE}", {"name": "x2", "partitions": 1, "replication_factor": 1},
                             headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-site" in answer["error"], answer
    status, answer, _ = post(f"{broker.admin}{CREATE}", None, raw=b"{not json")
    assert status == 400, answer
    assert clients.topic_partitions(bootstrap, "x1") is None and clients.topic_partitions(bootstrap, "x2") is None

    # A group that read partition 0 to its end, then left.
    produce(bootstrap, topic, 0, 10)
    group = f"{topic}-group"
    consumer = group_consumer(bootstrap, group, topic)
    try:
        assert first_offset(consumer) == 0
        consumer.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
    finally:
        consumer.close()

    # From the group's page, its link to the reset form.
    open_page(browser, broker, f"groups/{group}")
    browser.execute_script("delete document.body.dataset.loaded")
    browser.find_element("id", "reset-link").click()
    wait_until(lambda: browser.execute_script("return document.body.dataset.loaded") == "reset",
               PAGE_TIMEOUT_S, "the reset form")
    form = browser.find_element("id", "reset-offsets")
    form.find_element("name", "partition").send_keys("0")
    from selenium.webdriver.support.ui import Select

    Select(form.find_element("name", "to")).select_by_value("offset")
    form.find_element("name", "offset").send_keys("4")
    form.find_element("css selector", "button").click()
    wait_until(lambda: "partition 0 → 4" in page_text(browser), PAGE_TIMEOUT_S, "the reset's result in the page")
    screenshot(browser, "reset-offsets")
    assert clients.committed(bootstrap, group, topic, 1) == {0: 4}

    # The group's next consumer starts at the reset offset; while it is a
    # member, the group is not reset.
    consumer = group_consumer(bootstrap, group, topic)
    try:
        assert first_offset(consumer) == 4
        status, answer, _ = post(f"{broker.admin}{RESET}", {"group": group, "topic": topic, "to": "earliest"})
        assert (status, answer["error"]) == (409, "NON_EMPTY_GROUP"), answer
        assert "inactive" in answer["message"], answer
    finally:
        consumer.close()

    def reset(to, **more):
        status, answer, _ = post(f"{broker.admin}{RESET}", {"group": group, "topic": topic, "to": to, **more})
        assert status == 200, answer
        return {o["partition"]: o["offset"] for o in answer["offsets"]}

    # Empty again once its member left (the leave is asynchronous).
    wait_until(lambda: post(f"{broker.admin}{RESET}", {"group": group, "topic": topic, "to": "latest"})[0] == 200,
               PAGE_TIMEOUT_S, "the group empty after its consumer left")
    assert reset("latest") == {0: 10, 1: 0, 2: 0}
    assert reset("earliest", partitions=[0]) == {0: 0}
    # A given offset is kept within the log, as kafka-consumer-groups does.
    assert reset("offset", partitions=[0], offset=99) == {0: 10}
    status, answer, _ = post(f"{broker.admin}{RESET}", {"group": group, "topic": topic, "to": "offset"})
    assert status == 400, answer
    status, answer, _ = post(f"{broker.admin}{RESET}", {"group": group, "topic": "nope", "to": "latest"})
    assert (status, answer["error"]) == (404, "UNKNOWN_TOPIC_OR_PARTITION"), answer
    assert clients.committed(bootstrap, group, topic, 3) == {0: 10, 1: 0, 2: 0}


def topic_rows(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#page tbody tr')).map((r) => r.innerText)")


def partitions_of(client, topic):
    """Partition ids of `topic` per Metadata through `client` (a SASL admin
    client: `clients.topic_partitions` would make a plaintext one, as an
    idle client is falsy), or None."""
    found = client.list_topics(timeout=HTTP_TIMEOUT_S).topics.get(topic)
    return None if found is None or found.error is not None else sorted(found.partitions)


def acl(restype, name, operation, principal):
    return AclBinding(restype, name, ResourcePatternType.LITERAL, principal, "*", operation,
                      AclPermissionType.ALLOW)


def test_basic_credentials_and_acls_decide_what_a_console_user_does(broker_factory, topic):
    extra = {
        **sasl_overrides(),
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin",
        "allow.everyone.if.no.acl.found": "false",
    }
    broker = admin_broker(broker_factory, actions=True, extra=extra)
    bootstrap = broker.bootstrap
    admin_auth = sasl("PLAIN", "admin", ADMIN_PASSWORD)
    alice = ("alice", ALICE_PLAIN_PASSWORD)
    carol = ("carol", CAROL_SCRAM_PASSWORD)
    add_scram_user(bootstrap, "carol", CAROL_SCRAM_PASSWORD)
    group = f"{topic}-group"
    client = sasl_admin(bootstrap)
    futures = client.create_acls([
        acl(ResourceType.TOPIC, topic, AclOperation.CREATE, "User:alice"),
        acl(ResourceType.TOPIC, topic, AclOperation.READ, "User:alice"),
        acl(ResourceType.GROUP, group, AclOperation.READ, "User:alice"),
    ], request_timeout=HTTP_TIMEOUT_S)
    for future in futures.values():
        future.result(timeout=HTTP_TIMEOUT_S)

    status, answer = get(f"{broker.admin}/v1/console/actions")
    assert answer == {"enabled": True, "authentication": "basic"}, answer
    create = {"name": topic, "partitions": 2, "replication_factor": 1}
    records = f"{broker.admin}/v1/console/records?topic={topic}&partition=0&from=earliest"

    # No credentials, a wrong password, an unknown user: 401 and a challenge.
    for auth in (None, ("alice", WRONG_PASSWORD), ("carol", WRONG_PASSWORD), ("nobody", WRONG_PASSWORD)):
        status, answer, headers = post(f"{broker.admin}{CREATE}", create, auth=auth)
        assert status == 401, (auth, answer)
        assert headers["WWW-Authenticate"].startswith("Basic"), headers
    status, _, headers = get_auth(records)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")

    # carol (SCRAM) authenticates once her credential reached the admin
    # shard, but no ACL lets her create or read.
    wait_until(lambda: post(f"{broker.admin}{CREATE}", create, auth=carol)[0] == 403, PAGE_TIMEOUT_S,
               "carol's SCRAM credential on the admin shard")
    assert partitions_of(client, topic) is None

    # alice (PLAIN) may create the topic, and read it.
    wait_until(lambda: post(f"{broker.admin}{CREATE}", create, auth=alice)[0] == 200, PAGE_TIMEOUT_S,
               "alice's ACLs on every shard")
    wait_until(lambda: partitions_of(client, topic) == [0, 1], PAGE_TIMEOUT_S,
               "the topic in Metadata")
    produce(bootstrap, topic, 0, 5, **admin_auth)
    status, page, _ = get_auth(records, auth=alice)
    assert status == 200 and [r["offset"] for r in page["records"]] == [0, 1, 2, 3, 4], page
    status, answer, _ = get_auth(records, auth=carol)
    assert status == 403, answer

    # Resetting needs READ on the group and on the topic.
    reset = {"group": group, "topic": topic, "to": "offset", "partitions": [0], "offset": 3}
    status, answer, _ = post(f"{broker.admin}{RESET}", reset, auth=carol)
    assert status == 403 and "group" in answer["message"], answer
    status, answer, _ = post(f"{broker.admin}{RESET}", {**reset, "topic": "__consumer_offsets"}, auth=alice)
    assert status == 403 and "topic" in answer["message"], answer
    status, answer, _ = post(f"{broker.admin}{RESET}", reset, auth=alice)
    assert status == 200 and answer["offsets"] == [{"partition": 0, "offset": 3}], answer
    assert clients.committed(bootstrap, group, topic, 1, **admin_auth) == {0: 3}

    # The superuser may do all of it.
    other = f"{topic}-admin"
    status, answer, _ = post(f"{broker.admin}{CREATE}", {**create, "name": other}, auth=("admin", ADMIN_PASSWORD))
    assert status == 200, answer
    assert_no_secret_in_log(broker)
