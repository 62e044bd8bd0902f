"""archsearch's own JSON: an object with normal, normal_concat, reduce and reduce_concat."""
from __future__ import annotations

import json

from archsearch.spaces.darts.formats.base import FIELDS, FORMATS, GenotypeFormat, NotThisFormat, describe
from archsearch.spaces.darts.genotype import Genotype


@FORMATS.register("json")
class JsonFormat(GenotypeFormat):
    title = "archsearch JSON"
    suffixes = (".json",)

    def sniff(self, text: str) -> int:
        return 1 if text.lstrip().startswith("{") else 0

    def read(self, text: str) -> dict:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise NotThisFormat(f"not valid JSON: {e}") from None
        # an object with none of the fields is some other JSON (or a pycls config written as JSON)
        if not isinstance(d, dict) or not set(FIELDS) & set(d):
            raise NotThisFormat(f"expected an object with keys {', '.join(FIELDS)}, got {describe(d)}")
        return d

    def write(self, genotype: Genotype) -> str:
        return json.dumps(genotype.to_dict(), indent=2) + "\n"
