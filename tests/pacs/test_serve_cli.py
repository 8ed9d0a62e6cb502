"""``cxrviewer serve``'s refusals: one line on stderr, exit 1, before anything is loaded."""

from __future__ import annotations

import json

import pytest

from cxrviewer.cli import main


@pytest.mark.parametrize("argv, words", [
    (["serve"], "--workdir is required"),
    (["serve", "--workdir", "W", "--send-to", "ORTHANC:4242"], "expected AET@HOST:PORT"),
    (["serve", "--workdir", "W", "--send-to", "A_TITLE_LONGER_THAN_16@h:1"], "not a valid AE title"),
])
def test_bad_options_fail_in_one_line(argv, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_a_config_file_gives_defaults_and_refuses_unknown_keys(tmp_path, capsys):
    from cxrviewer.serve import build_serve_parser, resolve

    cfg = tmp_path / "node.json"
    cfg.write_text(json.dumps({"workdir": str(tmp_path), "port": 104, "allow_aet": ["MODALITY"]}))
    args = resolve(build_serve_parser().parse_args(["--config", str(cfg), "--port", "11113"]))
    assert (args.port, args.workdir, args.allow_aet, args.host) == (11113, str(tmp_path), ["MODALITY"], "127.0.0.1")
    cfg.write_text(json.dumps({"workdir": "w", "sendto": "X@h:1"}))
    assert main(["serve", "--config", str(cfg)]) == 1
    assert "unknown keys ['sendto']" in capsys.readouterr().err
