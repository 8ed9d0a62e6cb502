"""``cxrviewer serve`` against a real Orthanc: results arrive once, survive kill -9, outlast a PACS that is down,
and bad data sets are refused without stopping the node. The node runs as a subprocess with a tiny model."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from cxrviewer.core.pacs.dicom_net import DicomNetError, Peer, echo
from cxrviewer.core.pacs.dicom_sr import read_verdict_sr
from tests.core.dicom_factory import make_dataset, make_jpeg_dicom, write
from tests.pacs.node_helpers import SC_CLASS, SR_CLASS, NodeProcess, by_class, radiographs, store, wait_for
from tests.pacs.orthanc import free_port, start_orthanc

DX = "1.2.840.10008.5.1.4.1.1.1.1"


def _results(orthanc, n_sr: int, n_sc: int, timeout: float = 240.0) -> dict[str, list[dict]]:
    def enough():
        found = by_class(orthanc.instances())
        return found if len(found.get(SR_CLASS, [])) >= n_sr and len(found.get(SC_CLASS, [])) >= n_sc else None
    return wait_for(enough, timeout, f"{n_sr} SRs and {n_sc} Secondary Captures in Orthanc")


def _sr_of(orthanc, tags: dict) -> pydicom.Dataset:
    iid = orthanc.post("/tools/lookup", tags["SOPInstanceUID"])[0]["ID"]
    import urllib.request

    with urllib.request.urlopen(f"{orthanc.url}/instances/{iid}/file", timeout=10) as r:
        return pydicom.dcmread(io.BytesIO(r.read()))


def _one_result_each(orthanc, found: dict, sources: list) -> None:
    """Every source has exactly one SR (referencing it, in its study) and one Secondary Capture in its study."""
    studies = {str(ds.SOPInstanceUID): str(ds.StudyInstanceUID) for ds in sources}
    referenced = [read_verdict_sr(_sr_of(orthanc, t))["Source"] for t in found[SR_CLASS]]
    assert sorted(referenced) == sorted(studies), "each source must have exactly one SR"
    for tags in found[SR_CLASS]:
        assert tags["StudyInstanceUID"] in studies.values()
    sc_studies = sorted(t["StudyInstanceUID"] for t in found[SC_CLASS])
    assert sc_studies == sorted(studies.values()), "one Secondary Capture per source, in the source's study"


def _drained(workdir) -> None:
    """Wait until the node's queue and outbox are empty (every result sent)."""
    wait_for(lambda: not list((workdir / "incoming").glob("*.dcm")) and not any((workdir / "outbox").iterdir()),
             120, "the queue and the outbox to empty")


def _read(paths):
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def test_a_burst_of_20_arrives_once_each_and_sigterm_stops_cleanly(orthanc, tmp_path, tiny_model_file):
    node = NodeProcess(tmp_path / "work", tiny_model_file, f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}").start()
    paths = radiographs(tmp_path / "in", 20)
    assert store(node.peer, paths) == [0] * 20
    found = _results(orthanc, 20, 20)
    _one_result_each(orthanc, found, _read(paths))
    sr = read_verdict_sr(_sr_of(orthanc, found[SR_CLASS][0]))
    assert sr["Finding"] in ("NORMAL", "PNEUMONIA") and sr["Decision threshold"] == 0.5
    assert sr["Algorithm Name"] == "tiny" and sr["Algorithm Version"].startswith("sha256:")
    assert abs(sr["Probability of NORMAL"] + sr["Probability of PNEUMONIA"] - 1) < 1e-6
    assert sr["Within the model's scope"] == "yes" and sr["Unstable verdict"] == "not run"
    assert node.terminate() == 0
    lines = node.lines()
    per_instance = [line for line in lines if " from MODALITY: " in line]
    assert len(per_instance) == 20 and not any("Test^Patient" in line for line in lines)
    assert "'queued': 0, 'outbox': 0" in lines[-1]


