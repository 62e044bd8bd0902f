"""The DARTS cell search space (and S1-S4)."""
from archsearch.spaces.darts import space  # noqa: F401  (registers the spaces)
from archsearch.spaces.darts.genotype import Genotype

__all__ = ["Genotype"]
