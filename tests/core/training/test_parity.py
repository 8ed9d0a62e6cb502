import torch

from cxrviewer.core.model.checkpoint import load_model, read_header
from cxrviewer.core.model.precision import PARITY_KEY, resolve_precision
from cxrviewer.core.training.parity import parity_record, rewrite_metadata, weights_digest


def test_parity_is_recorded_in_the_model_file_with_the_weights_byte_identical(tiny_model_file, monkeypatch):
    model = load_model(tiny_model_file)
    before_bytes = tiny_model_file.read_bytes()
    batches = [torch.randint(0, 256, (6, 1, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))]
    record = parity_record(model, batches)
    assert set(record) == {"bfloat16", "float16"} and record["bfloat16"]["n"] == 6
    digest = weights_digest(tiny_model_file)
    rewrite_metadata(tiny_model_file, {PARITY_KEY: record})
    assert weights_digest(tiny_model_file) == digest
    n_old = int.from_bytes(before_bytes[:8], "little")
    after = tiny_model_file.read_bytes()
    assert after[8 + int.from_bytes(after[:8], "little"):] == before_bytes[8 + n_old:]  # tensor bytes verbatim
    meta = read_header(tiny_model_file)
    assert meta[PARITY_KEY] == record and meta["threshold"] == model.meta["threshold"]
    reloaded = load_model(tiny_model_file)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values()))
    from cxrviewer.core.model import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    expected = "bfloat16" if record["bfloat16"]["agreement"] >= precision.MIN_AGREEMENT else "float32"
    assert resolve_precision("auto", "cpu", meta[PARITY_KEY]).name == expected