def test_kill_9_right_after_the_burst_loses_nothing_and_sends_nothing_twice(orthanc, tmp_path, tiny_model_file):
    dest = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    node = NodeProcess(tmp_path / "work", tiny_model_file, dest).start()
    paths = radiographs(tmp_path / "in", 20)
    assert store(node.peer, paths) == [0] * 20  # each success was answered after the instance was on disk
    node.kill()
    NodeProcess(tmp_path / "work", tiny_model_file, dest, node.port).start()
    found = _results(orthanc, 20, 20)
    _one_result_each(orthanc, found, _read(paths))
    _drained(tmp_path / "work")
    assert len(by_class(orthanc.instances())[SR_CLASS]) == 20


def test_a_destination_that_is_down_is_retried_until_it_comes_up(tmp_path, tiny_model_file, orthanc_server):
    port = free_port()
    node = NodeProcess(tmp_path / "work", tiny_model_file, f"LATE@127.0.0.1:{port}").start()
    paths = radiographs(tmp_path / "in", 3)
    assert store(node.peer, paths) == [0] * 3
    wait_for(lambda: any("retrying in" in line for line in node.lines()), 120, "a retry")
    (tmp_path / "late").mkdir()
    late = start_orthanc(tmp_path / "late", {}, dicom_port=port)
    try:
        found = _results(late, 3, 3)
        _one_result_each(late, found, _read(paths))
    finally:
        late.stop()
        node.terminate()


