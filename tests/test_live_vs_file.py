"""bench.live_vs_file's pure parts: attribution of events to clips, the paired table, alignment.

The live run itself plays audio in real time for minutes: it is a benchmark
(``python -m bench.live_vs_file``), not a test. ``listen --dump-audio``, which it uses,
is tested in test_dump.py. Nothing here asserts timing.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.live_vs_file import (
    ClipSpec,
    attribute,
    compare,
    exact_mcnemar_p,
    in_window,
    locate,
    paired_table,
    per_clip,
    sequence_layout,
)


def test_events_belong_to_the_last_clip_started_before_them() -> None:
    starts = [10.0, 16.0, 22.5]
    assert attribute([9.9, 10.0, 15.99, 16.0, 30.0], starts) == [None, 0, 0, 1, 2]
    assert per_clip([12.5, 17.0, 18.0, 5.0], starts) == [[2.5], [1.0, 2.0], []]
    with pytest.raises(ValueError):
        attribute([1.0], [2.0, 1.0])


def test_exact_mcnemar_p_is_the_two_sided_binomial_tail() -> None:
    assert exact_mcnemar_p(0, 0) == 1.0
    assert exact_mcnemar_p(0, 6) == pytest.approx(2 / 64)
    assert exact_mcnemar_p(9, 1) == pytest.approx(2 * (1 + 10) / 1024)
    assert exact_mcnemar_p(3, 3) == 1.0


def test_paired_table_counts_each_cell() -> None:
    file = [True, True, True, False, False, True]
    live = [True, False, False, False, True, True]
    table = paired_table(file, live)
    assert (table["both"], table["only_first"], table["only_second"], table["neither"]) == (2, 2, 1, 1)
    assert table["mcnemar_exact_p"] == pytest.approx(exact_mcnemar_p(2, 1))
    with pytest.raises(ValueError):
        paired_table([True], [True, False])


def test_in_window_counts_from_keyword_start_to_end_plus_allowance() -> None:
    clip = ClipSpec(0, "x.wav", 4.0, 1.0, 1.6, "clean", "")
    assert in_window([0.5, 1.7, 2.0], clip, 1.5) == 1.7
    assert in_window([0.9, 3.2], clip, 1.5) is None


def test_sequence_layout_puts_a_gap_before_and_after_each_clip() -> None:
    clips = [ClipSpec(i, f"{i}.wav", d, 0.5, 1.0, "clean", "") for i, d in enumerate((1.0, 2.5))]
    assert sequence_layout(clips, 2.0) == [32000, 32000 + 16000 + 32000]


def test_a_quiet_clip_is_located_beside_a_loud_one_and_a_lost_start_is_measured() -> None:
    """Clip levels differ by 40 dB: a raw correlation would peak on the loud neighbour."""
    rng = np.random.default_rng(3)
    quiet = np.round(rng.normal(0, 30, 8000)).astype(np.int16)
    loud = np.round(rng.normal(0, 3000, 8000)).astype(np.int16)
    recording = np.concatenate([np.zeros(5000, np.int16), quiet, np.zeros(3000, np.int16), loud])
    recording[5000:5080] = 0  # the first 5 ms lost, as paplay's start was here
    at = locate(recording, quiet, 0, search_s=2.0)
    assert at == 5000
    check = compare(recording, quiet, at)
    assert not check["exact"]
    assert check["exact_from_ms"] == pytest.approx(5.0, abs=0.1)
    assert check["level_db"] == pytest.approx(0.0, abs=0.1)
    assert compare(recording, loud, 16000)["exact"]
