"""Name -> factory registries that connect config strings to classes (timm style)."""
from __future__ import annotations

from typing import Any, Callable, Generic, Optional, TypeVar

from archsearch.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of factories; `create` fails with the list of valid names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}
        self._configs: dict[str, type] = {}

    def register(self, name: str, config: Optional[type] = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Register a factory; `config` is the dataclass of the component's options (config.py)."""

        def deco(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = fn
            if config is not None:
                self._configs[name] = config
            return fn

        return deco

    def config_class(self, name: str) -> Any:
        """The options dataclass of component `name` (an unknown name fails with the valid ones)."""
        self.get(name)
        try:
            return self._configs[name]
        except KeyError:
            raise ValueError(f"{self.kind} {name!r} declares no config dataclass") from None

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, *args, **kwargs) -> T:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