def _syntax_corpus(folder) -> tuple[list, list]:
    """Radiographs in each compressed transfer syntax (in scope), and out-of-scope ones (a hand; a 4:1 strip)."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    grey = (np.linspace(0, 200, 96)[None, :] + rng.integers(0, 50, (96, 96))).astype(np.uint8)
    tags = lambda: dict(StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), PatientID="S")  # noqa: E731
    jpeg, _ = make_jpeg_dicom(folder / "jpeg.dcm", grey)
    ds = pydicom.dcmread(jpeg)
    for k, v in tags().items():
        setattr(ds, k, v)
    ds.save_as(jpeg)
    rle = write(make_dataset(grey.astype(np.uint16) * 16, bits_stored=12, **tags()), folder / "rle.dcm", RLELossless)
    j2k = make_dataset(grey.astype(np.uint16) * 16, bits_stored=12, **tags())
    j2k.compress(JPEG2000Lossless)
    j2k.save_as(folder / "j2k.dcm", enforce_file_format=True)
    in_scope = [jpeg, rle, folder / "j2k.dcm"]
    hand = write(make_dataset(grey, BodyPartExamined="HAND", **tags()), folder / "hand.dcm")
    lossless = pydicom.dcmread(get_testdata_file("JPEG-LL.dcm"))  # JPEG Lossless SV1, 1024 x 256
    lossless.SOPClassUID = lossless.file_meta.MediaStorageSOPClassUID = DX
    lossless.Modality, lossless.BodyPartExamined = "DX", "CHEST"
    lossless.SOPInstanceUID = lossless.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for k, v in tags().items():
        setattr(lossless, k, v)
    lossless.save_as(folder / "lossless.dcm")
    return in_scope, [hand, folder / "lossless.dcm"]


def test_every_transfer_syntax_is_read_and_out_of_scope_images_get_a_not_assessed_sr(orthanc, tmp_path,
                                                                                    tiny_model_file):
    in_scope, out = _syntax_corpus(tmp_path / "in")
    node = NodeProcess(tmp_path / "work", tiny_model_file, f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}").start()
    try:
        assert store(node.peer, in_scope + out) == [0] * 5
        found = _results(orthanc, 5, 3)
    finally:
        node.terminate()
    assert len(found[SC_CLASS]) == 3
    reports = {read_verdict_sr(_sr_of(orthanc, t))["Source"]: read_verdict_sr(_sr_of(orthanc, t))
               for t in found[SR_CLASS]}
    for path in in_scope:
        assert reports[str(pydicom.dcmread(path).SOPInstanceUID)]["Finding"] in ("NORMAL", "PNEUMONIA"), path.name
    hand = reports[str(pydicom.dcmread(out[0]).SOPInstanceUID)]
    assert hand["Finding"] == "Not assessed" and "HAND" in hand["Reason not assessed"]
    assert "Probability of PNEUMONIA" not in hand
    strip = reports[str(pydicom.dcmread(out[1]).SOPInstanceUID)]
    assert strip["Finding"] == "Not assessed" and "aspect ratio" in strip["Reason not assessed"]


def _hardening_corpus(folder) -> tuple[list, list]:
    """Data sets a node must refuse (malformed, oversized, not a radiograph) and ones it must answer (readable
    headers whose pixels are broken: answered with a "not assessed" SR)."""
    folder.mkdir()
    tags = lambda: dict(StudyInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(), PatientID="H")  # noqa: E731
    pixels = (np.arange(96 * 96).reshape(96, 96) % 4000).astype(np.uint16)
    refused, answered = [], []
    big = make_dataset(np.zeros((1100, 1100), np.uint16), **tags())  # 2.4 MB over a 1 MiB limit
    refused.append(write(big, folder / "oversized.dcm"))
    garbage = write(make_dataset(pixels, **tags()), folder / "garbage.dcm")
    data = bytearray(garbage.read_bytes())
    start = data.index(b"\x28\x00\x10\x00")  # Rows: after the UIDs the sender reads, before the pixels
    data[start:start + 64] = bytes(np.random.default_rng(2).integers(0, 256, 64, dtype=np.uint8))
    garbage.write_bytes(bytes(data))
    refused.append(garbage)
    no_study = make_dataset(pixels)
    refused.append(write(no_study, folder / "no_study.dcm"))
    bad_uid = make_dataset(pixels, **tags())
    bad_uid.SOPInstanceUID = "../../etc/passwd"
    refused.append(write(bad_uid, folder / "bad_uid.dcm"))
    no_pixels = make_dataset(None, **tags())
    refused.append(write(no_pixels, folder / "no_pixels.dcm"))
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # not a radiograph class: refused at negotiation
    ct.save_as(folder / "ct.dcm")
    refused.append(folder / "ct.dcm")
    short = make_dataset(pixels, **tags())
    short.PixelData = short.PixelData[:500]
    answered.append(write(short, folder / "short_pixels.dcm"))
    bomb, _ = make_jpeg_dicom(folder / "bomb.dcm", np.full((64, 64), 100, np.uint8))
    ds = pydicom.dcmread(bomb)
    for k, v in tags().items():
        setattr(ds, k, v)
    ds.save_as(bomb)
    data = bomb.read_bytes()
    sof = data.index(b"\xff\xc0")
    bomb.write_bytes(data[:sof + 5] + struct.pack(">HH", 60000, 60000) + data[sof + 9:])
    answered.append(bomb)
    answered.append(write(make_dataset(pixels, bits_stored=12, RescaleSlope="1e38", **tags()), folder / "inf.dcm"))
    return refused, answered


def test_hardening_corpus_over_the_network(orthanc, tmp_path, tiny_model_file):
    refused, answered = _hardening_corpus(tmp_path / "in")
    node = NodeProcess(tmp_path / "work", tiny_model_file, f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", None,
                       "--max-mb", "1", "--allow-aet", "MODALITY").start()
    try:
        with pytest.raises(AssertionError, match="no association"):
            store(node.peer, answered[:1], calling="STRANGER")  # --allow-aet: other callers are not accepted
        statuses = store(node.peer, refused + answered)
        assert all(s != 0 for s in statuses[:len(refused)]), statuses
        assert statuses[len(refused):] == [0] * len(answered)
        echo(node.peer, "MODALITY")  # still answering
        _results(orthanc, len(answered), 0)
        _drained(tmp_path / "work")
        assert node.proc.poll() is None
    finally:
        node.terminate()
    found = by_class(orthanc.instances())
    reports = [read_verdict_sr(_sr_of(orthanc, t)) for t in found[SR_CLASS]]
    sent = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in answered}
    assert {r["Source"] for r in reports} == sent  # every accepted entry answered, none lost
    assessed = [r for r in reports if r["Finding"] != "Not assessed"]
    assert len(found.get(SC_CLASS, [])) == len(assessed)
    assert any("pixel data" in r.get("Reason not assessed", "") for r in reports)


def test_an_unknown_peer_fails_clearly():
    with pytest.raises(DicomNetError, match="no association"):
        echo(Peer("NOBODY", "127.0.0.1", free_port()), "TESTS")
