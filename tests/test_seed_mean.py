"""training/seed_mean.py: the per-seed recipes and the shared dataset cache. The whole path (two smoke
seeds trained, merged and re-scored) runs in `make model-smoke`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="training needs torch (the training extra)")

from training import seed_mean as sm  # noqa: E402
from training.make_model import LOGMEL, profile_config  # noqa: E402


def test_each_seed_is_the_recipe_with_only_the_training_seed_changed() -> None:
    recipe = profile_config("espresso", "espresso", "smoke", None, LOGMEL)
    configs = sm.seed_configs("espresso", "espresso", "smoke", [recipe.train.seed, 8], LOGMEL, None)
    assert configs[0] == recipe  # the recipe's own seed is the recipe, exactly
    other = configs[1]
    assert other.train.seed == 8 and other.mining.seed != recipe.mining.seed
    assert dataclasses.replace(other.train, seed=recipe.train.seed) == recipe.train
    assert (other.dataset, other.features, other.network) == (recipe.dataset, recipe.features, recipe.network)


@pytest.mark.parametrize(("seeds", "message"), [([7], "at least two"), ([7, 8, 7], "each seed once")])
def test_one_seed_or_a_repeated_seed_is_refused(seeds: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sm.seed_configs("espresso", "espresso", "smoke", seeds, LOGMEL, None)


def test_later_seeds_read_the_first_seeds_datasets(tmp_path: Path) -> None:
    first = tmp_path / "seed7" / "work"
    (first / "datasets" / "abc").mkdir(parents=True)
    later = tmp_path / "seed8" / "work"
    sm.share_datasets(first, later)
    assert (later / "datasets").is_symlink()
    assert (later / "datasets" / "abc").is_dir()
    sm.share_datasets(first, later)  # a resumed run keeps the link it made
    assert (later / "datasets").resolve() == (first / "datasets").resolve()


def test_bad_seeds_are_one_line_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert sm.main(["--seeds", "7"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --seeds") and "\n" not in err
