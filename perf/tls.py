#!/usr/bin/env python3
"""What TLS and SASL cost (issue 17, "Performance"): W1 and W3 over
SASL_SSL against the same broker's PLAINTEXT listener, for shoal and for
Apache Kafka in the same run.

    perf/tls.py [--quick] [--out DIR] [--shoal-bin PATH]

Each broker runs with two client listeners, PLAINTEXT and SASL_SSL (TLS 1.3
with a P-256 certificate made here by `openssl`, SASL PLAIN: the login
costs once per connection, the records pay for TLS). The clients are the
independent ones at their defaults (perf/clients.py): confluent-kafka's
W1 (`acks=all`, 100 B records, 8 partitions) and W3 (from the beginning,
librdkafka's default and with `fetch.queue.backoff.ms` lowered), and
kafka-producer-perf-test. `shoal bench` speaks PLAINTEXT only, so it
preloads and warms up over the PLAINTEXT listener. Each run starts fresh
brokers; the median of the runs is reported with the broker's CPU per
million records. The target: TLS costs shoal at most 25% of its
PLAINTEXT throughput. The section goes into RESULTS.md between its markers.
"""

import argparse
import os
import subprocess
import sys
import uuid

from procs import (
    HOST, REPO, VENV, CommandsLog, _cleanup_everything, free_port, last_json_line, make_temp_dir, remove_temp_dir,
    tail,
)
from brokers import KAFKA_JARS, Kafka, Shoal, kafka_jars_present
from clients import (
    PERF_TEST_HEAP, PRODUCER_PERF_TEST, TUNED_FETCH_QUEUE_BACKOFF_MS, measured, perf_test_report,
    perf_test_timeout_s, preload,
)
from results import (
    cpu_per_million, fmt_rate, fmt_ratio, loadavg, machine, median_of, one_line, replace_section, verdict,
)
from runs import FULL, PARTITIONS, QUICK, create_topic, prepare_topic

SECTION_BEGIN = "<!-- section:tls -->"
SECTION_END = "<!-- /section:tls -->"
COMMANDS = CommandsLog()
PLAINTEXT, SASL_SSL = "PLAINTEXT", "SASL_SSL"
PROTOCOLS = (PLAINTEXT, SASL_SSL)
BROKERS = ("shoal", "kafka")
# The client's login on the SASL_SSL listener (PLAIN, in the listener's JAAS config).
USER, PASSWORD = "perf", "perf-secret"
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        f'username="{USER}" password="{PASSWORD}" user_{USER}="{PASSWORD}";')
# The bound: shoal over SASL_SSL keeps at least this share of its
# PLAINTEXT records/s.
TLS_KEEPS_AT_LEAST = 0.75
OPENSSL_TIMEOUT_S = 30.0
CERT_DAYS = "2"
# (row key, title, the client run)
ROWS = (
    ("W1 confluent", "W1: produce acks=all, confluent-kafka at its defaults", "produce"),
    ("W1 perf-test", "W1: produce, kafka-producer-perf-test (acks=all)", "perf_test"),
    ("W3 confluent", "W3: consume from the beginning, confluent-kafka at its defaults", "consume"),
    ("W3 confluent tuned", f"W3: the same, fetch.queue.backoff.ms={TUNED_FETCH_QUEUE_BACKOFF_MS}",
     "consume_tuned"),
)


# ---------------------------------------------------------------- certificates


