"""docs/cli.md is what the argument parsers give now (regenerate: python docs/gen_cli_reference.py)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "docs" / "gen_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date(monkeypatch):
    monkeypatch.setenv("COLUMNS", "37")  # a narrow terminal must not change the file
    gen = _generator()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert gen.render() == current, "docs/cli.md is out of date: run python docs/gen_cli_reference.py"


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    gen = _generator()
    stale = tmp_path / "cli.md"
    stale.write_text("# Command-line reference\n", encoding="utf-8")
    monkeypatch.setattr(gen, "TARGET", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
