"""Benchmarks of wakeword side by side with peers (PocketSphinx KWS, openWakeWord).

Run ``python -m bench`` (or ``make bench``); ``--quick`` for a smoke run on a few
seconds of audio. Every timing is taken in a fresh child process per engine, as
process CPU time (user + sys), because the machines are shared and wall time is
not trustworthy; results go to ``bench/results/``.
"""
