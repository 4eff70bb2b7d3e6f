"""The speed-target check of bench/inference_throughput.py (issue #20).

The bench itself times real models and is run by hand; here only the
pure function that turns its JSON records into the ``targets`` line is
tested, on records written out by hand.
"""

from __future__ import annotations

import doctest

from tests.conftest import load_script

bench = load_script("bench/inference_throughput.py")


def _cell(backend: str, eps: float, seconds: float = 3.0, **kw) -> dict:
    return {
        "model": "budget",
        "backend": backend,
        "threads": 1,
        "batch": 1,
        "utterance_s": seconds,
        "embeddings_per_s": eps,
        **kw,
    }


COLD = {
    "what": "runtime_cold_start",
    "precision": "int8",
    "import_load_first_embedding_s": 0.3,
}


def test_docstring_examples_run():
    result = doctest.testmod(bench)
    assert result.attempted >= 3 and result.failed == 0


def test_every_clip_length_must_reach_the_ratio():
    records = [
        _cell("onnx-int8", 100.0, 3.0),
        _cell("resemblyzer", 20.0, 3.0),
        _cell("onnx-int8", 30.0, 10.0),
        _cell("resemblyzer", 20.0, 10.0),  # 1.5x: below 2x
        COLD,
    ]
    t = bench.speed_targets(records)
    assert t["int8_vs_resemblyzer"] == {"3.0": 5.0, "10.0": 1.5}
    assert t["met"] is False
    records[2] = _cell("onnx-int8", 40.0, 10.0)
    assert bench.speed_targets(records)["met"] is True


def test_only_the_budget_model_at_one_thread_batch_one_counts():
    records = [
        _cell("onnx-int8", 100.0),
        _cell("resemblyzer", 20.0),
        _cell("onnx-int8", 1.0, model="paper"),
        _cell("onnx-int8", 1.0, threads=2),
        _cell("onnx-int8", 1.0, batch=32),
        COLD,
    ]
    t = bench.speed_targets(records)
    assert t["int8_vs_resemblyzer"] == {"3.0": 5.0} and t["met"] is True


def test_slow_or_missing_cold_start_misses_the_target():
    fast = [_cell("onnx-int8", 100.0), _cell("resemblyzer", 20.0)]
    assert bench.speed_targets(fast)["met"] is False  # not measured
    slow = {**COLD, "import_load_first_embedding_s": 1.4}
    t = bench.speed_targets([*fast, slow])
    assert t["cold_start_s"] == 1.4 and t["met"] is False
