"""The manual's reference pages, generated from the code so they cannot drift from it.

`cli.md` renders the argparse parser of every `archsearch` command (cli.py builds them) and
`options.md` every config key: the keys of a search and a training run, then each registered
component's options (config.describe_options), with defaults and help.

mkdocs.yml names this file as a hook: `on_files` adds both pages to every build, so no generated
file is committed. `python docs/gen_reference.py DIR` writes them to DIR to read them without mkdocs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Document this checkout's code, not another installed copy. The package is imported now: mkdocs
# restores sys.path once a hook module has loaded, and its submodules are found through its __path__.
SRC = Path(__file__).resolve().parents[1] / "src"
if sys.path[:1] != [str(SRC)]:
    sys.path.insert(0, str(SRC))
import archsearch  # noqa: E402,F401

WIDTH = 100  # usage lines wrap here, whatever the terminal
AXES = (("space", "spaces"), ("strategy", "strategies"), ("objective", "objectives"), ("model", "models"),
        ("executor", "executors"))


def _cell(text: str) -> str:
    """Text fit for one cell of a Markdown table (inside backticks)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _prose(text: str) -> str:
    """Plain text fit for a Markdown table cell: `<root>` shows as written, not as an HTML tag."""
    return _cell(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _docstring(obj) -> str:
    """The first paragraph of an object's own docstring ('' for a dataclass's generated one)."""
    doc = getattr(obj, "__doc__", None) or ""
    if doc.startswith(f"{getattr(obj, '__name__', '')}("):
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        name = ", ".join(action.option_strings) or action.dest.upper()
        if action.option_strings and action.nargs != 0:
            name += f" {formatter._format_args(action, action.dest.upper())}"
        help_ = formatter._expand_help(action) if action.help else ""
        if action.choices is not None and not action.option_strings:
            help_ = f"{help_} (one of: {', '.join(map(str, action.choices))})".strip()
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in help_:
            help_ = f"{help_} (default: {action.default})".strip()
        rows.append(f"| `{_cell(name)}` | {_prose(help_)} |")
    return ["| argument | meaning |", "| --- | --- |", *rows] if rows else []


def cli_page() -> str:
    from archsearch.cli import build_parser
    from archsearch.commands import COMMANDS, ORDER

    parser = build_parser()
    fixed = lambda prog: argparse.HelpFormatter(prog, width=WIDTH)  # noqa: E731
    parser.formatter_class = fixed
    sub = _subparsers(parser)
    helps = {a.dest: a.help for a in sub._choices_actions}
    out = ["# Command line", "",
           "Generated from the argparse parsers (`src/archsearch/cli.py`, `src/archsearch/commands/`) at every",
           "build of this manual. `archsearch COMMAND -h` prints the same.", "",
           "```text", parser.format_usage().strip(), "```", "", *_arguments(parser), "",
           "| command | what it does |", "| --- | --- |",
           *(f"| [`{n}`](#{n}) | {_prose(helps.get(n, ''))} |" for n in ORDER), ""]
    for name in ORDER:
        p = sub.choices[name]
        p.formatter_class = fixed
        out += [f"## {name}", "", _docstring(sys.modules[COMMANDS.get(name).__module__]), "",
                "```text", p.format_usage().strip(), "```", "", *_arguments(p), ""]
    return "\n".join(out)


def _options_table(rows, prefix: str = "") -> list[str]:
    if not rows:
        return ["No options besides `name`.", ""]
    return ["| key | default | meaning |", "| --- | --- | --- |",
            *(f"| `{prefix}{k}` | `{_cell(d)}` | {_prose(h)} |" for k, d, h in rows), ""]


def options_page() -> str:
    from archsearch.commands.listing import _registries, run_configs
    from archsearch.config import describe_options, describe_run
    from archsearch.data import list_datasets
    from archsearch.presets import list_presets

    registries = _registries()
    out = ["# Config options", "",
           "Generated from the config dataclasses (`src/archsearch/config.py` and each component's own)",
           "at every build of this manual; `archsearch list run -v` and `archsearch list strategies -v`",
           "(and spaces, objectives, models, executors) print the same. Any key is set in a preset's YAML",
           "or on the command line as `key=value`; a component's options are valid only with the",
           "component its section's `name` selects (`strategy.name=pcdarts strategy.arch_freeze_epochs=15`).",
           "", "## Runs", ""]
    for name, cls in run_configs().items():
        out += [f"### `archsearch {name}`", "", _docstring(cls) or f"The keys of a {name} run outside "
                "its component sections.", "", *_options_table(describe_run(cls))]
    for axis, plural in AXES:
        registry = registries[plural]
        out += [f"## {plural.capitalize()} (`{axis}.name`)", ""]
        for item in registry.names():
            cls = registry.config_class(item)
            out += [f"### `{axis}.name={item}`", ""]
            doc = _docstring(cls)
            out += [doc, ""] if doc else []
            out += _options_table(describe_options(cls), f"{axis}.")
    out += ["## Datasets (`data.name`)", "", ", ".join(f"`{d}`" for d in list_datasets()), "",
            "## Presets", "", "Shipped configs, by name as `CONFIG` of `search` or `PRESET` of `train`: "
            + ", ".join(f"`{p}`" for p in list_presets()) + ".", ""]
    return "\n".join(out)


PAGES = {"cli.md": cli_page, "options.md": options_page}


def on_files(files, config):
    """mkdocs hook: add the generated pages to the build."""
    from mkdocs.structure.files import File

    for name, page in PAGES.items():
        files.append(File.generated(config, name, content=page()))
    return files


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/reference")
    out.mkdir(parents=True, exist_ok=True)
    for name, page in PAGES.items():
        (out / name).write_text(page())
        print(out / name)
