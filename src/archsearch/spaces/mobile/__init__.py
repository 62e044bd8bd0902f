"""The SGNAS unified MobileNet space (`mobile-unified`)."""
from archsearch.spaces.mobile import space  # noqa: F401  (registers the space)
from archsearch.spaces.mobile.arch import SKIP, MobileArch
from archsearch.spaces.mobile.network import MobileNetwork, inherit_from_supernet

__all__ = ["SKIP", "MobileArch", "MobileNetwork", "inherit_from_supernet"]
