"""``listen --dump-audio FILE``: write exactly what the detector heard, for debugging live vs file.

A :class:`wakeword.listen.StreamTap` that appends every processed chunk to a 16 kHz
mono 16-bit WAV on the stream clock: audio lost to overruns or a lost input is
written as zeros of the same length, so sample ``n`` of the file is stream time
``n / 16000`` s, the clock ``Detection.time_s`` and the hook's ``stream_time_s`` use.
``wakeword detect FILE`` on the dump then replays the live run offline. Off unless
asked for: it is audio of a home, and it grows by 1.9 MB a minute.

The live loop restarts its detector after dropped audio and after a reload; ``FILE.restarts``
beside the WAV notes each restart, so the replay restarts at the same samples and skips the
zeros (see :class:`wakeword.engine.Restart`). Without it the replay would differ after the first
hole: its features would straddle the hole and the 10 ms frames fall at other samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from wakeword.audio import SAMPLE_RATE
from wakeword.engine import Restart
from wakeword.errors import AudioError, ConfigError

if TYPE_CHECKING:
    from wakeword.detector import Detection
    from wakeword.engine import Detector

RESTARTS_HEADER = (
    "# wakeword --dump-audio restarts: <sample where the detector restarted> <unheard samples before it>"
)


def restarts_path(path: str | Path) -> Path:
    """The sidecar beside a dump that notes where the live detector restarted."""
    return Path(f"{path}.restarts")


def read_restarts(path: str | Path) -> list[Restart]:
    """The restarts noted beside the recording ``path`` (none for an ordinary audio file)."""
    sidecar = restarts_path(path)
    try:
        text = sidecar.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AudioError(f"{sidecar}: cannot read ({exc.strerror or exc})") from exc
    restarts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            position, unheard = (int(field) for field in line.split())
        except ValueError:
            raise AudioError(
                f"{sidecar}, line {number}: expected two whole numbers (sample, unheard), got {line!r}"
            ) from None
        if position < 0 or not 0 <= unheard <= position:
            raise AudioError(
                f"{sidecar}, line {number}: sample {position} with {unheard} unheard is impossible"
            )
        restarts.append(Restart(position, unheard))
    return restarts


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
        self._restarts = restarts_path(self.path)
        self._restarts.unlink(missing_ok=True)  # a stale one would misplace this recording's restarts

    def attach(self, detector: Detector, offset_s: float) -> None:
        """A detector started at stream time ``offset_s``: note it (not the first, at 0)."""
        position = round(offset_s * SAMPLE_RATE)
        if self._file is None or position <= 0:
            return
        unheard = max(0, position - self.written)  # the zeros step() writes before the next chunk
        try:
            new = not self._restarts.exists()
            with self._restarts.open("a") as notes:
                if new:
                    notes.write(RESTARTS_HEADER + "\n")
                notes.write(f"{position} {unheard}\n")
        except OSError as exc:  # the tap's caller logs it; the WAV itself goes on
            raise OSError(f"{self._restarts}: cannot write ({exc.strerror or exc})") from exc

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
