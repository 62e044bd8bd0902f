"""The NAS-Bench-101 cell space (Ying et al. 2019), for sample-based studies."""
from archsearch.spaces.nasbench101 import space  # noqa: F401  (registers the space)
from archsearch.spaces.nasbench101.cell import Cell

__all__ = ["Cell"]
