"""The reproduction module of the speech-embedding experiments builds the configs the README names."""

import dataclasses

import pytest

from training.frontend_experiment import WINDOW_NETWORK, experiment_config, main
from training.make_model import LOGMEL, SPEECH_EMBEDDING, profile_config


def test_window_network_spans_sixteen_embeddings_of_all_dims() -> None:
    config = experiment_config("computer", "computer", "full", "window", None, None, None)
    assert config.network == WINDOW_NETWORK
    assert config.network.conv_bins == 1  # one kernel position: each channel sees the whole window
    assert config.network.context_frames == 15
    recipe = profile_config("computer", "computer", "full", None, SPEECH_EMBEDDING)
    assert config.mining == recipe.mining  # nothing else changed
    assert config.dataset == recipe.dataset


def test_gru_keeps_the_recipe_network_and_mining_can_grow() -> None:
    recipe = profile_config("computer", "computer", "full", None, SPEECH_EMBEDDING)
    config = experiment_config("computer", "computer", "full", "gru", 6, 6.0, None)
    assert config.network == recipe.network
    assert config.mining.rounds == 6
    assert config.mining.streams * config.mining.stream_s == pytest.approx(6 * 3600.0)
    assert config.mining.finetune_steps == 800
    assert config.mining.time_budget_s >= 6 * 500.0


@pytest.mark.parametrize(
    ("network", "rounds", "hours"), [("mlp", None, None), ("gru", 0, None), ("gru", None, 0.0)]
)
def test_bad_arguments_are_refused(network: str, rounds: int | None, hours: float | None) -> None:
    with pytest.raises(ValueError):
        experiment_config("computer", "computer", "full", network, rounds, hours, None)


def test_train_seed_changes_only_training_and_mining_seeds() -> None:
    recipe = experiment_config("computer", "computer", "full", "window", 6, 6.0, None)
    same = experiment_config("computer", "computer", "full", "window", 6, 6.0, None, recipe.train.seed)
    assert same == recipe  # the recipe's own seed reproduces the recipe
    other = experiment_config("computer", "computer", "full", "window", 6, 6.0, None, 8)
    assert other.train.seed == 8 and other.mining.seed != recipe.mining.seed
    assert other.dataset == recipe.dataset and other.seed == recipe.seed  # same clips, same synthesis
    assert other.network == recipe.network
    assert {k: v for k, v in vars(other.mining).items() if k != "seed"} == {
        k: v for k, v in vars(recipe.mining).items() if k != "seed"
    }


def test_logmel_domain_adversarial_changes_only_the_critic_weight() -> None:
    recipe = profile_config("computer", "computer", "full", None, LOGMEL)
    config = experiment_config("computer", "computer", "full", "gru", None, None, None, None, LOGMEL, 0.3)
    assert config.frontend == LOGMEL and config.train.domain_weight == 0.3
    assert recipe.train.domain_weight == 0.0  # off in every shipped recipe
    assert dataclasses.replace(config, train=recipe.train) == recipe


@pytest.mark.parametrize(("network", "weight"), [("window", None), ("gru", -0.1)])
def test_logmel_experiments_refuse_what_does_not_fit(network: str, weight: float | None) -> None:
    with pytest.raises(ValueError):
        experiment_config("computer", "computer", "full", network, None, None, None, None, LOGMEL, weight)


def test_band_limit_changes_only_the_share_of_narrow_band_clips() -> None:
    recipe = profile_config("computer", "computer", "full", None, LOGMEL)
    assert recipe.dataset.augment.band_limit_p == 0.0  # off in every shipped recipe
    config = experiment_config(
        "computer", "computer", "full", "gru", None, None, None, None, LOGMEL, None, None, 0.3
    )
    assert config.dataset.augment.band_limit_p == 0.3
    assert dataclasses.replace(config, dataset=recipe.dataset) == recipe


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_band_limit_share_outside_0_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError):
        experiment_config(
            "computer", "computer", "full", "gru", None, None, None, None, LOGMEL, None, None, share
        )


def test_a_data_dir_without_skip_synth_is_refused(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    """The synthesis stage renders the recipe's own profile; into another folder it would mix plans."""
    with pytest.raises(SystemExit) as exc:
        main(["--word", "computer", "--output-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--data-dir needs --skip-synth" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_data_dir_without_a_manifest_is_one_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    args = ["--word", "computer", "--frontend", "logmel", "--network", "gru", "--skip-synth"]
    code = main([*args, "--output-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path / "none")])
    assert code == 1
    assert f"{tmp_path / 'none' / 'manifest.jsonl'}: no manifest" in capsys.readouterr().err


def test_positive_shares_change_only_that_dataset_field() -> None:
    recipe = profile_config("computer", "computer", "full", None, LOGMEL)
    shares = {"kokoro": 0.1, "espeak-ng": 0.45}
    config = experiment_config(
        "computer", "computer", "full", "gru", None, None, None, None, LOGMEL, positive_shares=shares
    )
    assert config.dataset.positive_engine_shares == (("espeak-ng", 0.45), ("kokoro", 0.1))
    assert recipe.dataset.positive_engine_shares == ()  # off in every shipped recipe
    assert dataclasses.replace(config.dataset, positive_engine_shares=()) == recipe.dataset
    assert dataclasses.replace(config, dataset=recipe.dataset) == recipe


@pytest.mark.parametrize("shares", [{"kokorro": 0.1}, {"kokoro": -0.1}, {"kokoro": 0.6, "piper": 0.5}])
def test_bad_positive_shares_are_refused(shares: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="--positive-share"):
        experiment_config(
            "computer", "computer", "full", "gru", None, None, None, None, LOGMEL, positive_shares=shares
        )


@pytest.mark.parametrize("args", [["kokoro"], ["kokoro=lots"], ["kokoro=0.1", "kokoro=0.2"]])
def test_malformed_positive_shares_exit_with_a_usage_line(
    args: list[str], capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    flags = [item for a in args for item in ("--positive-share", a)]
    with pytest.raises(SystemExit) as exc:
        main(["--word", "computer", "--output-dir", str(tmp_path / "out"), *flags])
    assert exc.value.code == 2
    assert "--positive-share" in capsys.readouterr().err
