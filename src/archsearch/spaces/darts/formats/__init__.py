"""Genotype text formats, one reader and writer each in the `FORMATS` registry.

archsearch JSON (`json`), the original DARTS / PC-DARTS / MiLeNAS `Genotype(...)` repr (`darts`)
and pycls / UnNAS YAML (`pycls`). Importing the package registers them; `resolve_genotype` is what
every command that takes a genotype calls.
"""
from archsearch.spaces.darts.formats import darts_repr, json_format, pycls_yaml  # noqa: F401  (register)
from archsearch.spaces.darts.formats.base import (
    FORMATS,
    GenotypeFormat,
    UnknownFormat,
    format_for_path,
    parse_genotype,
    read_genotype_file,
    write_genotype,
)
from archsearch.spaces.darts.formats.resolve import resolve_genotype

__all__ = ["FORMATS", "GenotypeFormat", "UnknownFormat", "format_for_path", "parse_genotype",
           "read_genotype_file", "resolve_genotype", "write_genotype"]
