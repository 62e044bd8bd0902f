"""pycls / UnNAS configs: `NAS: CUSTOM_GENOTYPE:` as a 4-item list, or that list alone.

pycls (facebookresearch/unnas, pycls/models/nas/nas.py) builds its Genotype from the items
[normal pairs, normal concat, reduce pairs, reduce concat] when `NAS.GENOTYPE` is `custom`.
"""
from __future__ import annotations

import yaml

from archsearch.spaces.darts.formats.base import FIELDS, FORMATS, BadContent, GenotypeFormat, NotThisFormat, describe
from archsearch.spaces.darts.genotype import Genotype


def _custom_genotype(config: dict):
    """The CUSTOM_GENOTYPE pycls would build its network from."""
    nas = config.get("NAS")
    if not isinstance(nas, dict) or "CUSTOM_GENOTYPE" not in nas:
        if isinstance(nas, dict) and "GENOTYPE" in nas:
            raise NotThisFormat(f"NAS.GENOTYPE is {nas['GENOTYPE']!r}, a genotype pycls names, and there is no "
                                "NAS.CUSTOM_GENOTYPE")
        raise NotThisFormat(f"expected NAS: CUSTOM_GENOTYPE: [normal, normal_concat, reduce, reduce_concat], "
                            f"got {describe(config)}")
    # pycls ignores CUSTOM_GENOTYPE unless GENOTYPE is custom; a config without GENOTYPE means the list
    if nas.get("GENOTYPE", "custom") != "custom":
        raise BadContent(f"NAS.GENOTYPE is {nas['GENOTYPE']!r}, so pycls ignores NAS.CUSTOM_GENOTYPE "
                         "(set GENOTYPE: custom)")
    return nas["CUSTOM_GENOTYPE"]


def _scalar(name: str) -> str:
    """A plain YAML scalar when it reads back as the same string, else quoted."""
    return name if yaml.safe_load(name) == name else f'"{name}"'


@FORMATS.register("pycls")
class PyclsYaml(GenotypeFormat):
    title = "pycls/UnNAS YAML"
    suffixes = (".yaml", ".yml")

    def sniff(self, text: str) -> int:
        if "CUSTOM_GENOTYPE" in text:
            return 2
        return 1 if text.lstrip().startswith(("[", "-")) else 0

    def read(self, text: str) -> dict:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise NotThisFormat(f"not YAML: {getattr(e, 'problem', None) or type(e).__name__}{where}") from None
        if isinstance(data, dict):
            data = _custom_genotype(data)
            if not isinstance(data, list) or len(data) != len(FIELDS):
                raise BadContent(f"NAS.CUSTOM_GENOTYPE: expected [normal, normal_concat, reduce, reduce_concat], "
                                 f"got {describe(data)}")
        elif not isinstance(data, list) or len(data) != len(FIELDS):
            raise NotThisFormat(f"expected a 4-item list [normal, normal_concat, reduce, reduce_concat] or a config "
                                f"with NAS.CUSTOM_GENOTYPE, got {describe(data)}")
        return dict(zip(FIELDS, data))

    def write(self, genotype: Genotype) -> str:
        """A config fragment to paste into a pycls / UnNAS config, laid out as UnNAS's own."""
        lines = ["NAS:", "  GENOTYPE: custom", "  CUSTOM_GENOTYPE:"]
        for name in ("normal", "reduce"):
            pairs = [f"[{_scalar(op)}, {src}]" for op, src in getattr(genotype, name)]
            lines += ["  - - " + pairs[0], *("    - " + p for p in pairs[1:])]
            lines.append(f"  - {list(getattr(genotype, name + '_concat'))}")
        return "\n".join(lines) + "\n"
