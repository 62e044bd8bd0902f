"""What a genotype argument names: a file or run directory, a published name, or genotype text."""
from __future__ import annotations

import re
from pathlib import Path

from archsearch.errors import GenotypeError
from archsearch.spaces.darts.formats.base import FORMATS, UnknownFormat, brief, parse_genotype, read_genotype_file
from archsearch.spaces.darts.genotype import Genotype, published_genotypes


def _existing_path(ref: str) -> Path | None:
    try:
        path = Path(ref)
        return path if path.exists() else None
    except (OSError, ValueError):  # genotype text is no file name: too long for one, or holding a NUL
        return None


def _looks_like_path(ref: str) -> bool:
    suffixes = {s for name in FORMATS.names() for s in FORMATS.create(name).suffixes}
    return "\n" not in ref and ("/" in ref or Path(ref).suffix.lower() in suffixes)


def resolve_genotype(ref: str) -> Genotype:
    """A genotype file in any format, a run directory (its genotype.json), a published name
    (optionally as `genotypes.NAME`, the originals' spelling) or genotype text in any format.

    An existing file or directory wins; text is never taken for a file name.
    """
    if not ref.strip():
        raise GenotypeError("empty genotype reference: give a published name, a file, a run directory or text")
    path = _existing_path(ref)
    if path is not None:
        return read_genotype_file(path / "genotype.json" if path.is_dir() else path)
    known = published_genotypes()
    name = ref.strip().removeprefix("genotypes.")
    if name in known:
        return known[name]
    try:
        return parse_genotype(ref, where="genotype")
    except UnknownFormat:
        if _looks_like_path(ref):
            raise GenotypeError(f"genotype file not found: {brief(ref)}") from None
        if re.fullmatch(r"[\w.\-]+", ref.strip()):
            raise GenotypeError(f"{brief(ref)} is neither a genotype file, a run directory, genotype text nor a "
                                f"published genotype ({', '.join(sorted(known))})") from None
        raise
