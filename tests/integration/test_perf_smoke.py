"""The perf harness end to end at its smallest size: `perf/run --smoke` starts
shoal, runs W1, W3 and W7 for about a second each through `shoal bench`, and
writes RESULTS.md, results.svg and raw.json into the directory it is given.
No timing is asserted: this checks that the harness runs, not how fast."""

import json
import os
import subprocess

import pytest

from conftest import shoal_bin

pytestmark = pytest.mark.shoal_only

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Below the suite's 120 s per-test bound, so a hang fails here with the output.
SMOKE_TIMEOUT_S = 90


def test_perf_smoke_writes_results(tmp_path):
    out = tmp_path / "perf"
    result = subprocess.run(
        [os.path.join(REPO, "perf", "run"), "--smoke", "--out", str(out)],
        env={**os.environ, "SHOAL_BIN": shoal_bin()},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    results = (out / "RESULTS.md").read_text()
    assert "| W1 c=1:" in results
    assert "| W3:" in results
    assert "## Catch-up reads (W7, W8)" in results
    assert (out / "results.svg").read_text().startswith("<svg")
    raw = json.loads((out / "raw.json").read_text())
    for workload in ("W1 c=1", "W3", "W7"):
        (report,) = raw["runs"][workload]["shoal"]
        assert "error" not in report, report
        assert report["records"] > 0
        assert 0 <= report["reactor_stalls_busy"] <= report["reactor_stalls"], report
    assert "| of them busy |" in results
