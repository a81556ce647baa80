"""Supersession and cancellation: only the newest request per document is computed."""

import asyncio
import time

import pytest

from fimls.contract import PromptParts
from fimls.engine.model.decode import KVSession, generate
from fimls.engine.worker import ModelWorker, Superseded

PARTS = PromptParts(header="#a.py\n", prefix="def f(x):\n    ", suffix="\n")


def _long_completion(engine, steps):
    def run(cancelled):
        def counting_cancelled():
            steps.append(1)
            return cancelled()

        return engine.complete(PARTS, max_new_tokens=400, stop_ids=frozenset(), cancelled=counting_cancelled)

    return run


async def test_a_newer_request_for_the_same_document_supersedes_the_older(engine):
    worker = ModelWorker()
    first_steps, second_steps = [], []
    first = asyncio.ensure_future(worker.generate("file:///a.py", _long_completion(engine, first_steps)))
    while not first_steps:  # the first generation is running
        await asyncio.sleep(0.001)
    second = asyncio.ensure_future(worker.generate("file:///a.py", _long_completion(engine, second_steps)))
    with pytest.raises(Superseded):
        await first
    result = await second
    # The first stopped at its next decode step rather than running its 400 tokens.
    assert len(first_steps) < 400 and len(second_steps) == 399
    assert len(result.generation.token_ids) == 400
    worker.shutdown()


async def test_requests_queued_behind_a_newer_one_never_reach_the_model(engine):
    worker = ModelWorker()
    blocker_steps, calls = [], []
    blocker = asyncio.ensure_future(worker.generate("file:///other.py", _long_completion(engine, blocker_steps)))
    while not blocker_steps:
        await asyncio.sleep(0.001)
    queued = [asyncio.ensure_future(worker.generate("file:///a.py", lambda c, i=i: calls.append(i) or i)) for i in range(5)]
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert [type(r) for r in results[:4]] == [Superseded] * 4
    assert results[4] == 4 and calls == [4]
    await blocker
    worker.shutdown()


async def test_caller_cancellation_stops_the_generation(engine):
    worker = ModelWorker()
    steps = []
    task = asyncio.ensure_future(worker.generate("file:///a.py", _long_completion(engine, steps)))
    while not steps:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The worker is free again at once: a new request is served without waiting out 400 tokens.
    assert await worker.call(lambda: "free") == "free"
    assert len(steps) < 400
    worker.shutdown()


def test_cancelled_generation_stops_within_one_decode_step(engine):
    from transformers import DynamicCache

    config = engine.loaded.model.config
    session = KVSession(make_cache=lambda: DynamicCache(config=config))
    checks = []

    def cancel_after_three():
        checks.append(1)
        return len(checks) >= 3

    gen = generate(
        engine.loaded.model, session, engine.render(PARTS), max_new_tokens=50, stop_ids=frozenset(),
        device=engine.loaded.device, cancelled=cancel_after_three, clock=time.perf_counter,
    )
    assert gen.stop_reason == "cancelled"
    assert len(gen.token_ids) == 3  # the token picked when the flag was seen, none after
