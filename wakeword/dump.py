"""``listen --dump-audio FILE``: write exactly what the detector heard, for debugging live vs file.

A :class:`wakeword.listen.StreamTap` that appends every processed chunk to a 16 kHz
mono 16-bit WAV on the stream clock: audio lost to overruns or a lost input is
written as zeros of the same length, so sample ``n`` of the file is stream time
``n / 16000`` s, the clock ``Detection.time_s`` and the hook's ``stream_time_s`` use.
``wakeword detect FILE`` on the dump then replays the live run offline. Off unless
asked for: it is audio of a home, and it grows by 1.9 MB a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from wakeword.audio import SAMPLE_RATE
from wakeword.errors import ConfigError

if TYPE_CHECKING:
    from wakeword.detector import Detection
    from wakeword.engine import Detector


class AudioDump:
    """Writes the processed stream to a WAV (zeros where audio was dropped)."""

    wants_scores = False

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file: sf.SoundFile | None = sf.SoundFile(
                str(self.path), "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="WAV"
            )
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"--dump-audio {path}: cannot write ({exc})") from exc
        self.written = 0  # samples, zeros for gaps included

    def attach(self, detector: Detector, offset_s: float) -> None:
        pass

    def step(
        self,
        chunk: np.ndarray,
        position: int,
        detections: Sequence[Detection],
        scores: dict[str, tuple[int, list[float]]],
    ) -> None:
        if self._file is None:
            return
        if position > self.written:  # dropped audio: keep the file on the stream clock
            self._file.write(np.zeros(position - self.written, dtype=np.int16))
            self.written = position
        if chunk.size:
            pcm = chunk if chunk.dtype == np.int16 else np.clip(np.rint(chunk * 32768.0), -32768, 32767)
            self._file.write(np.asarray(pcm, dtype=np.int16))
            self.written += chunk.size

    def finish(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()
