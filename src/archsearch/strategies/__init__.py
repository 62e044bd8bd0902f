from archsearch.strategies import darts, milenas, pcdarts, random_search, sgnas, vimnas  # noqa: F401  (registers)
from archsearch.strategies.base import STRATEGIES, SearchStrategy, StepContext, create_strategy, list_strategies

__all__ = ["STRATEGIES", "SearchStrategy", "StepContext", "create_strategy", "list_strategies"]
