"""Datasets, transforms and resumable batch streams for architecture search.

Importing the package registers every dataset family in DATASETS.
"""
from archsearch.data import cityscapes, folders, generated, vision  # noqa: F401  (registration)
from archsearch.data.base import DATASETS, DatasetInfo, DataSource
from archsearch.data.checks import check_labels
from archsearch.data.search import (
    SearchData,
    build_dataset,
    build_search_data,
    dataset_info,
    list_datasets,
    static_dataset_info,
)
from archsearch.data.stream import BatchStream, SeededDataset
from archsearch.data.transforms import Cutout

__all__ = [
    "DATASETS",
    "BatchStream",
    "Cutout",
    "DataSource",
    "DatasetInfo",
    "SearchData",
    "SeededDataset",
    "build_dataset",
    "build_search_data",
    "check_labels",
    "dataset_info",
    "list_datasets",
    "static_dataset_info",
]
