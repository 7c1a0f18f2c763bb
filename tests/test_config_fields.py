"""The config's field metadata (``config.setting``): which strategy reads a setting, which
settings the first learn fixes, and which values leave a fingerprint as it was. These
replace hand-kept lists, so each property is checked on the model itself."""

from __future__ import annotations

import pytest
from pydantic import Field, create_model

from binplay.config import (
    BinPlayConfig,
    ConfigError,
    _Strict,
    fixed_settings,
    for_strategy,
    load_config,
    setting,
)
from binplay.strategies import STRATEGIES

SMOKE = "configs/smoke.yaml"


def test_every_strategy_of_the_union_is_registered():
    union = BinPlayConfig.model_fields["strategy"].annotation.__args__
    assert set(union) == set(STRATEGIES)


@pytest.mark.parametrize("override,strategy", [
    ("derpp.alpha=0.9", "binplay"), ("er.sampling=reservoir", "derpp"), ("dgr.epochs=3", "er"),
    ("classifier.distill_current=0.5", "er"), ("autoencoder.samples_per_class=10", "derpp"),
    ("replay.mode=actors", "er"),
])
def test_a_setting_the_strategy_does_not_read_is_refused_in_one_line(tiny, override, strategy):
    with pytest.raises(ConfigError) as err:
        tiny(f"strategy={strategy}", override)
    message = str(err.value)
    field = override.split("=")[0]
    assert f"{field}: applies to strategy" in message and f"not {strategy}" in message
    assert "\n" not in message


def test_a_setting_at_its_default_is_accepted_under_any_strategy(tiny):
    for name in STRATEGIES:
        tiny(f"strategy={name}", "derpp.alpha=0.1", "classifier.distill_current=0.0")


def test_for_strategy_keeps_only_what_the_strategy_reads():
    import yaml

    tree = yaml.safe_load(open("configs/split_mnist.yaml"))
    tree["derpp"] = {"alpha": 0.3}
    for name in STRATEGIES:
        from binplay.config import config_from_dict

        cfg = config_from_dict(for_strategy(tree, name), [f"strategy={name}"])
        assert (cfg.derpp.alpha == 0.3) == (name == "derpp")
        assert (cfg.classifier.unmemorised_inputs is True) == (name == "binplay")


def test_fixed_settings_come_from_the_fields():
    fixed = fixed_settings()
    # The shapes and codes: what a later learn may not change (autoencoder.hidden was once
    # missing from a hand-kept list, and a learn changing it reached a raw traceback).
    for name in ("strategy", "codes.primes", "codes.class_bits", "autoencoder.preset",
                 "autoencoder.hidden", "autoencoder.channels", "classifier.norm",
                 "stream.order", "er.memory_mb", "derpp.memory_mb", "dgr.latent_dim"):
        assert name in fixed
    for name in ("classifier.epochs", "classifier.lr", "autoencoder.decoder_epochs", "seed"):
        assert name not in fixed


def test_a_neutral_value_stays_out_of_the_fingerprint_and_any_other_enters():
    base = load_config(SMOKE)
    assert base.fingerprint() == "61c18ea0c081ff40"  # measured before field metadata existed
    # encoder_carry's neutral is True (what states written before the field did), its
    # default False: both values change the math, so they give different fingerprints.
    carried = load_config(SMOKE, ["autoencoder.encoder_carry=true"])
    assert carried.fingerprint() != base.fingerprint()
    assert "encoder_carry" not in _fingerprinted(carried)["autoencoder"]
    assert "encoder_carry" in _fingerprinted(base)["autoencoder"]
    wide = load_config(SMOKE, ["classifier.max_classes=12"])
    assert wide.fingerprint() != base.fingerprint()
    assert "max_classes" not in _fingerprinted(base)["classifier"]


def _fingerprinted(cfg: BinPlayConfig) -> dict:
    """What the fingerprint hashes, caught on its way to json.dumps."""
    import json
    from unittest import mock

    seen = {}
    real = json.dumps

    def spy(obj, **kw):
        seen.update(obj)
        return real(obj, **kw)

    with mock.patch("binplay.config.model.json.dumps", spy):
        cfg.fingerprint()
    return seen


def test_a_new_section_leaves_existing_fingerprints():
    """A strategy added later brings its own section: declared with its readers, it leaves
    the fingerprint of every other strategy (and their checkpoints) as it was."""

    class NewSection(_Strict):
        strength: float = Field(0.5)

    extended = create_model("Extended", __base__=BinPlayConfig,
                            newsec=(NewSection, setting(default_factory=NewSection,
                                                        readers=("newmethod",))))
    tree = load_config(SMOKE).model_dump(mode="json")
    assert extended.model_validate(tree).fingerprint() == "61c18ea0c081ff40"
    with pytest.raises(ValueError, match="newsec.strength: applies to strategy newmethod only"):
        extended.model_validate({**tree, "newsec": {"strength": 0.9}})
