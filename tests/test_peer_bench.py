"""`fimls bench peer` runs end to end against the real llama-server and reports what it promises;
the figures are for bench/RESULTS.md, but one property is not a timing: fimls' prompt layout lets
llama-server's prefix cache serve all but the typed tail, where llama.vim's /infill request does not."""

import pytest

from fimls.bench.peer_bench import run
from fimls.bench.engine_bench import DEFAULT_FILE

pytestmark = pytest.mark.slow  # runs llama-server


def test_peer_bench_reports_every_path_and_the_team_view(llama_server_binary):
    from pathlib import Path

    report = run(DEFAULT_FILE, 8, Path(llama_server_binary), (1, 2))
    for key in ("local", "server", "infill", "naive"):
        assert report[f"{key}_p50_ms"] > 0 and report[f"{key}_p95_ms"] >= report[f"{key}_p50_ms"]
    assert [entry["k"] for entry in report["typists"]] == [1, 2]
    assert all(entry["errors"] == 0 and entry["p50_ms"] > 0 for entry in report["typists"])
    # Measured by llama-server itself (/metrics): fimls sends the same prompt again but the typed tail.
    assert report["server_prompt_tokens_per_key_p50"] <= 4
    assert report["server_prompt_tokens_per_key_p50"] < report["infill_prompt_tokens_per_key_p50"]
