"""bench.pair_real pairs engines of recorded real-people runs as the run itself pairs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import pair_real

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"
RUN = RESULTS / "engine-shares-computer.json"
MEMBERS = RESULTS / "engine-shares-computer-members.json"


def _paired(a: str, b: str, path: Path = RUN) -> dict:
    results = pair_real.load(path)
    return pair_real.pair(pair_real.resolve(a, path, results), pair_real.resolve(b, path, results))


def test_pair_with_the_reference_matches_the_runs_own_comparison():
    recorded = json.loads(RUN.read_text())
    paired = _paired("ours", "ours-2")
    a, b = paired["a"], paired["b"]
    for point, conds in paired["points"].items():
        for cond, cell in conds.items():
            own = recorded["comparisons"][point]["ours-2"][cond]
            assert cell["p_mcnemar"] == own["p_mcnemar"]
            assert cell[f"only_{a}_detected"] == own["only_ours_detected"]
            assert cell[f"only_{b}_detected"] == own["only_ours-2_detected"]
            op = recorded["engines"]["ours-2"]["operating_points"][point]
            assert cell["missed"][b] == round(op[f"missed_{cond}"] * cell["recordings"])


def test_pair_is_symmetric_and_a_label_names_the_same_engine():
    forward = _paired("ours", "ours-2")
    label = json.loads(RUN.read_text())["engines"]["ours-2"]["label"]
    backward = _paired(label, "ours")
    cell_f = forward["points"]["0.5 FA/h"]["clean"]
    cell_b = backward["points"]["0.5 FA/h"]["clean"]
    assert cell_f["p_mcnemar"] == cell_b["p_mcnemar"]
    assert cell_f[f"only_{forward['b']}_detected"] == cell_b[f"only_{backward['a']}_detected"]


def test_engines_of_two_runs_on_the_same_recordings_pair():
    paired = _paired("ours-2", f"{MEMBERS}:ours")
    cell = paired["points"]["0.5 FA/h"]["clean"]
    assert cell["recordings"] == len(json.loads(RUN.read_text())["meta"]["recording_names"])
    assert 0 <= cell["p_mcnemar"] <= 1


def test_runs_on_different_recordings_do_not_pair(tmp_path):
    other = json.loads(MEMBERS.read_text())
    other["meta"]["recording_names"] = list(reversed(other["meta"]["recording_names"]))
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    with pytest.raises(pair_real.PairError, match="same recordings"):
        _paired("ours", f"{path}:ours")


def test_a_run_without_recording_names_does_not_pair_with_another_run(tmp_path):
    old = json.loads(MEMBERS.read_text())
    del old["meta"]["recording_names"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    with pytest.raises(pair_real.PairError, match="recording_names"):
        _paired("ours", f"{path}:ours")
    # within one run there is nothing to check: its engines scored the same audio
    paired = _paired("ours", "ours-2", path)
    assert paired["points"]["0.5 FA/h"]["clean"]["recordings"] > 0


def test_cli_names_an_unknown_engine_and_exits_non_zero(capsys):
    assert pair_real.main([str(RUN), "ours", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope' is not an engine" in err and "ours-2" in err
    assert pair_real.main([str(RUN), "ours", "ours-2"]) == 0
    assert "| 0.5 FA/h" in capsys.readouterr().out
