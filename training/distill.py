"""Distil a mean of models (``training.ensemble``) into one network: the teacher's per-frame
probabilities become part of the student's training target.

Why: a mean of members can hear more real people than most of its members (the shipped computer
mean misses 25.1% of real recordings at <= 0.5 FA/h, its members 19.5, 41.9 and 44.0%), mostly
because members fire on different negatives, so the mean's false-accept tail is lighter. It is no
rule (README "Averaging more members does not pay"), and each member costs a GRU at run time and in
the file. A student trained towards the
mean's probabilities might keep part of that gain at one member's cost. Judged on real people
(bench/results/distill-rule.md): it does not; two students of the shipped computer mean match it on
synthetic voices and miss ~13 points more real recordings, so nothing uses it by default.

The teacher runs through ``wakeword.model.WakeWordModel``, the daemon's own onnxruntime session, on
the very feature arrays the student trains on, from a fresh state per clip, as the detector would
(no train/serve skew in the targets). Its probabilities are computed once per dataset part and kept
in the run's work folder, keyed by the teacher file's SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wakeword import frontend
from wakeword.errors import ModelError
from wakeword.model import WakeWordModel

log = logging.getLogger(__name__)

#: Cached probabilities are ``teacher-<part>-<sha>.npy`` in a run's work folder; make_model's train
#: stage owns this pattern, so a changed dataset (a new train key) deletes them with its checkpoints.
CACHE_GLOB = "teacher-*.npy"


class TeacherError(ValueError):
    """A teacher that cannot teach this run (missing, unreadable, or another front end)."""


@dataclass(frozen=True)
class Teacher:
    """Where the teacher is and what it weighs in each frame's target.

    ``weight`` w: target = (1 - w) * label + w * teacher probability on every unmasked frame of
    the training clips and streams; mined hard negatives keep their 0 targets (they are the
    student's own false alarms, which the teacher was never asked about)."""

    path: str
    sha256: str
    weight: float

    @classmethod
    def from_file(cls, path: Path, weight: float) -> Teacher:
        if not 0.0 < weight <= 1.0:
            raise TeacherError(f"the distillation weight must be in (0, 1], got {weight}")
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise TeacherError(f"cannot read the teacher model {path}: {exc.strerror or exc}") from exc
        return cls(str(path), digest, weight)


def load_teacher(teacher: Teacher, features: frontend.FrontEndConfig) -> WakeWordModel:
    """The teacher's session, refused unless it reads exactly the student's front end."""
    try:
        model = WakeWordModel.load(teacher.path)
    except ModelError as exc:
        raise TeacherError(f"the teacher cannot be loaded: {exc}") from exc
    if frontend.to_dict(model.features) != frontend.to_dict(features):
        raise TeacherError(
            f"the teacher {teacher.path} reads another front end ({frontend.describe(model.features)}) "
            f"than this run ({frontend.describe(features)})"
        )
    return model


def teacher_probabilities(model: WakeWordModel, features: np.ndarray, desc: str = "teacher") -> np.ndarray:
    """Per-frame probabilities [N, T] (float16) of ``model`` for clips ``features`` [N, T, F]."""
    out = np.zeros(features.shape[:2], dtype=np.float16)
    for i in tqdm(range(len(features)), desc=desc, unit="clip", mininterval=10):
        probs, _ = model.run(np.asarray(features[i], dtype=np.float32), model.initial_state())
        out[i] = probs
    return out


def cached_probabilities(
    teacher: Teacher, features: frontend.FrontEndConfig, clips: np.ndarray, work: Path, part: str
) -> np.ndarray:
    """``teacher_probabilities`` kept in ``work`` as ``teacher-<part>-<sha>.npy``, recomputed when the
    teacher file or the clip count changed (a changed dataset: see ``CACHE_GLOB``)."""
    tagged = work / f"teacher-{part}-{teacher.sha256[:16]}.npy"
    if tagged.exists():
        cached = np.load(tagged)
        if cached.shape == clips.shape[:2]:
            return cached
    probs = teacher_probabilities(load_teacher(teacher, features), clips, f"teacher {part}")
    tagged.parent.mkdir(parents=True, exist_ok=True)
    np.save(tagged, probs)
    log.info("teacher probabilities for %d clips in %s", len(clips), tagged.name)
    return probs
