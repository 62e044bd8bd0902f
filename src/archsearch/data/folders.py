"""Image-folder datasets (`<root>/train/<class>/*`, `<root>/val/<class>/*`), ImageNet included."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes

from archsearch.data.base import DATASETS, DatasetInfo, DataSource, Transform, env_root, given_root, one_line
from archsearch.data.images import load_image, verify_images
from archsearch.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@DATASETS.register("imagefolder")
class ImageFolderSource(DataSource):
    """Any class-per-folder image tree; images are decoded as RGB with ImageNet statistics."""

    style = "large"
    name = "imagefolder"
    env_subdir: Optional[str] = None  # also try $ARCHSEARCH_DATA/<env_subdir>

    def _candidates(self) -> list[Path]:
        root = given_root(self.cfg)
        if root is not None:  # the path given is the path used
            return [root]
        places = []
        env = env_root()
        if env is not None:
            if self.env_subdir:
                places.append(env / self.env_subdir)
            places.append(env)
        return places

    def root(self) -> Path:
        for place in self._candidates():
            if (place / "train").is_dir():
                return place
        places = ", ".join(str(p) for p in self._candidates())
        where = f"no train/ folder in {places}" if places else "no data.root nor $ARCHSEARCH_DATA"
        raise DataError(
            f"{self.name} not found: {where}; point data.root at a folder holding "
            "train/<class>/<image> and val/<class>/<image>"
        )

    def split_dir(self, train: bool) -> Path:
        folder = self.root() / ("train" if train else "val")
        if not folder.is_dir():
            raise DataError(f"{self.name}: missing split folder {folder}")
        return folder

    def classes(self, folder: Path) -> list[str]:
        try:
            return find_classes(str(folder))[0]
        except OSError as e:
            message = f"{self.name}: cannot list classes in {folder}: {one_line(e)}"
            raise DataError(message) from None

    def native_info(self) -> DatasetInfo:
        num_classes = len(self.classes(self.split_dir(True)))
        return DatasetInfo(self.name, 3, 224, num_classes, IMAGENET_MEAN, IMAGENET_STD)

    def static_info(self) -> Optional[DatasetInfo]:
        return None  # the class count is the number of class folders

    def load(self, train: bool, transform: Optional[Transform]) -> Dataset:
        folder = self.split_dir(train)
        if not train and self.classes(folder) != self.classes(self.split_dir(True)):
            # ImageFolder numbers classes by sorted folder name, so labels only agree if the
            # class folders do.
            raise DataError(f"{self.name}: the class folders of {folder} differ from train/")
        try:
            dataset = ImageFolder(str(folder), transform=transform, loader=load_image)
        except OSError as e:
            raise DataError(f"{self.name}: cannot read {folder}: {one_line(e)}") from None
        verify_images([path for path, _ in dataset.samples])
        return dataset


@DATASETS.register("imagenet")
class ImageNetSource(ImageFolderSource):
    """ILSVRC-2012 in image-folder layout; the class count comes from the folders, so the
    10%/2.5% subsets used by PC-DARTS work as they are."""

    name = "imagenet"
    env_subdir = "imagenet"

    def static_info(self) -> Optional[DatasetInfo]:
        """ILSVRC-2012's 1000 classes (its PC-DARTS subsets keep every class)."""
        return self._sized(DatasetInfo(self.name, 3, 224, 1000, IMAGENET_MEAN, IMAGENET_STD))
