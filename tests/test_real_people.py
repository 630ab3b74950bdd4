"""bench/real_people.py: the statistics, the 10 dB mix, identical audio for every engine, and a quick
end-to-end run on a tiny hand-made manifest (no /work/main, no shared data needed; a few seconds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from bench import real_people as rp
from tests.speech import bursts_clip

MODELS = Path(__file__).resolve().parents[1] / "models"

RATE = 16000


def test_mcnemar_exact_matches_hand_computed_binomial_tails() -> None:
    assert rp.mcnemar_exact(0, 0) == 1.0
    assert rp.mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    assert rp.mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)
    assert rp.mcnemar_exact(9, 1) == rp.mcnemar_exact(1, 9)  # two-sided: symmetric
    assert rp.mcnemar_exact(4, 4) == 1.0  # capped at 1
    assert rp.mcnemar_exact(12, 5) == pytest.approx(2 * sum(math.comb(17, i) for i in range(6)) / 2**17)
    # hand-made pairs: 1 = detected; only the discordant recordings count
    ours = [1, 1, 1, 1, 0, 1, 1, 0]
    peer = [0, 0, 0, 1, 0, 0, 1, 1]
    b = sum(a == 1 and p == 0 for a, p in zip(ours, peer, strict=True))
    c = sum(a == 0 and p == 1 for a, p in zip(ours, peer, strict=True))
    assert (b, c) == (4, 1)
    assert rp.mcnemar_exact(b, c) == pytest.approx(2 * (1 + 5) / 32)


def test_wilson_interval_brackets_the_rate() -> None:
    low, high = rp.wilson(30, 100)
    assert low < 0.3 < high and high - low == pytest.approx(0.18, abs=0.01)
    assert rp.wilson(0, 10)[0] == 0.0 and rp.wilson(0, 0) is None


def _speechlike(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    """Noise bursts with pauses (a level that changes like speech does)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    envelope = np.repeat(rng.random(n // 1600 + 1) < 0.6, 1600)[:n]
    return (level * rng.standard_normal(n) * envelope).astype(np.float32)


def test_mix_hits_the_snr_it_claims() -> None:
    from training.augment import active_rms, rms

    recording = (_speechlike(1.2, 1) * 32768).astype(np.int16)
    padded = rp.pad(recording, 1.0, 1.5, seed=5)
    noise = np.random.default_rng(2).standard_normal(len(padded)).astype(np.float32)
    mix = rp.mix_at_snr(padded, recording, noise, 10.0)
    added = mix.astype(np.float64) / 32768 - padded.astype(np.float64) / 32768
    snr = 20 * math.log10(active_rms(recording.astype(np.float32) / 32768) / rms(added))
    assert snr == pytest.approx(10.0, abs=0.05)
    # a recording near full scale: the sum is scaled down, never clipped
    loud = (_speechlike(1.2, 3, level=0.3).clip(-1, 1) * 32767).astype(np.int16)
    loud_mix = rp.mix_at_snr(rp.pad(loud, 1.0, 1.5, 5), loud, noise, 10.0)
    assert np.abs(loud_mix.astype(np.int32)).max() <= 0.99 * 32768 + 1


def test_rising_edge_fires_once_per_run_with_refractory() -> None:
    times = np.arange(10) * 0.5
    scores = np.array([0.1, 0.95, 0.97, 0.2, 0.95, 0.1, 0.1, 0.1, 0.96, 0.96])
    assert rp.rising_edge_fires(times, scores, 0.9, strict=True, refractory_s=2.0) == [0.5, 4.0]
    assert rp.rising_edge_fires(times, scores, 0.9, strict=True, refractory_s=0.0) == [0.5, 2.0, 4.0]
    assert rp.rising_edge_fires(times, scores, 0.95, strict=True, refractory_s=0.0) == [1.0, 4.0]
    assert rp.rising_edge_fires(times, scores, 0.95, strict=False, refractory_s=0.0) == [0.5, 2.0, 4.0]


def _wav(path: Path, audio: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, RATE, subtype="PCM_16")
    return path.name


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory) -> Path:
    """Held-out (val) rows of every kind the negatives and backgrounds draw on; synthetic audio."""
    folder = tmp_path_factory.mktemp("real-people-manifest")
    rng = np.random.default_rng(0)
    rows = [{"kind": "positive", "path": _wav(folder / "p0.wav", _speechlike(0.8, 10)), "text": "loud"}]
    for i in range(3):
        rows.append(
            {"kind": "speech", "path": _wav(folder / f"s{i}.wav", _speechlike(3, 20 + i)), "text": "hi"}
        )
    rows.append(
        {
            "kind": "noise",
            "path": _wav(folder / "n0.wav", 0.1 * rng.standard_normal(4 * RATE)),
            "text": "white",
        }
    )
    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(4 * RATE) / RATE)
    rows.append({"kind": "music", "path": _wav(folder / "m0.wav", tone), "text": "generated midi"})
    # a row that says the word itself: must never reach the negatives or the backgrounds
    rows.append({"kind": "real_speech", "path": _wav(folder / "w0.wav", _speechlike(1, 30)), "text": "alexa"})
    for row in rows:
        row.update(split="val", duration_s=sf.info(str(folder / row["path"])).duration, engine="test")
        row.setdefault("voice", row["path"])
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory) -> Path:
    """Stand-in 'real recordings' of alexa: silence with one loud burst (what the loud model fires on)."""
    root = tmp_path_factory.mktemp("real-speech")
    (root / "alexa").mkdir()
    for i in range(4):
        bursts_clip(root / "alexa" / f"{i}.wav", [0.3 + 0.1 * i], 1.2)
    return root


