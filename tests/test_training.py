"""Training pipeline: widened labels, the dataset builder, hard-negative mining, and the exported graph.

Light by design (seconds): the whole pipeline end to end is `make model-smoke`, which CI runs separately.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf

torch = pytest.importorskip("torch", reason="training needs torch (the training extra)")

from training import dataset as ds  # noqa: E402
from training import train as tr  # noqa: E402
from training.augment import AugmentConfig  # noqa: E402
from training.export import export_onnx  # noqa: E402
from training.network import NetworkConfig, WakeWordNet  # noqa: E402
from wakeword.features import FeatureConfig, compute_features  # noqa: E402
from wakeword.metadata import ModelMetadata  # noqa: E402

SR = 16000
FEATURES = FeatureConfig()


def _tone(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny manifest: 'keyword' = a 1 kHz tone burst; speech/confusables = other tones; noise."""
    root = tmp_path_factory.mktemp("manifest")
    rng = np.random.default_rng(0)
    rows = []

    def add(kind: str, audio: np.ndarray, split: str, i: int) -> None:
        path = f"{kind}-{split}-{i}.wav"
        sf.write(root / path, audio, SR, subtype="PCM_16")
        row = {"path": path, "kind": kind, "text": kind, "voice": f"v{i}", "engine": "test", "split": split}
        rows.append({**row, "duration_s": len(audio) / SR, "sample_rate": SR})

    for split in ("train", "val"):
        for i in range(4):
            add("positive", _tone(1000.0, 0.4 + 0.1 * i), split, i)
            add("confusable", _tone(700.0, 0.5), split, i)
            add("speech", _tone(300.0 + 50 * i, 1.5, 0.2), split, i)
            add("noise", rng.normal(0, 0.1, SR * 4).astype(np.float32), split, i)
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_frame_targets_mark_exactly_the_frames_after_the_keyword_end() -> None:
    end = 16000  # 1.0 s
    labels, mask = ds.frame_targets(300, [end], FEATURES, label_frames=40, ignore_before=5, ignore_after=7)
    first = ds.keyword_end_frame(end, FEATURES)
    # the first frame whose window [t*hop, t*hop+win) reaches the keyword's last sample
    assert first * 160 + 400 >= end > (first - 1) * 160 + 400
    assert np.array_equal(np.nonzero(labels)[0], np.arange(first, first + 40))
    assert np.array_equal(np.nonzero(mask == 0)[0], np.r_[first - 5 : first, first + 40 : first + 47])
    negative, negative_mask = ds.frame_targets(300, [], FEATURES, 40, 5, 7)
    assert not negative.any() and negative_mask.all()


def test_frame_targets_label_every_keyword_and_never_mask_a_one_frame() -> None:
    ends = [16000, 16000 + 40 * 160 + 3 * 160]  # the second run starts 3 frames after the first ends
    labels, mask = ds.frame_targets(400, ends, FEATURES, label_frames=40, ignore_before=5, ignore_after=7)
    first, second = (ds.keyword_end_frame(e, FEATURES) for e in ends)
    expected = np.r_[first : first + 40, second : second + 40]
    assert np.array_equal(np.nonzero(labels)[0], expected)
    assert mask[expected].all()  # the second run's ignored lead-in overlaps nothing labelled 1
    assert not mask[first + 40 : second].any()  # between runs: ignored (after the first, before the second)
    assert np.array_equal(
        np.nonzero(mask[second + 40 :] == 0)[0] + second + 40, np.arange(second + 40, second + 47)
    )


def test_repeat_clips_hold_several_keywords_each_ending_at_its_labelled_sample(manifest: Path) -> None:
    quiet = AugmentConfig(reverb_p=0.0, clean_p=1.0, colour_p=0.0, speed_p=0.0, peak_dbfs=(-6.0, -6.0),
                          noise_floor_dbfs=(-90.0, -90.0), clip_p=0.0)  # fmt: skip
    config = ds.DatasetConfig(augment=quiet, context_speech_p=0.0, repeat_positive_p=1.0, repeat_count=(3, 3))
    factory = ds.ClipFactory(ds.load_sources(manifest, ("train",)), config, FEATURES)
    rng = np.random.default_rng(4)
    n = 12 * SR
    for _ in range(4):
        clip = factory.draw_long(n, rng)
        ends = clip.keyword_ends
        assert len(ends) == 3 and list(ends) == sorted(ends)
        tail = config.label_frames * FEATURES.hop_samples
        assert ends[-1] <= n - tail
        for end in ends:  # loud up to each labelled end, silent (no context speech) just after it
            before, after = clip.audio[end - 160 : end], clip.audio[end : end + 160]
            assert np.sqrt(np.mean(before**2)) > 0.02 > 100 * np.sqrt(np.mean(after**2))
        gaps = np.diff(ends) / SR
        assert (gaps > config.repeat_gap_s[0]).all()


