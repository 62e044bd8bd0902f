"""SGNAS: the strictly fair supernet phase, the architecture generator, and generation from a run.

`strategy.py` registers the `sgnas` strategy, `generator.py` is the generator network, and
`generate.py` turns a finished run into architectures for FLOPs targets (`archsearch generate`).
"""
from archsearch.strategies.sgnas.strategy import Sgnas, hc_loss

__all__ = ["Sgnas", "hc_loss"]
