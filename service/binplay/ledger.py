"""The ledger: everything the service keeps about past data.

One record per finished task: its id, its index range K_t..N_t, its classes and,
when the stream is ordered by class, each class's index sub-range. O(#tasks x
#classes) integers; no images, codes or per-sample labels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class TaskRecord:
    task_id: int
    first_index: int  # K_t (1-based)
    last_index: int  # N_t
    classes: tuple[int, ...]
    class_ranges: tuple[tuple[int, int, int], ...] = ()  # (class, first, last) per class

    @property
    def size(self) -> int:
        return self.last_index - self.first_index + 1


@dataclass
class Ledger:
    tasks: list[TaskRecord] = field(default_factory=list)

    def add(self, record: TaskRecord) -> None:
        expected = self.total + 1
        if record.first_index != expected:
            raise ValueError(f"task {record.task_id} starts at index {record.first_index}, "
                             f"expected {expected}: ranges must be contiguous")
        if record.last_index < record.first_index:
            raise ValueError(f"task {record.task_id} has an empty index range")
        if record.class_ranges:
            starts = [first for _, first, _ in record.class_ranges]
            ends = [last for _, _, last in record.class_ranges]
            if (starts[0] != record.first_index or ends[-1] != record.last_index
                    or any(b != a + 1 for a, b in zip(ends[:-1], starts[1:]))):
                raise ValueError(f"task {record.task_id}: class ranges must tile "
                                 f"{record.first_index}..{record.last_index}")
        self.tasks.append(record)

    @property
    def total(self) -> int:
        """N: the number of samples seen so far (the last index)."""
        return self.tasks[-1].last_index if self.tasks else 0

    @property
    def classes(self) -> list[int]:
        return sorted(c for t in self.tasks for c in t.classes)

    def task_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Task id of each index (an index beyond the ledger is an error)."""
        if len(indices) and (int(indices.min()) < 1 or int(indices.max()) > self.total):
            raise IndexError(f"index outside the ledger's range 1..{self.total}")
        starts = np.array([t.first_index for t in self.tasks])
        pos = np.searchsorted(starts, indices.cpu().numpy(), side="right") - 1
        ids = np.array([t.task_id for t in self.tasks])[pos]
        return torch.from_numpy(ids)

    def class_of(self, indices: torch.Tensor) -> torch.Tensor:
        """Class of each index, from the class sub-ranges (streams ordered by class)."""
        ranges = [r for t in self.tasks for r in t.class_ranges]
        if len(ranges) != sum(len(t.classes) for t in self.tasks) or not ranges:
            raise ValueError("the ledger has no class ranges (set stream.order: class)")
        if len(indices) and (int(indices.min()) < 1 or int(indices.max()) > self.total):
            raise IndexError(f"index outside the ledger's range 1..{self.total}")
        starts = np.array([first for _, first, _ in ranges])
        pos = np.searchsorted(starts, indices.cpu().numpy(), side="right") - 1
        return torch.from_numpy(np.array([c for c, _, _ in ranges], dtype=np.int64)[pos])

    def sample_indices(self, n: int, generator: torch.Generator,
                       task_id: int | None = None) -> torch.Tensor:
        """Indices drawn uniformly from all past samples (or from one past task)."""
        if task_id is None:
            low, high = 1, self.total
        else:
            rec = next(t for t in self.tasks if t.task_id == task_id)
            low, high = rec.first_index, rec.last_index
        if high < low:
            raise ValueError("the ledger is empty: nothing to replay")
        return torch.randint(low, high + 1, (n,), generator=generator)

    def to_dict(self) -> dict:
        return {"tasks": [asdict(t) | {"classes": list(t.classes),
                                       "class_ranges": [list(r) for r in t.class_ranges]}
                          for t in self.tasks]}

    @classmethod
    def from_dict(cls, raw: dict) -> Ledger:
        ledger = cls()
        for t in raw["tasks"]:
            ledger.add(TaskRecord(t["task_id"], t["first_index"], t["last_index"],
                                  tuple(t["classes"]),
                                  tuple(tuple(r) for r in t.get("class_ranges", []))))
        return ledger
