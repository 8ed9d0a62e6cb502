"""The node's durable queue: what is received stays until its results exist, and each result is sent once."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from cxrviewer.core.pacs.node_queue import NodeQueue, QueueError, check_uid
from tests.core.dicom_factory import make_dataset


def _result():
    ds = make_dataset(np.zeros((4, 4), np.uint8), StudyInstanceUID=generate_uid())
    return ds


def test_a_queue_survives_a_restart_at_every_step(tmp_path):
    q = NodeQueue(tmp_path)
    a, b = generate_uid(), generate_uid()
    assert q.put(a, b"first") and q.put(b, b"second")
    (tmp_path / "incoming" / ".half.tmp").write_bytes(b"partial")  # a write cut short by kill -9
    q.close()
    q = NodeQueue(tmp_path)
    assert [p.stem for p in q.pending()] == [a, b] and not (tmp_path / "incoming" / ".half.tmp").exists()
    r1, r2 = _result(), _result()
    q.finish(a, [r1, r2])
    assert [p.stem for p in q.pending()] == [b]
    assert not q.put(a, b"again")  # classified already: not queued twice
    waiting = q.waiting()
    assert sorted(p.stem for _, p in waiting) == sorted([str(r1.SOPInstanceUID), str(r2.SOPInstanceUID)])
    q.mark_sent(str(r1.SOPInstanceUID), a)
    q.close()
    q = NodeQueue(tmp_path)
    assert [p.stem for _, p in q.waiting()] == [str(r2.SOPInstanceUID)]  # the sent one is never sent again
    q.mark_sent(str(r2.SOPInstanceUID), a)
    assert q.waiting() == [] and not (tmp_path / "outbox" / a).exists()
    assert q.counts() == {"queued": 1, "outbox": 0, "sent": 2}


def test_results_written_before_a_kill_take_the_source_off_the_queue(tmp_path):
    q = NodeQueue(tmp_path)
    uid = generate_uid()
    q.put(uid, b"x")
    (tmp_path / "outbox" / uid).mkdir()  # killed after the outbox rename, before the source was removed
    assert q.pending() == [] and not (tmp_path / "incoming" / f"{uid}.dcm").exists()


@pytest.mark.parametrize("uid", ["../../etc/passwd", "", "1.2.abc", "1." * 40, "1..2"])
def test_only_real_uids_become_file_names(tmp_path, uid):
    with pytest.raises(QueueError, match="not a valid SOP Instance UID"):
        NodeQueue(tmp_path).put(uid, b"x")
    assert check_uid("1.2.840.10008 ") == "1.2.840.10008"
