"""The engine benchmark's replay is what it claims to be (timings are not tested)."""

from fimls.bench.engine_bench import DEFAULT_FILE, keystroke_states, run


def test_keystroke_states_retype_the_file_one_character_at_a_time():
    text = "def f(x):\n    y = x + 1\n    return y\n"
    states = keystroke_states(text, keystrokes=100, start_fraction=0.5)
    # From line 2 on, each line is retyped after its auto-indent with the lines below it in place.
    assert len(states) == len("y = x + 1\n") + len("return y\n")
    assert states[0] == ("def f(x):\n    y    return y\n", len("def f(x):\n    y"))
    for document, cursor in states:
        assert text.startswith(document[:cursor])
        assert text.endswith(document[cursor:])
    assert states[-1] == (text, len(text))
    assert len(keystroke_states(text, keystrokes=5, start_fraction=0.5)) == 5


def test_replay_reports_reuse_against_the_naive_path(test_model_dir):
    report = run(str(test_model_dir), DEFAULT_FILE, keystrokes=6, device="cpu", max_new_tokens=4)
    assert report["keystrokes"] == 6
    for key in ("prompt_tokens_total", "prefill_tokens_computed", "reuse_ratio", "p50_ms", "p95_ms",
                "naive_p50_ms", "naive_p95_ms", "speedup_p50", "spec_acceptance"):
        assert key in report
    assert report["prefill_tokens_computed"] < report["prompt_tokens_total"]
    # Typing on one line changes only the tail in the line-in-middle layout.
    assert report["layouts"]["line-in-middle"]["reuse_ratio"] > report["layouts"]["psm"]["reuse_ratio"]
    assert report["outputs_identical_to_naive"] >= 0.5


def test_gpu_bench_floors_match_the_physical_limits_in_the_design_notes():
    from fimls.bench.gpu_bench import floors_ms

    small = floors_ms("deepseek-coder-1.3b", context=2048, prefill_tokens=4096, device_type="cuda")
    large = floors_ms("deepseek-coder-6.7b", context=2048, prefill_tokens=4096, device_type="cuda")
    # docs/facts.md §3: decode >= 0.4 / 1.6 ms per token at 2K; prefill of 4K >= 15 / 72 ms.
    assert 0.35 < small["decode_ms_per_token"] < 0.45 and 13 < small["prefill_4096_ms"] < 17
    assert 1.45 < large["decode_ms_per_token"] < 1.75 and 65 < large["prefill_4096_ms"] < 80
    assert floors_ms("deepseek-coder-1.3b", 2048, 4096, "cpu") is None
