"""The daemon pool's gate: a run's end waits for forward passes under way, never for a stuck read."""

import threading

from cxrviewer.core.batch.workers import Gate


def test_gate_waits_for_those_inside_and_then_lets_no_one_in():
    gate, inside, release = Gate(), threading.Event(), threading.Event()

    def work():
        assert gate.enter()
        inside.set()
        release.wait(10)
        gate.leave()

    t = threading.Thread(target=work, daemon=True)
    t.start()
    assert inside.wait(10)
    assert gate.close(timeout=0.05) is False  # one still inside: close waits, then reports it
    assert gate.enter() is False  # closed: nobody new gets in
    release.set()
    assert gate.close(timeout=10) is True
    t.join(10)


def test_an_unused_gate_closes_at_once():
    assert Gate().close(timeout=0) is True