def test_every_engine_gets_identical_audio_from_the_same_seed(
    tiny_manifest: Path, real_dir: Path, tmp_path
) -> None:
    from training.dataset import EVAL_SPLITS, load_sources

    config = rp.RealConfig(word="alexa", real_dir=real_dir, cache_dir=tmp_path)
    held_out, dropped = rp.held_out_manifest(tiny_manifest, "alexa", tmp_path)
    assert dropped == 1  # the row that says "alexa"
    sources = load_sources(held_out, EVAL_SPLITS)
    assert "real_speech" not in sources.rows
    files = rp.recordings(real_dir / "alexa", None, config.seed)
    first, again = rp.build_clips(files, sources, config), rp.build_clips(files, sources, config)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.clean, b.clean) and np.array_equal(a.noisy, b.noisy)
        assert len(a.clean) == len(a.noisy) == int(2.5 * RATE) + int(1.2 * RATE)
    # a recording's audio does not depend on which others are run, or in what order
    alone = rp.build_clips(files[2:3], sources, config)[0]
    assert np.array_equal(alone.noisy, first[2].noisy)
    other_seed = rp.build_clips(files[2:3], sources, rp.RealConfig(word="alexa", seed=1))[0]
    assert not np.array_equal(other_seed.noisy, first[2].noisy)


