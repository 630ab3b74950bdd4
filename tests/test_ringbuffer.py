"""RingBuffer: order, wrap-around, drop-oldest overruns, and a real writer thread."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from wakeword.ringbuffer import RingBuffer


def test_reads_return_samples_in_write_order() -> None:
    ring = RingBuffer(16)
    ring.write(np.arange(5, dtype=np.int16))
    ring.write(np.arange(5, 9, dtype=np.int16))
    assert ring.read(3).tolist() == [0, 1, 2]
    assert ring.read().tolist() == [3, 4, 5, 6, 7, 8]
    assert ring.read().size == 0
    assert ring.overruns == 0


def test_wraps_around_the_end_of_the_storage() -> None:
    ring = RingBuffer(8)
    ring.write(np.arange(6, dtype=np.int16))
    assert ring.read(5).tolist() == [0, 1, 2, 3, 4]
    ring.write(np.arange(6, 13, dtype=np.int16))  # 5 at the end, wraps over the start
    assert len(ring) == 8
    assert ring.read().tolist() == list(range(5, 13))
    assert ring.overruns == 0


def test_overrun_drops_the_oldest_and_counts() -> None:
    ring = RingBuffer(8)
    ring.write(np.arange(6, dtype=np.int16))
    dropped = ring.write(np.arange(6, 11, dtype=np.int16))  # 11 samples into 8
    assert dropped == 3
    assert ring.overruns == 1
    assert ring.dropped_samples == 3
    assert ring.read().tolist() == list(range(3, 11))


def test_write_larger_than_capacity_keeps_the_newest() -> None:
    ring = RingBuffer(4)
    ring.write(np.array([100, 101], dtype=np.int16))
    dropped = ring.write(np.arange(10, dtype=np.int16))
    assert dropped == 8  # both old samples and the first 6 new ones
    assert ring.read().tolist() == [6, 7, 8, 9]
    assert ring.overruns == 1


def test_wait_returns_when_data_arrives_or_times_out() -> None:
    ring = RingBuffer(32)
    assert ring.wait(4, timeout=0.01) is False
    timer = threading.Timer(0.05, ring.write, args=(np.ones(4, dtype=np.int16),))
    timer.start()
    assert ring.wait(4, timeout=5.0) is True
    timer.join()


def test_close_wakes_the_reader_and_leaves_the_rest_readable() -> None:
    ring = RingBuffer(32)
    ring.write(np.ones(3, dtype=np.int16))
    ring.close()
    assert ring.wait(10, timeout=5.0) is True
    assert ring.read().tolist() == [1, 1, 1]
    assert ring.closed


def test_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError):
        RingBuffer(0)


def test_concurrent_writer_thread_keeps_order_without_loss() -> None:
    """A writer thread and this reader race; with room enough, every sample arrives once, in order."""
    total, chunk = 200_000, 37
    ring = RingBuffer(total)  # never overruns: checks ordering/loss under concurrency alone
    source = (np.arange(total) % 32000).astype(np.int16)

    def produce() -> None:
        for start in range(0, total, chunk):
            ring.write(source[start : start + chunk])
        ring.close()

    writer = threading.Thread(target=produce)
    writer.start()
    received = []
    while True:
        ring.wait(64, timeout=1.0)
        got = ring.read(101)
        if got.size:
            received.append(got)
        elif ring.closed and len(ring) == 0:
            break
    writer.join()
    out = np.concatenate(received)
    assert ring.overruns == 0
    assert out.size == total
    np.testing.assert_array_equal(out, source)


def test_concurrent_small_buffer_lossless_writer_waits_for_space() -> None:
    """write_waiting (file/stdin producers) never drops, even through a tiny ring."""
    total = 50_000
    ring = RingBuffer(257)
    source = (np.arange(total) % 30000).astype(np.int16)

    def produce() -> None:
        for start in range(0, total, 1000):
            assert ring.write_waiting(source[start : start + 1000])
        ring.close()

    writer = threading.Thread(target=produce)
    writer.start()
    received = []
    while not (ring.closed and len(ring) == 0):
        ring.wait(1, timeout=1.0)
        received.append(ring.read(50))
    writer.join()
    np.testing.assert_array_equal(np.concatenate(received), source)
    assert ring.overruns == 0


def test_concurrent_overrun_loses_only_whole_oldest_stretches() -> None:
    """A slow reader loses audio, but what it gets is still in order and the loss is counted."""
    total = 100_000
    source = np.arange(total, dtype=np.int64)
    ring = RingBuffer(1000, dtype=np.int64)

    def produce() -> None:
        for start in range(0, total, 500):
            ring.write(source[start : start + 500])
        ring.close()

    writer = threading.Thread(target=produce)
    writer.start()
    writer.join()  # reader starts late: everything but the newest 1000 is gone
    out = ring.read()
    assert out.tolist() == list(range(total - 1000, total))
    assert ring.dropped_samples == total - 1000
    assert ring.overruns > 0


def test_wait_for_many_samples_sees_small_writes_add_up() -> None:
    """The writer wakes the reader only at the reader's threshold; small writes must still get there."""
    ring = RingBuffer(1000)

    def produce() -> None:
        for _ in range(20):
            ring.write(np.ones(10, dtype=np.int16))
            time.sleep(0.002)

    writer = threading.Thread(target=produce)
    writer.start()
    assert ring.wait(150, timeout=10.0) is True
    assert len(ring) >= 150
    writer.join()
