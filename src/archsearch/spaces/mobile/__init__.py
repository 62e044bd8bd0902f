"""The SGNAS unified MobileNet space (`mobile-unified`)."""
from archsearch.spaces.mobile import space  # noqa: F401  (registers the space)
from archsearch.spaces.mobile.arch import SKIP, MobileArch
from archsearch.spaces.mobile.network import MobileNetwork

__all__ = ["SKIP", "MobileArch", "MobileNetwork"]
