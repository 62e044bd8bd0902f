"""What a new user reads first: `--version`, `list run -v`, the install extras."""
from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from archsearch.cli import main
from archsearch.config import SearchConfig, TrainConfig, describe_run

ROOT = Path(__file__).resolve().parents[1]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert re.fullmatch(r"archsearch \S+.*\n", capsys.readouterr().out)


def _verbose_list(what: str, capsys) -> str:
    assert main(["list", what, "-v"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("cls,section", [(SearchConfig, "search"), (TrainConfig, "train")])
def test_list_run_shows_every_run_level_key(cls, section, capsys):
    out = _verbose_list("run", capsys)
    part = out.split(f"\n  {section}\n", 1)[1]
    keys = {line.split(" = ", 1)[0].strip() for line in part.splitlines() if line.startswith("    ")}
    default = cls()
    scalars = {f.name for f in dataclasses.fields(cls) if not dataclasses.is_dataclass(getattr(default, f.name))}
    assert scalars <= keys
    assert {"seed", "device", "steps_per_epoch", "log_every", "data.batch_size", "optim.lr"} <= keys
    assert {k for k, _, _ in describe_run(cls)} <= keys
    assert not any(k.startswith(("space.", "strategy.", "objective.", "model.")) for k in keys)


def test_list_run_keys_of_search_and_train():
    search = {k for k, _, _ in describe_run(SearchConfig)}
    train = {k for k, _, _ in describe_run(TrainConfig)}
    assert {"val_batches", "checkpoint_every", "history_every", "precision", "data.name"} <= search
    assert {"eval_batches", "ema_decay", "optim.schedule"} <= train


def test_list_all_verbose_includes_the_run_keys(capsys):
    out = _verbose_list("all", capsys)
    assert "\nrun:\n  search\n" in out and "checkpoint_every = 50" in out


def test_install_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"onnx", "export", "timm", "ray", "docs", "test"} <= set(extras)
    assert extras["export"] == ["archsearch[onnx]"]  # the old name still installs the same packages
    assert {"archsearch[onnx]", "archsearch[timm]", "archsearch[ray]"} <= set(extras["test"])
    assert any(d.startswith("mkdocs-material") for d in extras["docs"])


def _reference():
    """docs/gen_reference.py, the mkdocs hook that writes the manual's CLI and options pages."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_manual_documents_every_command_and_every_option():
    from archsearch.commands import ORDER
    from archsearch.commands.listing import _registries

    ref = _reference()
    cli, options = ref.cli_page(), ref.options_page()
    for name in ORDER:
        assert f"\n## {name}\n" in cli and f"usage: archsearch {name}" in cli
    assert "`--selection {argmax,perturbation,sampled}`" in cli and "`--version`" in cli
    for axis, plural in ref.AXES:
        for item in _registries()[plural].names():
            assert f"### `{axis}.name={item}`" in options
    assert "| `strategy.supernet_epochs` |" in options and "| `checkpoint_every` | `50` |" in options
    assert "&lt;root&gt;/train" in options  # an HTML-like word shows as written


def test_the_manual_builds_without_committed_pages():
    mkdocs = yaml_load(ROOT / "mkdocs.yml")
    assert mkdocs["docs_dir"] == "docs" and mkdocs["hooks"] == ["docs/gen_reference.py"]
    for name in _reference().PAGES:
        assert not (ROOT / "docs" / name).exists()  # generated at build time only


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
