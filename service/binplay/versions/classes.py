"""Class names across learns: each task's ledger entry keeps its labels' names, and a later
learn's data is put in the same label space by them.

An image folder with named class directories (``photos/cat``, ``photos/dog``) gets its
labels from the sorted directory order (``binplay.data.user``), so a second folder
(``more/bird``, ``more/fish``) would again be 0 and 1: the state would learn birds as cats.
Here a learn's positional labels are replaced by the state's: a name the state knows keeps
its label, a new name takes the next label after every one the state has used. Labels the
user gave (a Parquet ``label``, integer directory names) are kept as given; their names
(``label_name``, the directory) must agree with the state's, or the learn is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from binplay.config import StreamConfig
from binplay.data.types import DataError, ImageSet
from binplay.data.user import user_class_names
from binplay.validation import check_labels_fit
from binplay.versions.inputs import Shape, read_images
from binplay.versions.store import VersionLedger


def ledger_names(ledger: VersionLedger) -> dict[int, str]:
    """Every named label the state has learnt (a task without names adds none)."""
    names: dict[int, str] = {}
    for task in ledger.tasks:
        names.update({int(label): name for label, name in task.class_names.items()})
    return names


def class_map(names: dict[int, str], positional: bool, known: dict[int, str],
              used: set[int], origin: str, new: bool = True) -> dict[int, int]:
    """label in the data -> label in the state, given the state's ``known`` names and every
    label it ``used``. Positional labels go by name (a new name: the next free label, or
    refused without ``new``: test images of a class never learnt); given ones stay, refused
    where a name or a label disagrees with ``known``."""
    by_name = {name: label for label, name in known.items()}
    if positional:
        free = max(used | set(known), default=-1) + 1
        mapping = {}
        for label, name in sorted(names.items()):
            if name in by_name:
                mapping[label] = by_name[name]
            elif not new:
                raise DataError(f"{origin}: class '{name}' is not one the state learnt "
                                f"({', '.join(sorted(by_name)) or 'none named'})")
            else:
                mapping[label], free = free, free + 1
        return mapping
    for label, name in names.items():
        if name in by_name and by_name[name] != label:
            raise DataError(f"{origin}: class '{name}' has label {label}, but the state learnt it "
                            f"as label {by_name[name]}")
        if label in known and known[label] != name:
            raise DataError(f"{origin}: label {label} is named '{name}', but the state learnt "
                            f"label {label} as '{known[label]}'")
    return {label: label for label in names}


def read_learnt(path: str | Path, flag: str, shape: Shape | None, ledger: VersionLedger,
                head: int | None, stream: StreamConfig | None = None, why: str | None = None,
                new: bool = True, also: dict[int, str] | None = None
                ) -> tuple[ImageSet, dict[int, str]]:
    """A learn's or an evaluation's images (``read_images``) in the state's label space, and
    the names of their labels there; the labels are checked against the ``head`` outputs
    once they are the state's. ``new``: names the state has not learnt take new labels (a
    learn's data), else are refused; ``also``: named labels learnt besides the ledger's (a
    learn's data, for its --test)."""
    data = read_images(path, flag, shape, stream)
    names, positional = user_class_names(path)
    known = ledger_names(ledger) | (also or {})
    used = {c for task in ledger.tasks for c in task.classes} | set(also or {})
    mapping = class_map(names, positional, known, used, f"{flag} {path}", new)
    data = relabel(data, mapping)
    check_labels_fit(data.labels, head, f"{flag} {path}", why)
    return data, {mapping[label]: name for label, name in names.items()}


def relabel(data: ImageSet, mapping: dict[int, int]) -> ImageSet:
    """The same images with their labels put through ``mapping`` (labels outside it kept)."""
    if all(a == b for a, b in mapping.items()):
        return data
    table = torch.arange(int(data.labels.max()) + 1 if len(data.labels) else 0)
    for old, new in mapping.items():
        if old < len(table):
            table[old] = new
    return ImageSet(data.images, table[data.labels], data.origin, data.skipped)