def make_pki(root):
    """A CA and a server certificate it signs (SANs localhost and
    127.0.0.1), as PEM files: {"ca": path, "keystore": key + chain, "root": root}."""
    def openssl(*args):
        done = subprocess.run(["openssl", *args], cwd=root, capture_output=True, text=True,
                              timeout=OPENSSL_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()[-300:]}")

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", CERT_DAYS,
            "-subj", "/CN=shoal-perf-ca")
    openssl("req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(root, "server.ext"), "w") as f:
        f.write(f"basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:{HOST}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", CERT_DAYS, "-extfile", "server.ext")
    keystore = os.path.join(root, "keystore.pem")
    with open(keystore, "w") as out:
        for name in ("server.key", "server.pem", "ca.pem"):
            with open(os.path.join(root, name)) as f:
                out.write(f.read())
    return {"ca": os.path.join(root, "ca.pem"), "keystore": keystore, "root": root}


def server_tls_configs(pki):
    """The SASL_SSL listener's configs, in Kafka's names (both brokers read them)."""
    return {
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": pki["keystore"],
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": pki["ca"],
    }


def client_tls_config(pki):
    """librdkafka's properties for the SASL_SSL listener."""
    return {"security.protocol": SASL_SSL, "sasl.mechanism": "PLAIN", "sasl.username": USER,
            "sasl.password": PASSWORD, "ssl.ca.location": pki["ca"]}


def java_tls_config(pki):
    """The Java client's properties for the SASL_SSL listener."""
    return {"security.protocol": SASL_SSL, "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": JAAS.replace(f' user_{USER}="{PASSWORD}"', ""),
            "ssl.truststore.type": "PEM", "ssl.truststore.location": pki["ca"]}


# ---------------------------------------------------------------- brokers


class TlsShoal(Shoal):
    """shoal with a PLAINTEXT listener (its bootstrap, for the tools) and a
    SASL_SSL one."""

    def __init__(self, shoal_bin, pki):
        overrides = [f"{k}={v}" for k, v in server_tls_configs(pki).items()]
        overrides.append(f"listener.security.protocol.map={PLAINTEXT}:{PLAINTEXT},{SASL_SSL}:{SASL_SSL}")
        super().__init__(shoal_bin, overrides=overrides)
        self.pki = pki
        self.tls_port = free_port()
        self.tls_bootstrap = f"{HOST}:{self.tls_port}"

    def command(self):
        listeners = f"{PLAINTEXT}://{self.bootstrap},{SASL_SSL}://{self.tls_bootstrap}"
        command = super().command()
        for flag in ("--listen", "--advertise"):
            command[command.index(flag) + 1] = listeners
        return command

    def is_ready(self):
        return "shoal ready on" in tail(self.log_path)

    def placeholders(self):
        return {**super().placeholders(), f":{self.tls_port}": ":$TLS_PORT", self.pki["root"]: "$PKI"}


class TlsKafka(Kafka):
    """Kafka with the same two listeners (tests/kafka/kafka-server's
    overrides; its controller listener stays PLAINTEXT)."""

    def __init__(self, pki):
        super().__init__()
        self.pki = pki
        self.tls_port = free_port()
        self.tls_bootstrap = f"{HOST}:{self.tls_port}"

    def command(self):
        listeners = f"{PLAINTEXT}://{self.bootstrap},{SASL_SSL}://{self.tls_bootstrap}"
        configs = {
            **server_tls_configs(self.pki),
            "listeners": f"{listeners},CONTROLLER://{HOST}:{{controller_port}}",
            "advertised.listeners": listeners,
            "listener.security.protocol.map": f"{PLAINTEXT}:{PLAINTEXT},{SASL_SSL}:{SASL_SSL},CONTROLLER:PLAINTEXT",
        }
        return [*super().command(), *(f"{k}={v}" for k, v in configs.items())]

    def placeholders(self):
        return {**super().placeholders(), f":{self.tls_port}": ":$TLS_PORT", self.pki["root"]: "$PKI"}


class Listener:
    """One listener of a broker, as perf/clients.py's runs see a broker."""

    def __init__(self, broker, protocol):
        self.broker = broker
        self.bootstrap = broker.tls_bootstrap if protocol == SASL_SSL else broker.bootstrap

    def placeholders(self):
        return self.broker.placeholders()

    def cpu_seconds(self):
        return self.broker.cpu_seconds()


# ---------------------------------------------------------------- runs


def confluent(listener, topic, mode, extra, protocol, pki, size):
    python = os.path.join(VENV, "bin", "python")
    command = [python, os.path.join(REPO, "perf", "kafka_client.py"), mode, "--bootstrap", listener.bootstrap,
               "--topic", topic, "--partitions", str(PARTITIONS), "--record-size", "100", *extra]
    if protocol == SASL_SSL:
        command += [arg for k, v in client_tls_config(pki).items() for arg in ("--config", f"{k}={v}")]
    COMMANDS.add(command, {**listener.placeholders(), topic: "$TOPIC"})
    return measured(listener, command, size, last_json_line)


def perf_test(listener, topic, protocol, pki, root, size):
    command = ["java", PERF_TEST_HEAP, "-cp", os.path.join(KAFKA_JARS, "*"), PRODUCER_PERF_TEST,
               "--bootstrap-server", listener.bootstrap, "--topic", topic,
               "--num-records", str(size.perf_test_records), "--record-size", "100",
               "--throughput", "-1", "--command-property", "acks=all"]
    if protocol == SASL_SSL:
        config = os.path.join(root, "client.properties")
        with open(config, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in java_tls_config(pki).items())
        command += ["--producer.config", config]
    COMMANDS.add(command, {**listener.placeholders(), topic: "$TOPIC"})
    return measured(listener, command, size, perf_test_report, timeout_s=perf_test_timeout_s(size),
                    partial_ok=True)


def run_broker(broker, shoal_bin, pki, root, size, protocols):
    """Every row over both listeners of one fresh broker, in the order
    `protocols` gives (alternated run by run): {row: {protocol: report}}."""
    results = {key: {} for key, _, _ in ROWS}
    broker.start(COMMANDS)
    read_topic = f"perf-{uuid.uuid4().hex[:8]}"
    create_topic(broker, shoal_bin, read_topic, COMMANDS)
    for protocol in protocols:
        listener = Listener(broker, protocol)
        topic = f"perf-{uuid.uuid4().hex[:8]}"
        prepare_topic(broker, shoal_bin, topic, size, COMMANDS)
        results["W1 confluent"][protocol] = confluent(
            listener, topic, "produce", ["--duration", str(size.duration_s)], protocol, pki, size)
        if kafka_jars_present():
            topic = f"perf-{uuid.uuid4().hex[:8]}"
            create_topic(broker, shoal_bin, topic, COMMANDS)
            results["W1 perf-test"][protocol] = perf_test(listener, topic, protocol, pki, root, size)
    error = preload(broker, shoal_bin, read_topic, size, COMMANDS)
    for protocol in protocols:
        listener = Listener(broker, protocol)
        for key, mode, extra in (("W3 confluent", "consume", []),
                                 ("W3 confluent tuned", "consume",
                                  ["--fetch-queue-backoff-ms", str(TUNED_FETCH_QUEUE_BACKOFF_MS)])):
            extra = ["--records", str(size.consume_records), *extra]
            results[key][protocol] = error or confluent(listener, read_topic, mode, extra, protocol, pki, size)
    return results


def figure(report):
    if report is None:
        return "-"
    if "error" in report:
        return "failed: " + one_line(report["error"][-120:])
    return f"{report['records_per_s']:,.0f}/s, {cpu_per_million(report)} CPU-s/M"


def section(argv, size, results, info, load_end):
    lines = [SECTION_BEGIN, "## TLS and SASL: SASL_SSL against PLAINTEXT, shoal and Kafka (issue 17)", "",
             f"`perf/run --tls {' '.join(argv)}`, {info['date']}, commit `{info['commit']}`, {info['nproc']} × "
             f"{info['cpu']}, load average (1/5/15 min) at the start {info['loadavg']}, at the end {load_end}. "
             f"Median of {size.runs} run(s) per cell; each run starts each broker afresh with two client "
             "listeners, PLAINTEXT and SASL_SSL (TLS with a P-256 certificate, SASL PLAIN), and runs every "
             "row over both, which listener first alternating run by run. 100 B records, 8 partitions; shoal durable (fsync before acks=all answers), "
             "Kafka at its default. The clients run at their defaults; `shoal bench` only preloads W3's "
             "topic and warms up, over PLAINTEXT.", "",
             f"Target: TLS costs shoal at most {100 - TLS_KEEPS_AT_LEAST * 100:.0f}% of its PLAINTEXT "
             "records/s (its SASL_SSL/PLAINTEXT ratio at least "
             f"{TLS_KEEPS_AT_LEAST:.2f}).", "",
             "| workload | shoal PLAINTEXT | shoal SASL_SSL | shoal TLS/plain | kafka PLAINTEXT | kafka SASL_SSL "
             "| kafka TLS/plain | shoal/kafka over SASL_SSL | shoal's TLS cost within 25% |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, title, _ in ROWS:
        m = {(b, p): median_of(results[b][key][p], ["records_per_s"]) for b in BROKERS for p in PROTOCOLS}
        if all(v is None for v in m.values()):
            continue
        shoal_ratio = (m["shoal", SASL_SSL] / m["shoal", PLAINTEXT]
                       if m["shoal", SASL_SSL] and m["shoal", PLAINTEXT] else None)
        met = None if shoal_ratio is None else shoal_ratio >= TLS_KEEPS_AT_LEAST
        lines.append(
            f"| {title} | {fmt_rate(m['shoal', PLAINTEXT])} | {fmt_rate(m['shoal', SASL_SSL])} | "
            f"{fmt_ratio(m['shoal', SASL_SSL], m['shoal', PLAINTEXT])} | {fmt_rate(m['kafka', PLAINTEXT])} | "
            f"{fmt_rate(m['kafka', SASL_SSL])} | {fmt_ratio(m['kafka', SASL_SSL], m['kafka', PLAINTEXT])} | "
            f"{fmt_ratio(m['shoal', SASL_SSL], m['kafka', SASL_SSL])} | {verdict(met) if met is not None else '-'} |")
    lines += ["", "Every run, with the broker's CPU per million records:", "",
              "| workload | broker | listener | runs |", "|---|---|---|---|"]
    for key, _, _ in ROWS:
        for b in BROKERS:
            for p in PROTOCOLS:
                reports = results[b][key][p]
                if reports:
                    lines.append(f"| {key} | {b} | {p} | {'; '.join(figure(r) for r in reports)} |")
    lines += ["", "```", *COMMANDS.lines, "```", SECTION_END]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short run per cell")
    parser.add_argument("--out", default=os.path.join(REPO, "perf"), help="where RESULTS.md is")
    parser.add_argument("--shoal-bin", default=os.environ.get("SHOAL_BIN")
                        or os.path.join(REPO, "target", "release", "shoal"))
    args = parser.parse_args()
    if not os.access(args.shoal_bin, os.X_OK):
        sys.exit(f"perf: {args.shoal_bin} is not an executable; run cargo build --release")
    if not kafka_jars_present():
        sys.exit("perf: Kafka's jars are missing: run tests/kafka/setup")
    size = QUICK if args.quick else FULL
    info = machine()
    results = {b: {key: {p: [] for p in PROTOCOLS} for key, _, _ in ROWS} for b in BROKERS}
    root = make_temp_dir("perf-tls-")
    try:
        pki = make_pki(root)
        for run in range(size.runs):
            for name in BROKERS:
                broker = TlsShoal(args.shoal_bin, pki) if name == "shoal" else TlsKafka(pki)
                try:
                    order = PROTOCOLS if run % 2 == 0 else PROTOCOLS[::-1]
                    got = run_broker(broker, args.shoal_bin, pki, root, size, order)
                except Exception as error:  # noqa: BLE001
                    got = {key: {p: {"error": str(error).strip()[-300:]} for p in PROTOCOLS} for key, _, _ in ROWS}
                finally:
                    broker.close()
                for key, by_protocol in got.items():
                    for p, report in by_protocol.items():
                        results[name][key][p].append(report)
                        print(f"perf: {key} run {run + 1}/{size.runs} {name} {p}: {figure(report)}",
                              file=sys.stderr)
    finally:
        _cleanup_everything()
        remove_temp_dir(root)
    text = section(sys.argv[1:], size, results, info, loadavg())
    replace_section(os.path.join(args.out, "RESULTS.md"), SECTION_BEGIN, SECTION_END, text)
    print(text)
    failed = any("error" in r for b in BROKERS for by_p in results[b].values() for rs in by_p.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
