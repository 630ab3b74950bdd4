"""training/extra_mining.py: which runs it accepts, and what its streams are made of. The whole round
(mine, fine-tune, export) runs on a smoke seed in `make model-smoke`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="training needs torch (the training extra)")

from training import extra_mining as em  # noqa: E402
from training.dataset import ClipArrays  # noqa: E402
from training.frontend_experiment import experiment_config  # noqa: E402
from training.make_model import FINAL, HARD_NEGATIVES, LOGMEL  # noqa: E402


def _config(seed: int):  # noqa: ANN202
    return experiment_config("espresso", "espresso", "smoke", "gru", None, None, None, seed, LOGMEL)


def _finished_run(work: Path, seed: int) -> None:
    """A work folder as make_model leaves it after mining (tiny windows stand in for mined ones)."""
    work.mkdir(parents=True)
    config = _config(seed)
    (work / "run-config.json").write_text(json.dumps(config.to_dict()))
    (work / FINAL).write_bytes(b"weights")
    for round_no in range(1, config.mining.rounds + 1):
        windows = np.full((round_no, 4, 40), round_no, dtype=np.float16)
        zeros = np.zeros((round_no, 4), dtype=np.uint8)
        ClipArrays(windows, zeros, zeros + 1, ["hard_negative"] * round_no).save(
            work / HARD_NEGATIVES.format(round_no)
        )


def test_a_finished_run_gives_back_every_rounds_windows(tmp_path: Path) -> None:
    _finished_run(tmp_path / "work", 8)
    earlier = em.check_run(_config(8), tmp_path / "work")
    rounds = _config(8).mining.rounds
    assert earlier is not None and len(earlier) == sum(range(1, rounds + 1))
    assert sorted(set(earlier.features[:, 0, 0].tolist())) == list(range(1, rounds + 1))


def test_a_run_of_another_recipe_is_refused(tmp_path: Path) -> None:
    _finished_run(tmp_path / "work", 8)
    with pytest.raises(em.RunError, match=r"another recipe \(differs in: mining, train\)"):
        em.check_run(_config(9), tmp_path / "work")


def test_a_run_recorded_before_an_option_existed_counts_as_its_default(tmp_path: Path) -> None:
    """Runs trained before --band-limit-p existed have no such key: they were trained with it off."""
    _finished_run(tmp_path / "work", 8)
    saved = tmp_path / "work" / "run-config.json"
    recorded = json.loads(saved.read_text())
    del recorded["dataset"]["augment"]["band_limit_p"], recorded["dataset"]["augment"]["band_limit_hz"]
    saved.write_text(json.dumps(recorded))
    assert em.check_run(_config(8), tmp_path / "work") is not None
    banded = experiment_config(
        "espresso", "espresso", "smoke", "gru", None, None, None, 8, LOGMEL, None, None, 0.3
    )
    with pytest.raises(em.RunError, match=r"differs in: dataset\)"):
        em.check_run(banded, tmp_path / "work")


def test_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    _finished_run(tmp_path / "work", 8)
    (tmp_path / "work" / FINAL).unlink()
    with pytest.raises(em.RunError, match="no finished run"):
        em.check_run(_config(8), tmp_path / "work")
    _finished_run(tmp_path / "other", 8)
    last = _config(8).mining.rounds
    for path in (tmp_path / "other" / HARD_NEGATIVES.format(last)).iterdir():
        path.unlink()
    (tmp_path / "other" / HARD_NEGATIVES.format(last)).rmdir()
    with pytest.raises(em.RunError, match="mining rounds did not finish"):
        em.check_run(_config(8), tmp_path / "other")


def test_the_command_line_says_one_line_for_a_missing_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = em.main(
        ["--word", "espresso", "--profile", "smoke", "--mix", "soundalike", "--run-dir", str(tmp_path),
         "--output", str(tmp_path / "x.onnx")]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no finished run" in err and "\n" not in err


def test_the_soundalike_streams_are_speech_mostly_sound_alikes_and_the_control_is_the_recipe() -> None:
    ordinary, soundalike = em.MIXES["ordinary"], em.MIXES["soundalike"]
    assert ordinary == em.StreamMix()  # the recipe's own rounds draw their streams this way
    assert soundalike.music_noise_p == 0.0
    weights = soundalike.speech_weights
    assert weights is not None and max(weights) == weights[2] and sum(weights) == pytest.approx(1.0)
