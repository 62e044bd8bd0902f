"""Fashion-MNIST and CIFAR, read by torchvision from wherever the files already are."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Optional

from torch.utils.data import Dataset
from torchvision import datasets as tvd

from archsearch.data.base import (
    DATASETS,
    DatasetInfo,
    DataSource,
    Transform,
    cache_dir,
    download_root,
    env_root,
    one_line,
    user_roots,
)
from archsearch.errors import DataError

# Debian/Ubuntu's `dataset-fashion-mnist` package installs the four .gz files here.
SYSTEM_FASHION_MNIST_DIRS: list[Path] = [Path("/usr/share/datasets/fashion-mnist")]

FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_file(folder: Path, name: str) -> Optional[Path]:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _decompress(src: Path, dst: Path) -> None:
    """gunzip through a temporary file so a concurrent or killed run never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@DATASETS.register("fashion-mnist")
class FashionMNISTSource(DataSource):
    """Fashion-MNIST from idx files found on disk (plain or .gz), parsed by torchvision.

    torchvision only reads uncompressed files from `<root>/FashionMNIST/raw`, so files found
    elsewhere are gunzipped (or linked) once into a cache folder with that layout.
    """

    def native_info(self) -> DatasetInfo:
        return DatasetInfo("fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,))

    def _search_bases(self) -> list[Path]:
        if self.cfg.root:  # the path given is the path used
            return user_roots(self.cfg)
        bases = list(user_roots(self.cfg))
        env = env_root()
        if env is not None:
            bases.append(env / "fashion-mnist")
        bases += SYSTEM_FASHION_MNIST_DIRS
        bases.append(download_root(self.cfg))
        return list(dict.fromkeys(bases))

    def _find(self) -> Optional[Path]:
        for base in self._search_bases():
            for folder in (base, base / "FashionMNIST" / "raw"):
                if all(_idx_file(folder, name) for name in FASHION_MNIST_FILES):
                    return folder
        return None

    def _torchvision_root(self, folder: Path) -> Path:
        """A root under which torchvision finds plain idx files in FashionMNIST/raw."""
        files = [_idx_file(folder, name) for name in FASHION_MNIST_FILES]
        plain = all(f is not None and f.suffix != ".gz" for f in files)
        if plain and folder.name == "raw" and folder.parent.name == "FashionMNIST":
            return folder.parent.parent
        stamp = "|".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f)
        key = hashlib.sha1(f"{folder.resolve()}|{stamp}".encode()).hexdigest()[:12]
        root = cache_dir() / "fashion-mnist" / key
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name, src in zip(FASHION_MNIST_FILES, files, strict=True):
            dst = raw / name
            if dst.exists() or src is None:
                continue
            if src.suffix == ".gz":
                try:
                    _decompress(src, dst)
                except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                    raise DataError(f"fashion-mnist: {src} is truncated or damaged ({type(e).__name__}: "
                                    f"{one_line(e)}); replace it with a complete copy") from None
            else:
                try:
                    dst.symlink_to(src.resolve())
                except FileExistsError:
                    pass
        return root

    def load(self, train: bool, transform: Optional[Transform]) -> Dataset:
        folder = self._find()
        if folder is not None:
            try:
                root, download = self._torchvision_root(folder), False
            except OSError as e:
                raise DataError(
                    f"cannot unpack fashion-mnist from {folder} into {cache_dir()}: {one_line(e)} "
                    "(set $XDG_CACHE_HOME to a writable folder)"
                ) from None
        elif self.cfg.download:
            root, download = download_root(self.cfg), True
        else:
            places = ", ".join(str(p) for p in self._search_bases())
            if env_root() is None and not self.cfg.root:
                places += " ($ARCHSEARCH_DATA is unset)"
            raise DataError(
                "fashion-mnist not found: looked for train-images-idx3-ubyte[.gz] and the other "
                f"idx files in {places} (and their FashionMNIST/raw subfolders); install them with "
                "`apt-get install dataset-fashion-mnist`, point data.root at a folder holding "
                "them, or set data.download=true"
            )
        try:
            return tvd.FashionMNIST(str(root), train=train, transform=transform, download=download)
        except Exception as e:  # torchvision raises RuntimeError/URLError/OSError variously
            raise DataError(f"cannot load fashion-mnist from {root}: {one_line(e)}") from None


class _CifarSource(DataSource):
    name: str
    folder: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tv_class: type[tvd.CIFAR10]

    def native_info(self) -> DatasetInfo:
        return DatasetInfo(self.name, 3, 32, self.num_classes, self.mean, self.std)

    def _roots(self) -> list[Path]:
        return list(dict.fromkeys([*user_roots(self.cfg), download_root(self.cfg)]))

    def load(self, train: bool, transform: Optional[Transform]) -> Dataset:
        root = next((r for r in self._roots() if (r / self.folder).is_dir()), None)
        if root is None and not self.cfg.download:
            places = ", ".join(str(r) for r in self._roots())
            if env_root() is None and not self.cfg.root:
                places += " ($ARCHSEARCH_DATA is unset)"
            raise DataError(
                f"{self.name} not found: no {self.folder}/ folder in {places}; point data.root "
                "(or $ARCHSEARCH_DATA) at the folder that holds it, or set data.download=true"
            )
        root = root or download_root(self.cfg)
        try:
            return self.tv_class(
                str(root), train=train, transform=transform, download=self.cfg.download
            )
        except Exception as e:
            raise DataError(
                f"cannot load {self.name} from {root / self.folder}: {one_line(e)} "
                "(files missing or corrupted; delete the folder and set data.download=true)"
            ) from None


@DATASETS.register("cifar10")
class Cifar10Source(_CifarSource):
    name = "cifar10"
    folder = "cifar-10-batches-py"
    num_classes = 10
    mean = (0.49139968, 0.48215827, 0.44653124)
    std = (0.24703233, 0.24348505, 0.26158768)
    tv_class = tvd.CIFAR10


@DATASETS.register("cifar100")
class Cifar100Source(_CifarSource):
    name = "cifar100"
    folder = "cifar-100-python"
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    tv_class = tvd.CIFAR100
