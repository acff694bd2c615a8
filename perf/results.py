"""What every perf script's RESULTS.md section is made of: the machine it
ran on, the runs that did not fail, medians over them, numbers and
verdicts as table cells, and the replacement of a marked section in place.
"""

import datetime
import os
import platform
import statistics

from procs import REPO, run_bounded


def machine():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    commit = run_bounded(["git", "-C", REPO, "rev-parse", "HEAD"], 10)[1].strip() or "?"
    dirty = run_bounded(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], 10)[1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "memory": first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "loadavg": loadavg(),
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def ok_reports(reports):
    return [r for r in reports if "error" not in r]


def median_of(reports, path):
    values = []
    for report in ok_reports(reports):
        value = report
        for key in path:
            value = (value or {}).get(key)
        if value is not None:
            values.append(value)
    return statistics.median(values) if values else None


def fmt_rate(value):
    return "—" if value is None else f"{value:,.0f}"


def fmt_ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def fmt_bytes(value):
    return f"{value / 1e6:,.0f} MB/s" if isinstance(value, (int, float)) else f"not measured ({value['error']})"


def replace_section(path, begin_marker, end_marker, text):
    """Puts `text` (which starts with begin_marker and ends with end_marker)
    in place of the section so marked in `path`, or at its end."""
    try:
        with open(path) as f:
            current = f.read()
    except FileNotFoundError:
        current = ""
    start, end = current.find(begin_marker), current.find(end_marker)
    if start >= 0 and end > start:
        current = current[:start] + current[end + len(end_marker):].lstrip("\n")
    with open(path, "w") as f:
        f.write(current.rstrip("\n") + "\n\n" + text)


def verdict(met):
    return "—" if met is None else ("met" if met else "**NOT met**")


def errors_of(reports):
    return [r["error"] for r in reports if "error" in r] + [r["error_note"] for r in reports if "error_note" in r]


def one_line(text):
    """An error's text as one table cell: no newlines, no pipes."""
    return " ".join(str(text).replace("|", "/").split())


def cpu_per_million(report):
    cpu, records = report.get("broker_cpu_s"), report.get("records")
    return f"{cpu / records * 1e6:.3f}" if cpu is not None and records else "—"