def test_positive_clip_places_the_keyword_so_it_ends_at_the_labelled_sample(manifest: Path) -> None:
    quiet = AugmentConfig(reverb_p=0.0, clean_p=1.0, colour_p=0.0, speed_p=0.0, peak_dbfs=(-6.0, -6.0),
                          noise_floor_dbfs=(-90.0, -90.0), clip_p=0.0)  # fmt: skip
    config = ds.DatasetConfig(augment=quiet, context_speech_p=0.0, trailing_speech_p=0.0)
    factory = ds.ClipFactory(ds.load_sources(manifest, ("train",)), config, FEATURES)
    rng = np.random.default_rng(3)
    for _ in range(5):
        clip = factory.draw("positive", 3 * SR, rng)
        end = clip.end_sample
        assert end is not None
        before, after = clip.audio[end - 160 : end], clip.audio[end : end + 160]
        assert np.sqrt(np.mean(before**2)) > 0.1 > 100 * np.sqrt(np.mean(after**2))


def test_clips_report_the_background_actually_mixed_under_them(manifest: Path) -> None:
    """The evaluation's misses-per-background figures rely on this: the fixture has no music, so a
    drawn 'music' falls back to synthetic noise and must be reported as such; a clean clip has none."""
    factory = ds.ClipFactory(ds.load_sources(manifest, ("train",)), ds.DatasetConfig(), FEATURES)
    rng = np.random.default_rng(5)
    word = np.ones(SR // 2, dtype=np.float32) * 0.1
    noisy = {factory.compose(2 * SR, rng, word, SR, True, snr_db=5.0).background for _ in range(60)}
    assert noisy == {"noise", "synthetic_noise", "babble", "talker"}
    assert noisy <= set(ds.BACKGROUND_KINDS)
    assert factory.compose(2 * SR, rng, word, SR, True, snr_db=float("inf")).background is None


def test_dataset_labels_are_one_only_after_keywords_and_zero_in_negative_clips(
    manifest: Path, tmp_path: Path
) -> None:
    config = ds.DatasetConfig(n_short=40, n_long=3, n_val=6, label_frames=35)
    parts = ds.build_datasets(manifest, tmp_path, config, FEATURES)
    train = ds.ClipArrays.load(parts["train"])
    assert train.features.shape == (40, 298, 40) and train.features.dtype == np.float16
    kinds = set(train.kinds)
    assert "positive" in kinds and len(kinds) > 2
    for kind, labels in zip(train.kinds, train.labels, strict=True):
        ones = np.nonzero(labels)[0]
        if kind == "positive":
            assert len(ones) == 35 and np.array_equal(ones, np.arange(ones[0], ones[0] + 35))
        else:
            assert len(ones) == 0, kind
    # features are the runtime front end's: recompute one negative clip is not possible (audio is not
    # kept), but the cache key must move with the front end and with the data recipe
    digest = ds.manifest_digest(manifest)
    assert config.key(FEATURES, digest) != config.key(FeatureConfig(n_mels=32), digest)
    assert config.key(FEATURES, digest) != ds.DatasetConfig(label_frames=30).key(FEATURES, digest)
    # a second build with the same inputs is a cache hit (nothing rewritten)
    stamp = (parts["train"] / "features.npy").stat().st_mtime_ns
    again = ds.build_datasets(manifest, tmp_path, config, FEATURES)
    assert (again["train"] / "features.npy").stat().st_mtime_ns == stamp


def test_dataset_features_come_from_the_runtime_front_end(manifest: Path) -> None:
    clip = np.random.default_rng(1).normal(0, 0.1, 3 * SR).astype(np.float32)
    arrays = ds.featurise(iter([("speech", ds.Clip(clip, None, "negative", None))]), 1, len(clip),
                          ds.DatasetConfig(), FEATURES, "test")  # fmt: skip
    expected = compute_features(clip, FEATURES).astype(np.float16)
    assert np.array_equal(arrays.features[0], expected)


def _random_net(seed: int = 0, conv_channels: int = 0) -> WakeWordNet:
    torch.manual_seed(seed)
    net = WakeWordNet(NetworkConfig(hidden=32, layers=2, conv_channels=conv_channels))
    net.feature_mean.copy_(torch.randn(40))
    net.feature_std.copy_(torch.rand(40) + 0.5)
    return net.eval()


@pytest.mark.parametrize("conv_channels", [0, 4], ids=["gru", "conv-gru"])
def test_exported_onnx_matches_torch_and_streams_like_the_whole_clip(
    tmp_path: Path, conv_channels: int
) -> None:
    """With a conv front end the state also carries its frame history: chunks of 1 frame must work too."""
    net = _random_net(conv_channels=conv_channels)
    path = export_onnx(net, ModelMetadata(wake_word="test"), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    features = (rng.normal(0, 3, (1, 250, 40)) - 5).astype(np.float32)
    hidden0 = net.initial_state(1).numpy()
    assert hidden0.shape == ((2, 1, 32) if conv_channels == 0 else (5, 1, 32))  # 2 frames x 40 mels = 3 rows
    whole, _ = session.run(None, {"features": features, "hidden_in": hidden0})
    with torch.no_grad():
        expected, _ = net(torch.from_numpy(features), torch.from_numpy(hidden0))
    assert np.abs(whole - expected.numpy()).max() < 1e-4
    assert whole.std() > 1e-3  # a non-trivial output, or the comparison proves nothing

    pieces, hidden, start = [], hidden0, 0
    for size in [1, 3, 8, 17, 8, 50, 2] * 10:
        if start >= 250:
            break
        probs, hidden = session.run(
            None, {"features": features[:, start : start + size], "hidden_in": hidden}
        )
        pieces.append(probs)
        start += size
    streamed = np.concatenate(pieces, axis=1)
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 1e-5


def test_runtime_runs_a_conv_front_end_model_with_its_opaque_state(tmp_path: Path) -> None:
    """The daemon's WakeWordModel needs no change for a conv front end: the frame history rides in the
    state tensor, so 8-frame steps through the runtime equal torch on the whole clip."""
    from wakeword.model import WakeWordModel

    net = _random_net(seed=3, conv_channels=4)
    path = export_onnx(net, ModelMetadata(wake_word="test"), tmp_path / "conv.onnx")
    model = WakeWordModel.load(path)
    assert model.state_shape == (5, 1, 32)
    frames = (np.random.default_rng(1).normal(0, 3, (97, 40)) - 5).astype(np.float32)
    state, pieces = model.initial_state(), []
    for start in range(0, len(frames), 8):
        probs, state = model.run(frames[start : start + 8], state)
        pieces.append(probs)
    with torch.no_grad():
        expected, _ = net(torch.from_numpy(frames)[None], net.initial_state(1))
    assert np.abs(np.concatenate(pieces) - expected.numpy()[0]).max() < 1e-4
    assert expected.std() > 1e-3


def test_conv_front_end_that_does_not_fit_the_input_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        WakeWordNet(NetworkConfig(conv_channels=4, conv_freq=41))
    assert WakeWordNet(NetworkConfig(conv_channels=4, conv_freq=40)).config.gru_input == 4  # one band


def test_mining_cuts_windows_that_end_after_the_frames_that_fire() -> None:
    net = _random_net()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(-20.0)  # silent everywhere ...
    features = np.zeros((2, 600, 40), dtype=np.float16)
    windows, stats = tr.mine_windows(net, features, 298, 0.5, np.random.default_rng(0), 100)
    assert len(windows) == 0 and stats["frames_above"] == 0
    with torch.no_grad():
        net.head.bias.fill_(20.0)  # ... then firing on every frame: one window per burst of 100 frames
    windows, stats = tr.mine_windows(net, features, 298, 0.5, np.random.default_rng(0), 100)
    assert stats["frames_above"] == 1200
    assert windows.shape[1:] == (298, 40) and 2 <= len(windows) <= 2 * 6


def test_frame_loss_weights_positive_frames_and_ignores_masked_ones() -> None:
    logits = torch.zeros(1, 4)
    labels = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    loss = tr.frame_loss(logits, labels, mask, pos_weight=3.0)
    # every unmasked frame costs log 2 at logit 0; the weighted mean is still log 2
    assert loss.item() == pytest.approx(np.log(2.0), rel=1e-6)
    confident = tr.frame_loss(torch.tensor([[-5.0, 5.0, 50.0, -5.0]]), labels, mask, 3.0)
    assert confident.item() < 0.01  # the masked frame's wrong, confident logit costs nothing


def test_evaluation_reports_misses_per_espeak_accent_and_engine_at_the_target_snrs() -> None:
    """A held-out accent that dominates the misses must show in the card, with its clip count."""
    from training.evaluate import EvalConfig, Item, score, voice_group
    from wakeword.detector import Detection

    assert voice_group({"engine": "espeak-ng", "voice": "espeak:en-gb-x-gbcwmd+m1:s150:p50"}) == (
        "espeak-ng en-gb-x-gbcwmd"
    )
    assert voice_group({"engine": "kokoro", "voice": "kokoro:jf_alpha*1:vt1.0"}) == "kokoro"
    silence = np.zeros(SR * 4, dtype=np.int16)

    def positive(group: str, snr: float) -> Item:
        return Item("positive", silence, 1.0, 1.5, snr, group.split()[0], group)

    items = [
        positive("espeak-ng en-gb-x-gbcwmd", 20.0),  # hit
        positive("espeak-ng en-gb-x-gbcwmd", 10.0),  # missed
        positive("espeak-ng en-gb-x-gbcwmd", 0.0),  # missed, but below the target SNR: not counted
        positive("espeak-ng en-us", 5.0),  # hit
        positive("kokoro", 20.0),  # missed
    ]
    found = [Detection("w", 0.9, 1.6, 160)]
    out = score(items, [found, [], [], found, []], EvalConfig(snr_bins_db=(20.0, 10.0, 5.0, 0.0)))
    assert out["frr_snr_ge_5db_by_voice_group"] == {
        "espeak-ng en-gb-x-gbcwmd": {"frr": 0.5, "clips": 2},
        "espeak-ng en-us": {"frr": 0.0, "clips": 1},
        "kokoro": {"frr": 1.0, "clips": 1},
    }
    assert out["frr_snr_ge_5db_by_engine"] == {"espeak-ng": pytest.approx(1 / 3, abs=1e-3), "kokoro": 1.0}


def test_evaluation_reports_misses_per_background_kind_and_snr() -> None:
    """Whether music, noise or a competing talker hides the word must show in the card."""
    from training.evaluate import EvalConfig, Item, score
    from wakeword.detector import Detection

    silence = np.zeros(SR * 4, dtype=np.int16)

    def positive(background: str, snr: float) -> Item:
        return Item("positive", silence, 1.0, 1.5, snr, "kokoro", "kokoro", background)

    items = [
        positive("talker", 10.0),  # hit
        positive("talker", 5.0),  # missed
        positive("talker", 5.0),  # missed
        positive("talker", 0.0),  # missed, below the target SNR: not counted
        positive("music", 5.0),  # hit
        positive("none", float("inf")),  # hit
    ]
    found = [Detection("w", 0.9, 1.6, 160)]
    config = EvalConfig(snr_bins_db=(float("inf"), 10.0, 5.0, 0.0))
    out = score(items, [found, [], [], [], found, found], config)
    assert out["frr_snr_ge_5db_by_background"] == {
        "music": {"frr": 0.0, "clips": 1, "by_snr": {"5dB": 0.0}},
        "none": {"frr": 0.0, "clips": 1, "by_snr": {"clean": 0.0}},
        "talker": {"frr": pytest.approx(2 / 3, abs=1e-3), "clips": 3, "by_snr": {"10dB": 0.0, "5dB": 1.0}},
    }


def test_training_voice_positives_are_scored_apart_and_leave_the_held_out_items_unchanged(
    manifest: Path,
) -> None:
    """They tell conditions from unseen voices; adding them must not move a single held-out clip."""
    from dataclasses import replace

    from training.evaluate import EvalConfig, Item, build_items, score
    from wakeword.detector import Detection

    small = EvalConfig(negative_hours=0.003, dense_hours=0.0, stream_s=10.0, max_positives=6,
                       max_confusables=2, max_real=0, training_voice_positives=0)  # fmt: skip
    without = build_items(manifest, small)
    with_train = build_items(manifest, replace(small, training_voice_positives=3))  # of 4 recordings
    assert len(with_train) == len(without) + 3
    for a, b in zip(without, with_train, strict=False):
        assert a.kind == b.kind and np.array_equal(a.audio, b.audio)
    added = with_train[len(without) :]
    assert {it.kind for it in added} == {"training_voice_positive"}
    # mixed over the held-out backgrounds (the fixture's speech and noise), not only a synthetic fallback
    assert {it.background for it in added} & {"babble", "talker", "noise"}

    silence = np.zeros(SR * 4, dtype=np.int16)
    items = [
        Item("positive", silence, 1.0, 1.5, 20.0),  # hit
        Item("training_voice_positive", silence, 1.0, 1.5, 20.0),  # missed
        Item("training_voice_positive", silence, 1.0, 1.5, 10.0),  # hit
        Item("training_voice_positive", silence, 1.0, 1.5, 0.0),  # below the target SNR: not counted
    ]
    found = [Detection("w", 0.9, 1.6, 160)]
    out = score(items, [found, [], found, []], EvalConfig(snr_bins_db=(20.0, 10.0, 0.0)))
    assert out["frr_snr_ge_5db"] == 0.0 and out["positives"] == 1
    assert out["training_voices_frr_snr_ge_5db"] == 0.5 and out["training_voices_clips_snr_ge_5db"] == 2


def test_evaluation_scores_hits_only_between_keyword_start_and_the_acceptance_window() -> None:
    from training.evaluate import EvalConfig, Item, choose_operating_point, choose_threshold, score
    from wakeword.detector import Detection

    config = EvalConfig(snr_bins_db=(20.0, 0.0))
    silence = np.zeros(SR * 4, dtype=np.int16)

    def hit(t: float) -> Detection:
        return Detection("w", 0.9, t, int(t * 100))

    items = [
        Item("positive", silence, start_s=1.0, end_s=1.5, snr_db=20.0),  # hit 0.2 s after the end
        Item("positive", silence, start_s=1.0, end_s=1.5, snr_db=20.0),  # fired before the word: a miss
        Item("positive", silence, start_s=1.0, end_s=1.5, snr_db=0.0),  # fired too late: a miss
        Item("negative_stream", np.zeros(SR * 1800, dtype=np.int16)),  # half an hour
        Item("confusable", silence),
        Item("confusable", silence),
    ]
    detections = [[hit(1.7)], [hit(0.5)], [hit(3.2)], [hit(10.0), hit(20.0)], [hit(1.0)], []]
    out = score(items, detections, config)
    assert out["frr_all"] == pytest.approx(2 / 3, abs=1e-3)
    assert out["frr_snr_ge_5db"] == 0.5 and out["frr_by_snr"] == {"20dB": 0.5, "0dB": 1.0}
    assert out["latency_median_ms"] == pytest.approx(200.0)
    assert out["early_fires_on_positive_clips"] == 1
    assert out["fa_per_hour"] == pytest.approx(4.0) and out["confusable_fa_rate"] == 0.5
    points = [{"threshold": 0.3, "fa_per_hour": 2.0}, {"threshold": 0.5, "fa_per_hour": 0.4},
              {"threshold": 0.7, "fa_per_hour": 0.0}]  # fmt: skip
    assert choose_threshold(points, 0.5)["threshold"] == 0.5
    assert choose_threshold(points, 0.01)["threshold"] == 0.7
    pairs = [
        {
            "threshold": 0.3,
            "patience_frames": 3,
            "fa_per_hour": 0.4,
            "confusable_fa_rate": 0.06,
            "frr_snr_ge_5db": 0.05,
        },
        {
            "threshold": 0.6,
            "patience_frames": 3,
            "fa_per_hour": 0.0,
            "confusable_fa_rate": 0.02,
            "frr_snr_ge_5db": 0.2,
        },
        {
            "threshold": 0.4,
            "patience_frames": 6,
            "fa_per_hour": 0.3,
            "confusable_fa_rate": 0.03,
            "frr_snr_ge_5db": 0.1,
        },
    ]
    best = choose_operating_point(pairs, 0.5, 0.03)  # the confusable target rules out the first
    assert (best["threshold"], best["patience_frames"]) == (0.4, 6)
    assert choose_operating_point(pairs, 0.5, 0.001)["threshold"] == 0.3  # unreachable: FA/h rule alone


def test_stage_keeps_its_checkpoints_for_the_same_inputs_and_drops_them_when_inputs_change(
    tmp_path: Path,
) -> None:
    """An interrupted stage resumes from its checkpoint; a changed recipe must start over instead
    (resuming a 96-unit checkpoint into a 128-unit network crashed before)."""
    from training.make_model import Stages

    seen: list[bool] = []

    def stage() -> dict:
        seen.append((tmp_path / "train.ckpt").exists())
        raise KeyboardInterrupt  # interrupted mid-stage, the checkpoint stays behind

    def write_checkpoint_then(fn):  # noqa: ANN001, ANN202
        def run() -> dict:
            (tmp_path / "train.ckpt").write_text("weights")
            (tmp_path / "hard-negatives-1").mkdir(exist_ok=True)
            return fn()

        return run

    stages = Stages(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        stages.run("train", {"hidden": 96}, write_checkpoint_then(stage), owns=("train.ckpt", "hard-*"))
    with pytest.raises(KeyboardInterrupt):
        stages.run("train", {"hidden": 96}, stage, owns=("train.ckpt", "hard-*"))  # same inputs: resume
    with pytest.raises(KeyboardInterrupt):
        stages.run("train", {"hidden": 128}, stage, owns=("train.ckpt", "hard-*"))  # new inputs: start over
    assert seen == [True, True, False]
    assert not (tmp_path / "hard-negatives-1").exists()
    result = Stages(tmp_path).run("train", {"hidden": 128}, lambda: {"ok": 1}, owns=("train.ckpt",))
    assert result == {"ok": 1}
    assert Stages(tmp_path).run("train", {"hidden": 128}, lambda: {"ok": 2}) == {"ok": 1}  # done: skipped


def test_embedding_dataset_uses_the_streamed_front_end_and_labels_the_same_time_span(
    manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The speech-embedding recipe: frames equal what the daemon streams; the 1-run covers the same
    400 ms after the keyword end as the log-mel recipe's 40 frames; the worker pool changes nothing."""
    from training import make_model as mm
    from wakeword.embedding import EmbeddingConfig, SpeechEmbeddingFeatures

    run = mm.profile_config("espresso", "x", "smoke", None, mm.SPEECH_EMBEDDING)
    logmel = mm.profile_config("espresso", "x", "smoke", None, mm.LOGMEL)
    assert isinstance(run.features, EmbeddingConfig) and run.network.n_mels == 96 and run.frames_per_step == 1
    span = run.dataset.label_frames * run.features.hop_samples
    assert span == logmel.dataset.label_frames * logmel.features.hop_samples == 6400
    config = ds.DatasetConfig(n_short=8, n_long=0, n_val=0, label_frames=run.dataset.label_frames)
    factory = ds.ClipFactory(ds.load_sources(manifest, ds.TRAIN_SPLITS), config, run.features)
    clips = list(ds._short_clips(factory, 8, 3 * SR, np.random.default_rng(3)))
    monkeypatch.setattr(ds, "POOL_MIN_CLIPS", 4)  # the worker pool, as for a real dataset
    pooled = ds.featurise(iter(clips), 8, 3 * SR, config, run.features, "test")
    assert pooled.features.shape == (8, 37, 96)
    for i in (0, 7):
        streamed = SpeechEmbeddingFeatures(run.features).process(clips[i][1].audio)
        np.testing.assert_allclose(np.asarray(pooled.features[i], np.float32), streamed, rtol=2e-3, atol=0.05)
    for (kind, clip), labels in zip(clips, pooled.labels, strict=True):
        ones = np.nonzero(labels)[0]
        if kind == "positive":
            first = ds.keyword_end_frame(clip.end_sample, run.features)
            assert np.array_equal(ones, np.arange(first, first + 5))
            # the first labelled frame is the first that has heard the keyword's last sample
            assert first * 1280 + 1632 >= clip.end_sample > (first - 1) * 1280 + 1632
        else:
            assert len(ones) == 0


def _band_power(x: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / SR)
    return float(spectrum[(freqs >= low_hz) & (freqs < high_hz)].mean())


def test_band_limit_empties_the_bands_above_its_cutoff_and_keeps_those_below() -> None:
    from training.augment import band_limit

    noise = np.random.default_rng(3).standard_normal(SR).astype(np.float32) * 0.1
    out = band_limit(noise, 3000.0)
    assert out.shape == noise.shape and out.dtype == np.float32
    assert _band_power(out, 200.0, 2700.0) == pytest.approx(_band_power(noise, 200.0, 2700.0), rel=0.1)
    assert _band_power(out, 3300.0, 8000.0) < 1e-4 * _band_power(noise, 3300.0, 8000.0)
    assert band_limit(noise, 8000.0) is noise  # a chain at 16 kHz or more changes nothing


def test_finish_band_limits_after_the_noise_floor_only_when_asked() -> None:
    """The floor is added before the band limit, so a band-limited clip's upper bands are empty, as in
    audio that passed a narrow-band chain; with the recipe's default (off) they hold the floor."""
    from training.augment import finish

    silence = np.zeros(SR, dtype=np.float32)
    clean = AugmentConfig(colour_p=0.0, noise_floor_dbfs=(-50.0, -50.0))
    limited = AugmentConfig(colour_p=0.0, noise_floor_dbfs=(-50.0, -50.0), band_limit_p=1.0)
    off = finish(silence, np.random.default_rng(5), clean)
    on = finish(silence, np.random.default_rng(5), limited)
    assert _band_power(on, 100.0, 2400.0) > 0.0
    assert _band_power(on, 5300.0, 8000.0) < 1e-3 * _band_power(off, 5300.0, 8000.0)


def _rows(counts: dict[str, int]) -> list[dict]:
    return [{"engine": engine} for engine, n in counts.items() for _ in range(n)]


def test_engine_weights_give_each_named_engine_its_share_and_spread_the_rest_by_clip() -> None:
    rows = _rows({"espeak-ng": 60, "kokoro": 30, "piper": 6, "flite": 4})
    weights = ds.engine_weights(rows, {"espeak-ng": 0.45, "kokoro": 0.1})
    engines = np.array([r["engine"] for r in rows])
    assert weights.sum() == pytest.approx(1.0)
    assert weights[engines == "espeak-ng"].sum() == pytest.approx(0.45)
    assert weights[engines == "kokoro"].sum() == pytest.approx(0.1)
    others = weights[(engines == "piper") | (engines == "flite")]
    assert others.sum() == pytest.approx(0.45) and np.ptp(others) == 0  # uniform by clip
    # The recipe's espeak-only share, as the single-engine formula had it (the datasets stay the same).
    mine = engines == "espeak-ng"
    old = np.where(mine, 0.45 / mine.sum(), 0.55 / (~mine).sum())
    np.testing.assert_array_equal(ds.engine_weights(rows, {"espeak-ng": 0.45}), old / old.sum())


def test_engine_weights_are_uniform_when_the_shares_cannot_apply() -> None:
    assert ds.engine_weights(_rows({"flite": 5}), {}) is None
    assert ds.engine_weights(_rows({"flite": 5}), {"espeak-ng": 0.45}) is None  # engine absent
    assert ds.engine_weights(_rows({"espeak-ng": 5}), {"espeak-ng": 0.45}) is None  # nothing else
    two = ds.engine_weights(_rows({"espeak-ng": 2, "kokoro": 8}), {"espeak-ng": 0.3, "kokoro": 0.3})
    assert two[:2].sum() == pytest.approx(0.5)  # named engines only: their shares, normalised
