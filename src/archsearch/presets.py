"""The shipped YAML presets (`configs/`): finding one by name or path."""
from __future__ import annotations

from pathlib import Path

from archsearch.errors import ConfigError

PRESETS = Path(__file__).parent / "configs"


def resolve_config(name: str) -> Path:
    """A path to a YAML file, or the name of a shipped preset (with or without .yaml)."""
    p = Path(name)
    try:
        if p.is_file():
            return p
        preset = PRESETS / (p.name if p.suffix else p.name + ".yaml")
        if preset.is_file():
            return preset
    except OSError:  # e.g. a name longer than the file system allows
        pass
    raise ConfigError(f"config {name!r} not found (neither a file nor a preset; see `archsearch list configs`)")


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))
