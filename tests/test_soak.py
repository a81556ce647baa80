"""A short soak of the real server (CI's version of `fimls bench soak`, whose target run is 10 min)."""

import json

import pytest

from conftest import run_fimls

pytestmark = pytest.mark.slow  # starts the server


@pytest.mark.timeout(300)
def test_short_soak_has_no_errors_flat_threads_and_bounded_memory(test_model_dir):
    done = run_fimls("bench", "soak", "--seconds", "25", "--json", "--model", str(test_model_dir), timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["errors"] == 0, report["error_samples"]
    assert report["server_exit_code"] == 0
    assert report["requests_after_warm_up"] >= 150
    assert report["cancelled"] + report["superseded"] >= report["requests"] // 4  # a storm, not a stroll
    assert report["threads_end"] - report["threads_start"] <= 2
    assert report["rss_growth_mb"] <= 50
    assert report["daemon_rss_start_mb"] is not None  # the default backend: the model is in the daemon
    assert report["daemon_rss_growth_mb"] <= 50
    assert report["p95_ms"] is not None
