"""Run configuration: pydantic models validated before anything runs.

Every model forbids unknown keys, so a typo in a YAML file or a ``--set`` override fails at
load time with the dotted name of the offending field. A setting carries its own metadata
(``setting``: neutral value, fixed at the first learn, the strategies that read it).

- ``fields``: strict models, ``ConfigError``, the union on ``strategy``, ``setting``.
- ``sections``: stream, codes, autoencoder, classifier (shared by every strategy).
- ``baselines``: the sections of ER, DER++ and DGR.
- ``runtime``: Ray, the replay source, the run's files (out of the fingerprint).
- ``model``: ``BinPlayConfig``, its cross-section checks and fingerprint.
- ``loading``: YAML files and ``--set`` overrides.
"""

from binplay.config.baselines import DerppConfig, DgrConfig, ErConfig
from binplay.config.fields import (
    BINPLAY_ONLY,
    DECODER_SIZED,
    DERPP_READERS,
    DGR_READERS,
    ER_READERS,
    ConfigError,
    MemoryBudget,
    StrategyName,
    _Strict,
    field_meta,
    setting,
)
from binplay.config.loading import (
    config_from_dict,
    load_config,
    load_preset,
    read_tree,
    set_dotted,
    with_overrides,
)
from binplay.config.model import BinPlayConfig, fixed_settings, for_strategy
from binplay.config.runtime import RayConfig, ReplayConfig, RunConfig
from binplay.config.sections import (
    AutoencoderConfig,
    ClassifierConfig,
    CodesConfig,
    DatasetName,
    StreamConfig,
)

__all__ = [
    "BINPLAY_ONLY", "DECODER_SIZED", "DERPP_READERS", "DGR_READERS", "ER_READERS",
    "AutoencoderConfig", "BinPlayConfig", "ClassifierConfig", "CodesConfig", "ConfigError",
    "DatasetName", "DerppConfig", "DgrConfig", "ErConfig", "MemoryBudget", "RayConfig",
    "ReplayConfig", "RunConfig", "StrategyName", "StreamConfig", "_Strict", "config_from_dict",
    "field_meta", "fixed_settings", "for_strategy", "load_config", "load_preset", "read_tree",
    "set_dotted", "setting", "with_overrides",
]
