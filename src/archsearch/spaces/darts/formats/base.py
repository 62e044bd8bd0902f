"""The genotype format registry, and reading text in whichever format it is in.

Readers only extract the four fields; `Genotype.from_dict` validates them, so every format gets
the same checks and the same messages.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from archsearch.errors import GenotypeError
from archsearch.registry import Registry
from archsearch.spaces.darts.genotype import Genotype
from archsearch.utils.io import read_small_text

FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
MAX_BYTES = 1 << 20  # a genotype takes a few hundred bytes; a larger file is something else


class NotThisFormat(Exception):
    """The text is not in the reader's format: the next reader is tried."""


class BadContent(Exception):
    """The text is in the reader's format but holds something the reader refuses."""


class UnknownFormat(GenotypeError):
    """No reader recognised the text."""


class GenotypeFormat(ABC):
    """One text form of a genotype: `read` returns the fields `Genotype.from_dict` checks."""

    title = ""  # how messages name the format
    suffixes: tuple[str, ...] = ()  # file suffixes that suggest it (and choose it for --output)

    def sniff(self, text: str) -> int:
        """How much the text looks like this format (0 none, 1 a hint, 2 a telltale).

        Only picks which failure to explain when no reader recognised the text.
        """
        return 0

    @abstractmethod
    def read(self, text: str) -> dict: ...

    @abstractmethod
    def write(self, genotype: Genotype) -> str: ...


FORMATS: Registry[GenotypeFormat] = Registry("genotype format")


def brief(text: str, limit: int = 60) -> str:
    """repr() of a user's string cut short, so a message stays one readable line."""
    text = repr(text)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def describe(value) -> str:
    """What a parsed value is, in a few words, for messages."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:6]) + (", ..." if len(value) > 6 else "")
        return f"a mapping with keys {keys}" if value else "an empty mapping"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} items"
    return f"a {type(value).__name__}"


def parse_genotype(text: str, where: str = "genotype", suffix: str = "") -> Genotype:
    """The genotype `text` holds in any registered format; `suffix` (a file's) only helps the message."""
    failures: dict[str, str] = {}
    for name in FORMATS.names():
        fmt = FORMATS.create(name)
        try:
            fields = fmt.read(text)
        except NotThisFormat as e:
            failures[name] = " ".join(str(e).split())
            continue
        except RecursionError:
            failures[name] = "nested too deeply"
            continue
        except BadContent as e:
            raise GenotypeError(f"{where} ({fmt.title}): {' '.join(str(e).split())}") from None
        return Genotype.from_dict(fields, where=where)
    formats = {name: FORMATS.create(name) for name in failures}
    likeliest = max(formats, key=lambda n: 2 * formats[n].sniff(text) + (suffix in formats[n].suffixes))
    raise UnknownFormat(f"{where}: not in any known genotype format (tried {', '.join(failures)}); "
                        f"as {formats[likeliest].title}: {failures[likeliest]}")


def read_genotype_file(path: Path) -> Genotype:
    """The genotype a file holds, in any registered format."""
    path = Path(path)
    text = read_small_text(path, MAX_BYTES, "genotype file", GenotypeError, UnknownFormat,
                           f", so in no known genotype format ({', '.join(FORMATS.names())})")
    return parse_genotype(text, where=str(path), suffix=path.suffix.lower())


def write_genotype(genotype: Genotype, fmt: str) -> str:
    """The genotype as text in the named format (an unknown name lists the known ones)."""
    return FORMATS.create(fmt).write(genotype)


def format_for_path(path: Path) -> str | None:
    """The format a file name's suffix asks for, if any."""
    suffix = Path(path).suffix.lower()
    return next((name for name in FORMATS.names() if suffix in FORMATS.create(name).suffixes), None)
