"""Where images come from: built-in datasets (MNIST, Fashion-MNIST, CIFAR-10) and user data.

Sources are tried in a fixed order: an explicit ``data_root``, the mirror directory
named by ``BINPLAY_DATA_MIRROR`` (a local or mounted path; a URL is refused), Debian's
Fashion-MNIST package, then torchvision's download (what real users with internet get).
When none works, one line lists what was tried. Everything returns uint8 images
(N, C, H, W) and int64 labels, validated.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from pathlib import Path

import numpy as np
import torch

# DataError and ImageSet are defined in binplay.data.types; other modules import them from here.
from binplay.data.types import DataError, ImageSet
from binplay.data.user import read_image_parquet, user_class_names

MIRROR_ENV = "BINPLAY_DATA_MIRROR"
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_ROOT = Path(os.environ.get("BINPLAY_DOWNLOAD_ROOT", Path.home() / ".cache" / "binplay"))
SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
# Names of the shipped datasets' classes, in label order (figures say them, not c0..c9).
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
}
_TV_DIR = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def class_names(dataset: str, path: str | None = None) -> dict[int, str]:
    """Names of a stream's classes by label, for figures: a shipped dataset's
    (``CLASS_NAMES``), an image folder's directory names, or a Parquet file's optional
    ``label_name`` column. {} where the user gave none or the data is no longer readable
    (figures then say ``c<label>``)."""
    if dataset in CLASS_NAMES:
        return dict(enumerate(CLASS_NAMES[dataset]))
    if not path:
        return {}
    try:
        return user_class_names(path)[0]
    except (DataError, OSError):
        return {}


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _read_idx(path: Path, expected_dims: int) -> np.ndarray:
    """Parse an IDX file (gzip or plain) with its header checked."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable IDX file ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    if ndim != expected_dims:
        raise DataError(f"{path}: IDX file has {ndim} dimensions, expected {expected_dims}")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: IDX body has {body.size} bytes, header says {dims}")
    return body.reshape(dims)


def _idx_pair(folder: Path, split: str) -> ImageSet | None:
    prefix = "train" if split == "train" else "t10k"
    found = {}
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        for suffix in (".gz", ""):
            candidate = folder / f"{prefix}-{kind}{suffix}"
            if candidate.is_file():
                found[kind] = candidate
                break
    if len(found) < 2:
        return None
    images = _read_idx(found["images-idx3-ubyte"], 3)
    labels = _read_idx(found["labels-idx1-ubyte"], 1)
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1),
                    torch.from_numpy(labels.astype(np.int64)), str(folder))


def _idx_candidates(name: str, root: Path) -> list[Path]:
    return [root / _TV_DIR[name] / "raw", root / name, root / _TV_DIR[name], root]


def _cifar_parquet(folder: Path, split: str) -> ImageSet | None:
    candidate = folder / f"{split}.parquet"
    if not candidate.is_file():
        return None
    return read_image_parquet(candidate, expected_shape=SHAPES["cifar10"])


def _from_root(name: str, root: Path, split: str) -> ImageSet | None:
    if name == "cifar10":
        for folder in (root / "cifar10", root):
            found = _cifar_parquet(folder, split)
            if found is not None:
                return found
        return None
    for folder in _idx_candidates(name, root):
        found = _idx_pair(folder, split)
        if found is not None:
            return found
    return None


def _torchvision_download(name: str, split: str) -> ImageSet:
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[name]
    ds = cls(str(DOWNLOAD_ROOT), train=(split == "train"), download=True)
    data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(ds.data)
    images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)
    return ImageSet(images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64),
                    str(DOWNLOAD_ROOT))


def mirror_root() -> Path | None:
    """The directory named by BINPLAY_DATA_MIRROR, if set: a local or mounted path, never a URL."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None
    uri = _URI.match(value)
    if uri:  # only the scheme is echoed: a URL may carry credentials
        raise DataError(f"{MIRROR_ENV} is a {uri.group(0)} URI; it must be a local or mounted "
                        f"directory (e.g. a volume mounted at /mnt/binplay/data)")
    return Path(value)


def load_builtin(name: str, split: str, data_root: str | None = None,
                 allow_download: bool = True) -> ImageSet:
    """Load a built-in dataset split from the first source that has it."""
    if name not in SHAPES:
        raise DataError(f"unknown built-in dataset '{name}'")
    roots: list[tuple[str, Path]] = []
    if data_root:
        roots.append(("data_root", Path(data_root)))
    mirror = mirror_root()
    if mirror is not None:
        roots.append((MIRROR_ENV, mirror))
    if name == "fashion_mnist":
        roots.append(("debian", DEBIAN_FMNIST))
    tried = []
    for label, root in roots:
        found = _from_root(name, root, split)
        if found is not None:
            _check_shape(found, SHAPES[name])
            return found
        tried.append(f"{label}={root}")
    if allow_download:
        try:
            found = _torchvision_download(name, split)
            _check_shape(found, SHAPES[name])
            return found
        except DataError:
            raise
        except Exception as exc:  # network errors come in many types
            tried.append(f"torchvision download ({type(exc).__name__})")
    hint = ("apt-get install -y dataset-fashion-mnist, " if name == "fashion_mnist" else "")
    raise DataError(
        f"{name} {split} split not found; tried {', '.join(tried) or 'nothing'}; "
        f"provide it with stream.data_root, {MIRROR_ENV}, {hint}or internet for torchvision"
    )


def _check_shape(found: ImageSet, shape: tuple[int, int, int]) -> None:
    got = tuple(found.images.shape[1:])
    if got != tuple(shape):
        raise DataError(f"{found.origin}: images have shape {got}, expected {tuple(shape)}")
