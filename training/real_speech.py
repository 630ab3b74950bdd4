"""Real people's recordings of other wake words: ../shared/data/real-speech/{alexa,computer,jarvis}/.

They are never copied: manifest rows point at the shared FLAC files. For a target word that is one of
the folders, that folder becomes the real-voice *evaluation* set (kind real_positive_eval, split test)
and is never trained on; the other folders are negatives split ~60/40 train/val by file hash.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import soundfile as sf

from training.texts import normalise
from training.voices import stable_hash

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("alexa", "computer", "jarvis")
VAL_PERCENT = 40
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


def real_speech_dir() -> Path:
    """`<repo>/../shared/data/real-speech`, or $WAKEWORD_REAL_SPEECH_DIR when set."""
    env = os.environ.get("WAKEWORD_REAL_SPEECH_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "real-speech"


def real_speech_rows(word: str, root: Path | None = None) -> list[dict]:
    """Manifest rows for every readable recording; [] (with one warning) when the folder is absent."""
    root = root or real_speech_dir()
    if not root.is_dir():
        log.warning("real speech folder %s not found: skipping real-voice negatives and evaluation", root)
        return []
    target = normalise(word)
    rows = []
    for folder in FOLDERS:
        # alexa/ holds FLAC, computer/ and jarvis/ WAV: take whatever audio soundfile reads.
        files = sorted(
            (p for p in (root / folder).glob("*") if p.suffix.lower() in AUDIO_SUFFIXES), key=lambda p: p.name
        )
        if not files:
            log.warning("no recordings in %s", root / folder)
        for path in files:
            try:
                info = sf.info(str(path))
            except Exception as exc:  # a file that does not decode is left out, not fatal
                log.warning("skipping unreadable %s: %s", path, exc)
                continue
            if folder == target:
                kind, split = "real_positive_eval", "test"
            else:
                kind = "real_speech"
                split = "val" if stable_hash(f"real:{folder}/{path.name}") % 100 < VAL_PERCENT else "train"
            rows.append(
                {
                    "path": str(path.resolve()),
                    "kind": kind,
                    "text": folder,
                    "voice": f"real:{folder}:{path.stem}",
                    "engine": "real",
                    "split": split,
                    "duration_s": round(info.frames / info.samplerate, 4),
                    "sample_rate": int(info.samplerate),
                    "variant": "",
                }
            )
    return rows
