"""Training data stage: manifest schema, confusables, voices, splits by whole voice, resumability.

Runs the real engines (espeak-ng, flite) and the real smoke profile (a couple of seconds on 2 cores).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training import background, texts
from training.real_speech import real_speech_rows
from training.synth import SAMPLE_RATE, Variant, drop_yod, perturb_voice, render, trim_silence
from training.synthesize_data import KINDS, PROFILES, Profile, main, plan, synthesize
from training.voices import (
    ESPEAK_ACCENTED_LANGUAGES,
    ESPEAK_ACCENTED_POOL,
    ESPEAK_VAL_ACCENTS,
    KOKORO_BASE,
    KOKORO_VARIED_POOL,
    KOKORO_VARIED_SPEAKERS,
    all_voices,
    espeak_accent,
    espeak_accented_voices,
    espeak_group_split,
    espeak_variants,
    espeak_voices,
    flite_voices,
    kokoro_varied_voices,
)

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
ENGINES = {"espeak-ng", "flite", "festival", "piper", "kokoro", "real", "fluidsynth", "noise"}
ROW_KEYS = {"path", "kind", "text", "voice", "engine", "split", "duration_s", "sample_rate"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    if shutil.which("espeak-ng") is None or shutil.which("flite") is None:
        pytest.skip("espeak-ng and flite are needed for the smoke profile")
    out = tmp_path_factory.mktemp("smoke-data")
    synthesize("espresso", out, "smoke", seed=0, workers=2, engines={"espeak-ng", "flite"})
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return out, rows


def test_manifest_schema_and_audio(smoke: tuple[Path, list[dict]]) -> None:
    out, rows = smoke
    kinds = {r["kind"] for r in rows}
    assert {"positive", "confusable", "speech", "music", "noise"} <= kinds
    for row in rows:
        assert set(row) >= ROW_KEYS, row
        assert row["kind"] in KINDS and row["engine"] in ENGINES
        assert row["split"] in ("train", "val", "test")
        assert isinstance(row["text"], str) and isinstance(row["voice"], str) and row["voice"]
        assert row["sample_rate"] == SAMPLE_RATE and row["duration_s"] > 0
        path = Path(row["path"]) if Path(row["path"]).is_absolute() else out / row["path"]
        if row["engine"] == "real":
            continue  # shared recordings: checked in the real-speech test
        info = sf.info(str(path))
        assert info.samplerate == SAMPLE_RATE and info.channels == 1
        assert info.frames / info.samplerate == pytest.approx(row["duration_s"], abs=1e-3)


def test_positive_clips_are_the_word_and_end_at_the_word(smoke: tuple[Path, list[dict]]) -> None:
    out, rows = smoke
    positives = [r for r in rows if r["kind"] == "positive"]
    assert len(positives) >= 20
    for row in positives:
        assert texts.normalise(row["text"]) == "espresso"
        audio, _ = sf.read(str(out / row["path"]), dtype="float32")
        assert 0.2 < len(audio) / SAMPLE_RATE < 2.5
        tail = audio[-SAMPLE_RATE // 50 :]  # last 20 ms still holds the word, not silence
        assert np.sqrt(np.mean(tail**2)) > 10 ** (-45 / 20) * np.max(np.abs(audio))


def test_splits_are_by_whole_voice(smoke: tuple[Path, list[dict]]) -> None:
    _, rows = smoke
    splits: dict[str, set[str]] = {}
    for row in rows:
        splits.setdefault(row["voice"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits.values()), {v: s for v, s in splits.items() if len(s) > 1}
    synthetic = [r for r in rows if r["engine"] in ("espeak-ng", "flite")]
    assert {r["split"] for r in synthetic} == {"train", "val"}


def test_inventory_groups_never_straddle_splits() -> None:
    voices = all_voices({"flite", "festival", "piper", "kokoro"}) + espeak_voices() + espeak_accented_voices()
    groups: dict[str, set[str]] = {}
    for v in voices:
        groups.setdefault(v.group, set()).add(v.split)
        assert v.voice_id.split(":")[0] == v.group.split(":")[0]
    assert all(len(s) == 1 for s in groups.values())
    assert len({v.voice_id for v in voices}) == len(voices)
    for engine in ("flite", "festival", "piper", "kokoro"):
        assert {v.split for v in voices if v.engine == engine} == {"train", "val"}, engine


@needs_espeak
def test_accented_voices_are_training_only_and_never_share_a_validation_variant() -> None:
    """Other-language espeak voices widen training; a held-out variant must not leak in through them."""
    accented = espeak_accented_voices()
    val_variants = {v for v in espeak_variants() if espeak_group_split("", v) == "val"}
    assert val_variants, "some espeak variants are held out for validation"
    assert {v.split for v in accented} == {"train"}
    assert {v.engine for v in accented} == {"espeak-ng"} and {v.pool for v in accented} == {
        ESPEAK_ACCENTED_POOL
    }
    assert {v.params["voice"].split("+")[1] for v in accented}.isdisjoint(val_variants)
    assert {v.params["voice"].split("+")[0] for v in accented} == set(ESPEAK_ACCENTED_LANGUAGES)
    native_groups = {v.group for v in espeak_voices()}
    assert native_groups.isdisjoint({v.group for v in accented})


@needs_espeak
def test_an_accented_pool_adds_training_speakers_and_leaves_validation_alone() -> None:
    """Planned apart (own counts, own folder): turning it on changes no validation clip."""
    base = PROFILES["smoke"]

    def counts(table: dict[str, int], accented: int) -> dict[str, int]:
        return {
            **{k: c for k, c in table.items() if k != ESPEAK_ACCENTED_POOL},
            ESPEAK_ACCENTED_POOL: accented,
        }

    plain = replace(
        base,
        positives=counts(base.positives, 0),
        confusables=counts(base.confusables, 0),
        speech=counts(base.speech, 0),
    )
    accented = replace(
        base,
        positives=counts(base.positives, 6),
        confusables=counts(base.confusables, 3),
        speech=counts(base.speech, 3),
    )

    def jobs(profile: Profile) -> list:
        return [j for phase in plan("espresso", profile, 0, {"espeak-ng", "flite"}) for j in phase]

    with_pool, without_pool = jobs(accented), jobs(plain)
    added = [j for j in with_pool if j.relpath.split("/")[1] == ESPEAK_ACCENTED_POOL]
    assert sorted(j.kind for j in added) == ["confusable"] * 3 + ["positive"] * 6 + ["speech"] * 3
    assert all(j.engine == "espeak-ng" and j.split == "train" for j in added)
    assert all(espeak_accent(j.voice_id) in ESPEAK_ACCENTED_LANGUAGES for j in added)
    val = {(j.relpath, j.voice_id, j.text) for j in without_pool if j.split == "val"}
    assert val and val == {(j.relpath, j.voice_id, j.text) for j in with_pool if j.split == "val"}


def test_varied_kokoro_speakers_are_distinct_training_voices() -> None:
    """Each speaker blends the base styles its own way; none reads the held-out accent or is validation."""
    voices = kokoro_varied_voices()
    assert len(voices) == KOKORO_VARIED_SPEAKERS == len({v.voice_id for v in voices})
    assert {v.split for v in voices} == {"train"} and {v.pool for v in voices} == {KOKORO_VARIED_POOL}
    blends = {v.params["blend"] for v in voices}
    assert len(blends) == len(voices)  # no two speakers share a style
    for blend in blends:
        assert {n for n, _ in blend} <= set(KOKORO_BASE)
        assert sum(w for _, w in blend) == pytest.approx(1, abs=0.01)
    accents = {v.params["accent"] for v in voices}
    assert len(accents) > 1 and accents.isdisjoint(ESPEAK_VAL_ACCENTS)
    yod = sum(v.params["yod_drop"] for v in voices)
    assert 0 < yod < len(voices) // 2
    assert kokoro_varied_voices() == voices  # stable across calls, so a resumed synthesis plans the same


def test_the_varied_profile_only_adds_its_pool() -> None:
    """Topping up a copy of the full data with `full-varied` must change no clip the full plan has."""
    full, varied = PROFILES["full"], PROFILES["full-varied"]
    assert replace(varied, positives=full.positives, confusables=full.confusables) == full
    assert {k: v for k, v in varied.positives.items() if k != KOKORO_VARIED_POOL} == full.positives
    base = PROFILES["smoke"]
    plus = replace(
        base,
        positives={**base.positives, KOKORO_VARIED_POOL: 5},
        confusables={**base.confusables, KOKORO_VARIED_POOL: 2},
    )

    def jobs(profile: Profile) -> list:
        found = [j for phase in plan("computer", profile, 0, {"espeak-ng", "flite", "kokoro"}) for j in phase]
        return sorted((j.relpath, j.voice_id, j.text, j.split) for j in found)

    with_pool, without_pool = jobs(plus), jobs(base)
    added = [j for j in with_pool if j[0].split("/")[1] == KOKORO_VARIED_POOL]
    assert len(added) == 7 and all(j[3] == "train" for j in added)
    assert sorted(set(with_pool) - set(added)) == without_pool


@pytest.mark.parametrize(
    ("ipa", "dropped"),
    [
        ("kəmpjˈuːɾɚ", "kəmpˈuːɾɚ"),  # computer, en-us
        ("kəmpjˈʉːtɜ", "kəmpˈʉːtɜ"),  # computer, en-gb-scotland
        ("njˈuːz", "nˈuːz"),  # news, en-gb
        ("jˈuː ɑːɹ", "jˈuː ɑːɹ"),  # you are: no consonant before the yod
        ("bjˈuːɾi", "bˈuːɾi"),
        ("jˈɛs", "jˈɛs"),
    ],
)
def test_drop_yod_removes_only_a_yod_after_a_consonant_before_u(ipa: str, dropped: str) -> None:
    assert drop_yod(ipa) == dropped


def test_a_profile_count_for_an_unknown_voice_pool_is_refused() -> None:
    """A misspelt pool would otherwise plan no clips for that count and nobody would notice."""
    base = PROFILES["smoke"]
    typo = replace(base, positives={**base.positives, "espeak-ng-acented": 4})
    with pytest.raises(ValueError, match="espeak-ng-acented"):
        plan("espresso", typo, 0, {"espeak-ng", "flite"})


def test_resume_skips_existing_files_and_prunes_stale_ones(smoke: tuple[Path, list[dict]]) -> None:
    out, rows = smoke
    before = {r["path"]: (out / r["path"]).stat().st_mtime_ns for r in rows if r["engine"] != "real"}
    stale = out / "positive" / "espeak-ng" / "99999-deadbeef00.wav"  # from an older plan
    stale.write_bytes(b"old")
    notes = out / "positive" / "espeak-ng" / "notes.txt"  # not ours: never deleted
    notes.write_text("keep")
    missing = out / rows[0]["path"]
    missing.unlink()
    synthesize("espresso", out, "smoke", seed=0, workers=1, engines={"espeak-ng", "flite"})
    again = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert again == rows
    assert missing.exists() and not stale.exists() and notes.exists()
    before.pop(rows[0]["path"])
    assert before == {p: (out / p).stat().st_mtime_ns for p in before}


@pytest.mark.parametrize("word", ["espresso", "computer", "hey computer"])
def test_confusables_never_are_the_word(word: str) -> None:
    found = texts.confusables(word, 60, vocabulary=["express", "pressure", "commuter", "computer", "coffee"])
    assert len(found) >= 40
    target = texts.normalise(word)
    for text in found:
        assert texts.normalise(text) != target
        assert target.replace(" ", "") not in texts.normalise(text).replace(" ", "")


def test_espresso_confusables_include_rule_based_and_curated() -> None:
    found = texts.confusables("espresso", 100, vocabulary=[])
    assert {"express", "pressure", "Esperanto", "espionage", "presto"} <= set(found)
    rule_based = [t for t in found if t not in texts.CURATED["espresso"]]
    assert len(rule_based) >= 20


def test_negative_sentences_never_contain_the_word() -> None:
    sentences = texts.negative_sentences("license", 30)
    assert len(sentences) == 30
    assert all("license" not in s.lower() for s in sentences)
    assert all(len(s.split()) >= 5 for s in sentences)


@needs_espeak
@needs_flite
def test_each_fast_voice_renders_non_silent_16k_audio() -> None:
    for voice in (espeak_voices()[0], flite_voices()[-1]):
        audio = render("espresso", voice, Variant(speed=1.1, pitch=0.95), trim=True)
        assert audio.dtype == np.float32 and audio.ndim == 1
        assert 0.2 * SAMPLE_RATE < len(audio) < 2.5 * SAMPLE_RATE
        assert np.sqrt(np.mean(audio**2)) > 0.02


def test_trim_silence_ends_at_the_sound() -> None:
    tone = 0.5 * np.sin(2 * np.pi * 300 * np.arange(8000) / SAMPLE_RATE).astype(np.float32)
    clip = np.concatenate([np.zeros(4000, np.float32), tone, np.zeros(6000, np.float32)])
    trimmed = trim_silence(clip)
    assert abs(len(trimmed) - (len(tone) + 0.02 * SAMPLE_RATE)) <= SAMPLE_RATE // 100


def test_perturb_voice_shifts_pitch_and_length() -> None:
    tone = np.sin(2 * np.pi * 200 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    up = perturb_voice(tone, 1.25)
    assert len(up) == pytest.approx(SAMPLE_RATE / 1.25, rel=0.01)
    peak_hz = np.argmax(np.abs(np.fft.rfft(up))) * SAMPLE_RATE / len(up)
    assert peak_hz == pytest.approx(250, rel=0.02)


def test_noise_colours_have_the_right_slope() -> None:
    def low_high_ratio(kind: str) -> float:
        spec = np.abs(np.fft.rfft(background.noise(kind, 4.0, seed=1))) ** 2
        f = np.fft.rfftfreq(4 * SAMPLE_RATE, 1 / SAMPLE_RATE)
        return spec[(f > 100) & (f < 200)].mean() / spec[(f > 4000) & (f < 5000)].mean()

    assert low_high_ratio("white") < 2 < low_high_ratio("pink") < low_high_ratio("brown")


def test_real_speech_missing_folder_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert real_speech_rows("espresso", tmp_path / "absent") == []
    assert "not found" in caplog.text


def test_real_speech_target_folder_is_never_training(tmp_path: Path) -> None:
    for folder in ("alexa", "computer", "jarvis"):
        (tmp_path / folder).mkdir()
        for i in range(10):
            sf.write(str(tmp_path / folder / f"{i}.wav"), np.zeros(1600, np.float32), SAMPLE_RATE)
    rows = real_speech_rows("computer", tmp_path)
    assert len(rows) == 30
    for row in rows:
        if row["text"] == "computer":
            assert (row["kind"], row["split"]) == ("real_positive_eval", "test")
        else:
            assert row["kind"] == "real_speech" and row["split"] in ("train", "val")
    assert all(r["kind"] == "real_speech" for r in real_speech_rows("espresso", tmp_path))


def test_cli_rejects_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--word", "123", "--out", str(tmp_path)]) == 2
    assert main(["--word", "espresso", "--workers", "8", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error:") for line in err)
