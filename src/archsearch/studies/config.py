"""The typed configs of studies: `archsearch correlate` (CorrelateConfig) and `archsearch study`
(StudyConfig); loaded with `config.load_config` like every run config."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from archsearch.config import (
    Choice,
    ExecutorConfig,
    SpaceConfig,
    TrainConfig,
    default_component,
    opt,
)
from archsearch.errors import ConfigError
from archsearch.strategies.selection import SELECTIONS, SelectionConfig


@dataclass
class CostWindowConfig:
    """Keep sampled cells whose evaluation network costs within [low, high] x the reference.

    Defaults: ResNet-56 on CIFAR-10 (855,770 params, 125,747,850 mult-adds, pycls), with cells priced
    on the CIFAR network of C=16, 20 cells, 10 classes, 32x32x3, no auxiliary head (docs/methods/unnas.md §3.1).
    """

    reference_params: int = opt(855_770, low=1)
    reference_mult_adds: int = opt(125_747_850, low=1)
    low: float = opt(0.8, low=0.0)
    high: float = opt(1.2, above=0.0)
    init_channels: int = opt(16, low=2)
    layers: int = opt(20, low=3)
    num_classes: int = opt(10, low=2)
    in_channels: int = opt(3, low=1)
    image_size: int = opt(32, low=8)

    def check(self, where: str) -> None:
        if self.low > self.high:
            raise ConfigError(f"{where}.low must not exceed {where}.high ({self.low} > {self.high})")


@dataclass
class TableConfig:
    """An external table of architectures with accuracies (e.g. a benchmark export), CSV with
    columns `genotype` (any genotype format) and `accuracy`; `per_decile` rows are drawn from each tenth."""

    path: str = ""
    per_decile: int = opt(0, low=0)


@dataclass
class CorrelateConfig:
    """A rank-correlation study: sampled cells, briefly trained under each objective (and seed)."""

    name: str = "correlate"
    seed: int = opt(0, "sampling seed")
    space: SpaceConfig = default_component(SpaceConfig)
    num_archs: int = opt(12, low=2)
    max_draws: int = opt(100_000, low=1)
    window: CostWindowConfig = field(default_factory=CostWindowConfig)
    table: TableConfig = field(default_factory=TableConfig)
    objectives: List[str] = opt(["supervised", "rotation"], "objectives every cell is trained under")
    seeds: List[int] = opt([1], "training seeds")
    score: str = opt("top1", "metric whose best epoch scores a run (docs/methods/unnas.md §3.3)")
    # key=value overrides of the training recipe per objective (batch and lr differ, docs/methods/unnas.md §3.2)
    objective_overrides: Dict[str, List[str]] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    executor: ExecutorConfig = default_component(ExecutorConfig)

    def check(self, where: str) -> None:
        if not self.objectives:
            raise ConfigError("objectives needs at least one objective to train the cells under")
        if not self.seeds:
            raise ConfigError("seeds needs at least one training seed")


class Score(Choice):
    final = "final"
    best = "best"


@dataclass
class StudySearchConfig:
    """One search method of a study: a search preset, run once per search seed."""

    preset: str = opt("", "a search preset name or YAML file")
    label: str = opt("", "the method's name in the results (default: the preset's name)")
    overrides: List[str] = opt([], "key=value overrides of the preset (not seed: the study sets it)")
    selections: List[str] = opt([], "selection rules whose architectures are retrained, each a method of its own "
                                    "(`LABEL+RULE`); empty: the search's own result only")

    def method(self) -> str:
        """The method's name in the results, folders and report."""
        return self.label or Path(self.preset).stem


@dataclass
class StudyRetrainConfig:
    """The one training recipe every architecture of the study is trained with."""

    preset: str = opt("train_fashionmnist", "a training preset name or YAML file")
    overrides: List[str] = opt([], "key=value overrides of the preset (not seed or model.genotype)")
    seeds: List[int] = opt([0], "training seeds: every architecture is trained once per seed")


@dataclass
class StudyBaselinesConfig:
    """Architectures trained beside the found ones with the same recipe and seeds."""

    random: int = opt(10, "architectures drawn uniformly from the searched space", low=0)
    seed: int = opt(0, "seed of the draws")
    space_of: str = opt("", "label of the search whose space is sampled (default: the first search)")
    published: List[str] = opt([], "published genotypes by name (`archsearch list genotypes`)")


@dataclass
class StudyRankingConfig:
    """One-shot ranking diagnostics: every random and found architecture scored on each search's final
    supernet (BN statistics recomputed on training batches first), correlated with its retrained score."""

    enabled: bool = opt(True, "score the architectures on every supernet of the study")
    batches: int = opt(8, "validation batches every architecture is scored on", low=1)
    bn_batches: int = opt(4, "training batches its BN statistics are recomputed on", low=1)


@dataclass
class StudyConfig:
    """Searches x seeds, every found architecture retrained, compared with random architectures."""

    name: str = "study"
    searches: List[StudySearchConfig] = opt([], "the methods compared")
    search_seeds: List[int] = opt([0, 1], "every search runs once per seed")
    retrain: StudyRetrainConfig = field(default_factory=StudyRetrainConfig)
    baselines: StudyBaselinesConfig = field(default_factory=StudyBaselinesConfig)
    metric: str = opt("", "test metric compared (default: the training objective's main metric)")
    score: Score = opt(Score.final, "final: the last epoch's test metric (what the papers report); best: the "
                                    "best epoch's")
    # options of the selection rules the searches' `selections` name (its `rule` is not used)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    ranking: StudyRankingConfig = field(default_factory=StudyRankingConfig)
    executor: ExecutorConfig = default_component(ExecutorConfig)

    def check(self, where: str) -> None:
        if not self.searches:
            raise ConfigError("searches needs at least one search method (preset and label)")
        if not self.search_seeds or not self.retrain.seeds:
            raise ConfigError("search_seeds and retrain.seeds need at least one seed each")
        for key, seeds in (("search_seeds", self.search_seeds), ("retrain.seeds", self.retrain.seeds)):
            if len(set(seeds)) != len(seeds):
                raise ConfigError(f"{key} repeats a seed: {seeds}")
        labels = [s.method() for s in self.searches]
        for s in self.searches:
            unknown = [r for r in s.selections if r not in SELECTIONS]
            if unknown:
                raise ConfigError(f"search {s.method()}: unknown selection rule {unknown[0]!r}; choose from "
                                  f"{', '.join(SELECTIONS.names())}")
            if len(set(s.selections)) != len(s.selections):
                raise ConfigError(f"search {s.method()}: selections repeats a rule: {list(s.selections)}")
        for s, label in zip(self.searches, labels):
            if not s.preset:
                raise ConfigError(f"search {label or '?'}: preset is empty")
            if not label.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ConfigError(f"search label {label!r}: use letters, digits, '-', '_' or '.' (it names folders)")
        dup = next((x for x in labels if labels.count(x) > 1), None)
        if dup:
            raise ConfigError(f"two searches are labelled {dup!r}; give each a distinct label")
        if "random" in labels:
            raise ConfigError("the label 'random' names the random baseline; call a random-search method e.g. "
                              "'random-ws'")
        clash = next((x for x in self.baselines.published if x in labels or x == "random"), None)
        if clash:
            raise ConfigError(f"baselines.published names {clash!r}, which is also a method label; relabel the search")
        if self.baselines.space_of and self.baselines.space_of not in labels:
            raise ConfigError(f"baselines.space_of={self.baselines.space_of!r} is no search label; labels: "
                              f"{', '.join(labels)}")