def test_quick_run_end_to_end(
    tiny_manifest: Path, real_dir: Path, loud_model_path: Path, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where the held-out manifest copy goes
    out = tmp_path / "results"
    argv = ["--word", "alexa", "--model", str(loud_model_path), "--manifest", str(tiny_manifest)]
    argv += ["--real-speech", str(real_dir), "--out-dir", str(out), "--quick", "--hours", str(40 / 3600)]
    extra = ["--also-state-reset", "0", "--also-input-gain", "-40", "--also-model", str(loud_model_path)]
    assert rp.main([*argv, *extra, "--also-hiss", "-40"]) == 0
    results = json.loads((out / "quick-real-people-alexa.json").read_text())
    meta = results["meta"]
    assert meta["recordings"] == 4 and meta["negative_hours"] == pytest.approx(40 / 3600, rel=0.01)
    ours = results["engines"]["ours"]
    assert ours["sweep_mismatches_vs_detector"] == 0  # the sweep replays exactly what the Detector did
    default = ours["operating_points"]["default"]
    assert default["missed_clean"] == 0.0  # the loud model hears every burst
    assert default["fa_per_hour"] > 0  # and fires on the loud negative streams
    assert set(ours["operating_points"]) == {"default", "0.5 FA/h", "1 FA/h"}
    assert not ours["operating_points"]["1 FA/h"]["resolvable"]  # 40 s cannot resolve 1 FA/h
    for peer in ("microwakeword", "openwakeword"):  # run where installed, otherwise said why
        assert peer in results["engines"] or meta["skipped"][peer]
        if peer in results["engines"]:
            assert set(results["comparisons"]["default"][peer]) == {"clean", "10db", "stream"}
    assert default["missed_stream"] == 0.0  # every burst heard in the one long stream too
    assert len(default["hits_stream"]) == 4
    one_state = results["engines"]["ours-state0"]  # the same model with one state for the whole stream
    assert "state_reset_s 0" in one_state["label"]
    assert set(results["comparisons"]["default"]["ours-state0"]) == {"clean", "10db", "stream"}
    quiet = results["engines"]["ours-gain-40dB"]  # every clip and negative 40 dB quieter
    assert "input -40 dB" in quiet["label"]
    assert quiet["operating_points"]["default"]["missed_clean"] == 1.0  # the bursts no longer sound loud
    assert quiet["operating_points"]["default"]["fa_per_hour"] < default["fa_per_hour"]
    # every model of ours gets the hiss, and a candidate over the hiss is paired with the reference over
    # the same hiss: the same model hears the same hissed audio, so the two agree clip for clip
    hissed = results["hiss_comparisons"]["-40 dBFS"]
    assert hissed["reference"] == "ours-hiss-40dBFS"
    twin = hissed["default"]["ours-2-hiss-40dBFS"]["clean"]
    assert twin["only_ours-hiss-40dBFS_detected"] == twin["only_ours-2-hiss-40dBFS_detected"] == 0
    assert twin["p_mcnemar"] == 1.0
    table = (out / "quick-real-people-alexa.md").read_text()
    assert "| engine | operating point |" in table and "p vs ours" in table
    assert "Over the -40 dBFS hiss, against" in table
    assert (out / meta["det_png"]).stat().st_size > 0


def test_continuous_stream_places_every_clip_once_and_scores_by_span() -> None:
    config = rp.RealConfig(word="alexa")
    clips = [
        rp.RealClip(f"{i}.wav", np.full(int((2.5 + i) * RATE), i + 1, dtype=np.int16), np.zeros(1), "noise")
        for i in range(5)
    ]
    stream = rp.continuous_stream(clips, config)
    for i, clip in enumerate(clips):
        start = round((stream.spans[i, 0] - config.lead_s) * RATE)
        end = round(stream.spans[i, 1] * RATE)
        assert end - start == len(clip.clean)
        assert np.array_equal(stream.audio[start:end], clip.clean)  # the clip itself, where its span says
    order = np.argsort(stream.spans[:, 0])
    assert not np.array_equal(order, np.arange(5))  # seeded shuffle, not the folder order
    gaps = stream.spans[order[1:], 0] - config.lead_s - stream.spans[order[:-1], 1]
    assert ((gaps >= 0) & (gaps <= 1.0)).all()
    # a fire counts for the clip whose span holds it: not in the lead dither, yes in the tail
    inside = stream.spans[2, 0] + 0.1
    in_lead = stream.spans[3, 0] - 0.5
    hits = rp.stream_hits([inside, in_lead, stream.spans[4, 1] - 0.01], stream.spans)
    assert hits == [False, False, True, False, True]


def test_missing_manifest_is_one_line_naming_the_command(
    real_dir: Path, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    argv = ["--word", "alexa", "--manifest", str(tmp_path / "none.jsonl"), "--real-speech", str(real_dir)]
    assert rp.main([*argv, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "training.synthesize_data --word alexa" in err


def test_models_with_one_file_name_get_labels_that_tell_them_apart(tmp_path: Path) -> None:
    """Candidates are often ``computer.onnx`` in different folders; each row must name its own."""
    import shutil

    paths = []
    for folder in ("run-a/mean", "run-b/mean"):
        (tmp_path / folder).mkdir(parents=True)
        paths.append(Path(shutil.copy(MODELS / "computer.onnx", tmp_path / folder / "computer.onnx")))
    engines = [rp.Ours(path) for path in paths] + [rp.Ours(MODELS / "espresso.onnx")]
    assert engines[0].label == engines[1].label  # the clash this fixes

    rp.distinct_labels(engines)

    assert engines[0].label.startswith("wakeword run-a/mean/computer.onnx (")
    assert engines[1].label.startswith("wakeword run-b/mean/computer.onnx (")
    assert engines[2].label.startswith("wakeword espresso.onnx (")


def test_hiss_is_white_noise_at_the_level_asked_and_the_same_on_every_run() -> None:
    rng = np.random.default_rng(3)
    clip = (rng.standard_normal(RATE * 2) * 3000).astype(np.int16)
    other = (rng.standard_normal(RATE * 2) * 3000).astype(np.int16)

    hissed = rp.add_hiss(clip, -40.0)

    added = (hissed.astype(np.float64) - clip) / 32768.0
    assert 20 * np.log10(np.sqrt(np.mean(added**2))) == pytest.approx(-40.0, abs=0.2)
    spectrum = np.abs(np.fft.rfft(added)) ** 2
    low, high = spectrum[: len(spectrum) // 2].mean(), spectrum[len(spectrum) // 2 :].mean()
    assert high / low == pytest.approx(1.0, abs=0.1)  # flat: white, not coloured
    assert np.array_equal(rp.add_hiss(clip, -40.0), hissed)
    other_added = rp.add_hiss(other, -40.0).astype(np.float64) - other
    assert abs(np.corrcoef(added, other_added)[0, 1]) < 0.05  # each clip its own hiss


def test_hiss_out_of_range_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        rp.main(["--word", "computer", "--also-hiss", "-5"])
    assert exit_info.value.code == 2
    assert "--also-hiss must be within -100..-10 dBFS" in capsys.readouterr().err


def test_a_peer_with_hiss_hears_the_hiss_and_is_named_for_it() -> None:
    """The hiss must reach the peer's input (here an engine that scores its input's loudness)."""

    class Loudness:
        def scores(self, chunk: np.ndarray) -> list[tuple[float, float]]:
            return [(0.0, float(np.abs(chunk.astype(np.float64)).mean()))]

    plain = rp.Peer("loud", "loudness meter", Loudness, 0.5, strict=True)
    hissed = rp.Hissed(plain, -40.0)
    silence = np.zeros(RATE, dtype=np.int16)

    assert float(plain.trace(silence).scores.max()) == 0.0
    expected = 10 ** (-40 / 20) * 32768 * np.sqrt(2 / np.pi)  # mean |x| of white noise of that RMS
    assert float(hissed.trace(silence).scores.mean()) == pytest.approx(expected, rel=0.1)
    assert hissed.name == "loud-hiss-40dBFS" and hissed.label == "loudness meter, white noise -40 dBFS"
    assert (hissed.default_threshold, hissed.strict) == (plain.default_threshold, plain.strict)


def test_an_unscored_ensemble_mean_is_named_in_the_report(tmp_path: Path) -> None:
    """training.ensemble copies its first member's card; until training.reevaluate re-scores the mean,
    its default threshold is that member's, and the report must say so rather than let it be read as
    the mean's own operating point."""
    import shutil

    model = Path(shutil.copy(MODELS / "computer.onnx", tmp_path / "computer.onnx"))
    card = yaml.safe_load((MODELS / "computer.yaml").read_text())
    assert "reevaluated" in card  # the shipped mean was re-scored: no note
    (tmp_path / "computer.yaml").write_text(yaml.safe_dump(card))
    assert rp.Ours(model).unscored_mean_note() is None

    del card["reevaluated"]
    (tmp_path / "computer.yaml").write_text(yaml.safe_dump(card))
    note = rp.Ours(model).unscored_mean_note()
    assert note is not None and "not re-scored" in note and f"({card['detector']['threshold']:g})" in note

    del card["ensemble"]  # a single trained model's card is its own
    (tmp_path / "computer.yaml").write_text(yaml.safe_dump(card))
    assert rp.Ours(model).unscored_mean_note() is None
