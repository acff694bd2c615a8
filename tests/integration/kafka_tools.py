"""Running Kafka's own command-line tools (the 4.4.0 jars that
tests/kafka/setup puts into target/kafka) and reading what they print.

There are no kafka-*.sh scripts: each tool is its main class on the jars'
classpath, `java -cp 'target/kafka/*' <class> ...`, which is all the scripts
do. One JVM per call; the kernel kills it if the test process dies."""

import os
import shutil
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
JARS = os.path.join(REPO, "target", "kafka")
# Warnings and errors on stderr (shown when a call fails), nothing on stdout
# but what the tool itself prints.
LOG_CONFIG = os.path.join(REPO, "tests", "java", "log4j2.properties")
# A short-lived tool JVM starts fastest with the C1 compiler and the serial
# collector; none runs long enough to want more.
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m"]
SETPRIV = shutil.which("setpriv")
# The bound on one call. A tool that waits for records is given a timeout of
# its own well inside this; this one kills a tool that hangs anyway.
TOOL_TIMEOUT_S = 60

# The tools' main classes, by the name of the script that would run them.
TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
CONFIGS = "org.apache.kafka.tools.ConfigCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"
DELETE_RECORDS = "org.apache.kafka.tools.DeleteRecordsCommand"
LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand"
DUMP_LOG = "org.apache.kafka.tools.DumpLogSegments"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
END_TO_END_LATENCY = "org.apache.kafka.tools.EndToEndLatency"
VERIFIABLE_PRODUCER = "org.apache.kafka.tools.VerifiableProducer"
VERIFIABLE_CONSUMER = "org.apache.kafka.tools.VerifiableConsumer"
STREAMS_RESETTER = "org.apache.kafka.tools.StreamsResetter"


def require_tools():
    """Skips the calling test when there is no JVM or no jars (tests/run
    has warned), as the Java client tests do."""
    if shutil.which("java") is None:
        pytest.skip("no java on PATH: Kafka's tools are JVM programs")
    if not os.path.isdir(JARS) or not any(n.startswith("kafka-tools-") for n in os.listdir(JARS)):
        pytest.skip(f"no Kafka jars in {JARS}: run tests/kafka/setup (tests/run does)")


def command(tool, *args):
    cmd = ["java", *JVM_FLAGS, f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", os.path.join(JARS, "*"),
           tool, *map(str, args)]
    return [SETPRIV, "--pdeathsig", "KILL", "--", *cmd] if SETPRIV else cmd


def run(tool, *args, stdin=None, expect_ok=True):
    """Runs one tool to its end. Returns its stdout when expect_ok (and the
    exit code must be 0), else the CompletedProcess."""
    proc = subprocess.run(command(tool, *args), input=stdin, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_S)
    if not expect_ok:
        return proc
    short = tool.rsplit(".", 1)[-1]
    assert proc.returncode == 0, (
        f"{short} {' '.join(map(str, args))} exited with {proc.returncode}:\n"
        f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
    )
    return proc.stdout


class Background:
    """Tools that run beside the test (a consumer waiting for a producer),
    stdout to a file; killed at the end whatever happened."""

    def __init__(self, root):
        self.root = root
        self.procs = []

    def start(self, name, tool, *args):
        path = os.path.join(self.root, f"{name}.out")
        with open(path, "wb") as out, open(path + ".err", "wb") as err:
            proc = subprocess.Popen(command(tool, *args), stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.procs.append(proc)
        return proc, path

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def table(output, first_column):
    """The rows of a column-aligned table whose header line starts with
    first_column (the consumer-groups tool's), as {column: value} dicts."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    header = next((line for line in lines if line[0] == first_column), None)
    assert header is not None, f"no table headed {first_column} in:\n{output}"
    start = lines.index(header) + 1
    rows = []
    for line in lines[start:]:
        if line[0] == first_column or len(line) != len(header):
            break
        rows.append(dict(zip(header, line)))
    return rows


def offsets(output):
    """GetOffsetShell's `topic:partition:offset` lines as {(topic, partition): offset}."""
    out = {}
    for line in output.splitlines():
        topic, partition, offset = line.rsplit(":", 2)
        out[(topic, int(partition))] = int(offset)
    return out
