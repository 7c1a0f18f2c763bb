"""The run config: its sections, the checks across them, the fingerprint, and what the
field metadata gives the rest of the service (readers, fixed settings, neutral values).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, Field, model_validator

from binplay.config.baselines import DerppConfig, DgrConfig, ErConfig
from binplay.config.fields import (
    DERPP_READERS,
    DGR_READERS,
    ER_READERS,
    StrategyName,
    _Strict,
    field_meta,
    setting,
)
from binplay.config.runtime import RayConfig, ReplayConfig, RunConfig
from binplay.config.sections import AutoencoderConfig, ClassifierConfig, CodesConfig, StreamConfig


class BinPlayConfig(_Strict):
    name: str = Field("binplay", pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    strategy: StrategyName = setting(
        "binplay", description="binplay, or a baseline: finetune (lower bound), joint (upper "
        "bound; stores all data), er (raw replay buffer), er_ace (ER with the asymmetric "
        "cross-entropy), derpp (DER++: buffer with stored logits), dgr (VAE generative replay)", fixed=True)
    stream: StreamConfig = Field(default_factory=StreamConfig)
    codes: CodesConfig = Field(default_factory=CodesConfig)
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    er: ErConfig = setting(default_factory=ErConfig, readers=ER_READERS)
    dgr: DgrConfig = setting(default_factory=DgrConfig, readers=DGR_READERS)
    derpp: DerppConfig = setting(default_factory=DerppConfig, readers=DERPP_READERS)
    ray: RayConfig = Field(default_factory=RayConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _check_applies(self) -> BinPlayConfig:
        """A setting that the strategy does not read is refused, never applied in some other
        sense (``new_on_real`` once turned ER into ER-ACE) nor silently ignored."""
        for dotted, value, default, readers in _read_settings(self):
            if readers and self.strategy not in readers and value != default:
                raise ValueError(f"{dotted}: applies to strategy {' and '.join(readers)} only, "
                                 f"not {self.strategy} (remove it or set it to {default!r})")
        return self

    @model_validator(mode="after")
    def _check_class_structure(self) -> BinPlayConfig:
        if self.codes.class_bits and self.stream.order != "class":
            raise ValueError("codes.class_bits needs stream.order: class (classes own index ranges)")
        if self.codes.class_bits and self.codes.class_bits < self.stream.num_classes:
            raise ValueError(f"codes.class_bits: {self.codes.class_bits} bits cannot hold "
                             f"{self.stream.num_classes} classes one-hot")
        if self.classifier.ledger_labels and self.stream.order != "class":
            raise ValueError("classifier.ledger_labels needs stream.order: class")
        if self.classifier.unmemorised_inputs and self.autoencoder.samples_per_class is None:
            raise ValueError("classifier.unmemorised_inputs needs autoencoder.samples_per_class "
                             "(without it every sample is memorised)")
        if self.classifier.replay_min_confidence and not self.classifier.ledger_labels:
            raise ValueError("classifier.replay_min_confidence needs classifier.ledger_labels: true")
        c = self.classifier
        if c.reconstructed_share is not None and not (c.mix_real_inputs and c.ae_processed_inputs):
            raise ValueError("classifier.reconstructed_share needs classifier.mix_real_inputs: true "
                             "(reconstructions and real images side by side)")
        return self

    @property
    def train_per_class_read(self) -> int | None:
        """Training samples per class the run reads from the stream: the stream's subset, and
        for BinPlay at most ``autoencoder.samples_per_class`` (baselines read them all)."""
        limits = [self.stream.train_per_class]
        if self.reads("autoencoder", "samples_per_class"):
            limits.append(self.autoencoder.samples_per_class)
        given = [n for n in limits if n is not None]
        return min(given) if given else None

    @property
    def reads_unmemorised(self) -> bool:
        """Whether the stream also holds each task's samples beyond the memorised ones, unindexed
        (BinPlay's ``classifier.unmemorised_inputs``)."""
        return (self.classifier.unmemorised_inputs
                and self.train_per_class_read != self.stream.train_per_class)

    @property
    def uses_replay_actors(self) -> bool:
        """Whether the run decodes its rehearsal on Ray actors (``replay.mode: actors``; only
        a strategy that regenerates from codes has anything to decode there)."""
        return self.replay.mode == "actors" and self.reads("replay", "mode")

    def reads(self, section: str, key: str | None = None) -> bool:
        """Whether the strategy reads ``section`` (or ``section.key``): a setting without
        ``readers`` is read by every strategy."""
        places: list[tuple[type[BaseModel], str]] = [(type(self), section)]
        if key is not None:
            places.append((type(getattr(self, section)), key))
        return all(self.strategy in field_meta(model, name).get("readers", (self.strategy,))
                   for model, name in places)

    @property
    def head_classes(self) -> int:
        """Outputs of the classifier head: ``classifier.max_classes`` or the declared classes."""
        return self.classifier.max_classes or self.stream.num_classes

    def fingerprint(self) -> str:
        """Hash of everything that changes the math; a checkpoint resumes only under the same.

        ``ray``, ``replay`` and ``run`` are left out: where and on how many workers a run
        trains, and where its rehearsal batches are decoded, do not change what it computes
        between task boundaries; a change of worker count mid-task is
        refused separately (``state.check_resume_workers``). ``name`` is the run's place, not
        its math.
        """
        parts = self.model_dump(mode="json", exclude={"ray", "replay", "run", "name"})
        for name in list(parts):
            # A section some strategies own counts only for them: a new strategy's section
            # leaves every other strategy's fingerprint (and checkpoints) as they were.
            if not self.reads(name):
                del parts[name]
                continue
            section = getattr(self, name)
            if isinstance(section, BaseModel):
                _drop_unread(section, parts[name])
        blob = json.dumps(parts, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _section_model(field: Any) -> type[BaseModel] | None:
    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _read_settings(cfg: BinPlayConfig) -> list[tuple[str, Any, Any, tuple[str, ...] | None]]:
    """(dotted name, value, default, readers) of every setting, a section's readers holding
    for each of its fields."""
    out = []
    for name, field in type(cfg).model_fields.items():
        readers = field_meta(type(cfg), name).get("readers")
        model = _section_model(field)
        if model is None:
            out.append((name, getattr(cfg, name), field.get_default(call_default_factory=True),
                        readers))
            continue
        section = getattr(cfg, name)
        for key, sub in model.model_fields.items():
            out.append((f"{name}.{key}", getattr(section, key),
                         sub.get_default(call_default_factory=True),
                         readers or field_meta(model, key).get("readers")))
    return out


def _drop_unread(section: BaseModel, dumped: dict[str, Any]) -> None:
    """Leave out of a section's fingerprint part the fields at their ``neutral`` value and
    those that do not apply under their siblings' values (``setting``)."""
    model = type(section)
    for key in model.model_fields:
        meta = field_meta(model, key)
        if "neutral" in meta and dumped.get(key) == meta["neutral"]:
            dumped.pop(key)
        elif any(getattr(section, k) != v for k, v in meta.get("applies_when", {}).items()):
            dumped.pop(key, None)


def fixed_settings() -> list[str]:
    """Dotted names of the settings fixed by the first ``jobs.learn`` (``setting(fixed=True)``):
    they change the codes or the models' shapes, so a later learn may not change them."""
    names = []
    for name, field in BinPlayConfig.model_fields.items():
        if field_meta(BinPlayConfig, name).get("fixed"):
            names.append(name)
        model = _section_model(field)
        names += [f"{name}.{key}" for key in (model.model_fields if model else ())
                  if field_meta(model, key).get("fixed")]
    return names


def for_strategy(tree: dict[str, Any], strategy: str) -> dict[str, Any]:
    """A config tree without the settings ``strategy`` does not read (they take their
    defaults): what each strategy of ``jobs.compare`` takes from one preset."""
    out = json.loads(json.dumps(tree))
    for name, field in BinPlayConfig.model_fields.items():
        readers = field_meta(BinPlayConfig, name).get("readers")
        if readers and strategy not in readers:
            out.pop(name, None)
            continue
        model = _section_model(field)
        if model is None or not isinstance(out.get(name), dict):
            continue
        for key in model.model_fields:
            readers = field_meta(model, key).get("readers")
            if readers and strategy not in readers:
                out[name].pop(key, None)
    return out
