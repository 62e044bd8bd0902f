from archsearch.spaces import darts, mobile, nasbench101  # noqa: F401  (registers darts, darts-s1..s4, mobile-unified, nasbench101)
from archsearch.spaces.base import SPACES, SearchSpace, create_space, list_spaces

__all__ = ["SPACES", "SearchSpace", "create_space", "list_spaces"]
