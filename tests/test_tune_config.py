"""A search's YAML: what its trials run against what its winner (best.yaml) runs."""

from __future__ import annotations

import pytest
import yaml

from binplay.config import ConfigError
from binplay.tune.config import load_search, trial_config
from raytools import REPO

CIFAR_ER = REPO / "configs" / "tune" / "split_cifar10_er.yaml"


def test_trials_run_the_reduced_stream_and_the_winner_the_whole_data():
    search, base = load_search(CIFAR_ER)
    params = {"er.epochs": 4, "er.lr": 3e-4, "er.batch_size": 32, "er.replay_batch": "balanced"}
    trial = trial_config(search, base, params)
    assert (trial.stream.train_per_class, trial.stream.test_per_class) == (1500, 500)
    assert len(trial.stream.tasks) == search.tune_tasks == 3
    best = trial_config(search, base, params, whole_stream=True)
    assert (best.stream.train_per_class, best.stream.test_per_class) == (None, None)
    assert len(best.stream.tasks) == 5
    # overrides reach both: they say how a run runs, not what it sees
    assert trial.run.threads == best.run.threads == 1 and best.er.epochs == 4


def test_moving_a_field_into_trial_overrides_keeps_a_search_resumable():
    search, _ = load_search(CIFAR_ER)
    moved = search.model_copy(update={"overrides": {**search.overrides, **search.trial_overrides},
                                      "trial_overrides": {}})
    assert moved.fingerprint() == search.fingerprint()
    changed = search.model_copy(update={"trial_overrides": {"stream.train_per_class": 300}})
    assert changed.fingerprint() != search.fingerprint()


def test_a_field_in_both_override_lists_is_refused_in_one_line(tmp_path):
    spec = yaml.safe_load(CIFAR_ER.read_text())
    spec["overrides"]["stream.train_per_class"] = 900
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="trial_overrides.stream.train_per_class: also in overrides"):
        load_search(path)
