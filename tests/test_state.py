"""A saved state loads as plain data only: a crafted state.pt cannot run code."""

import collections
import os
import shlex

import numpy as np
import pytest
import torch
from torch import nn

from binplay.config import load_config
from binplay.state import StateError, fresh_state, load_state, save_state

MARKER_NAME = "payload-ran"


def _write_marker(path):
    with open(path, "w") as fh:
        fh.write("the pickle ran code")
    return 0


class ShellPayload:
    """Unpickling this runs a shell command (the classic malicious checkpoint)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class PythonPayload:
    """Unpickling this calls a function of this module that writes a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _write_marker, (str(self.marker),)


class Opaque:
    """Any instance of a class: harmless here, but not plain data."""


def _state(cfg=None):
    """A state with every kind of value the service saves, mid-task entries included."""
    state = fresh_state(cfg or load_config(None, []))
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    state["models"] = {"decoder": model.state_dict()}
    state["optim"] = {"phase": "decoder", "state": opt.state_dict()}  # int keys, betas tuple
    state["mapping"] = [torch.arange(5)]
    state["ledger"] = {"tasks": [{"task_id": 0, "first_index": 1, "last_index": 5, "classes": [0, 1]}]}
    state["measurement"]["probes"] = {0: {"code_index": [3, 1], "stream_index": [1, 2]}}
    state["measurement"]["grids"].append(torch.zeros(3, 8, 8, dtype=torch.uint8))
    state["history"]["accuracy"].append([99.5])
    state["history"]["fidelity_psnr"].append([None, float("inf")])
    state["phase_metrics"] = [{"phase": "decoder", "epoch": 0, "loss": 0.25}]
    return state


def test_normal_state_round_trips(tmp_path):
    cfg = load_config(None, [])
    state = _state(cfg)
    save_state(state, tmp_path)
    back = load_state(tmp_path, cfg)
    assert back["measurement"]["probes"] == {0: {"code_index": [3, 1], "stream_index": [1, 2]}}
    assert back["ledger"] == state["ledger"] and back["config"] == state["config"]
    assert back["history"]["fidelity_psnr"] == [[None, float("inf")]]
    grid = back["measurement"]["grids"][0]
    assert grid.dtype == torch.uint8 and grid.shape == (3, 8, 8)
    for key, value in state["models"]["decoder"].items():
        assert torch.equal(back["models"]["decoder"][key], value), key
    opt = back["optim"]["state"]
    assert set(opt["state"]) == {0, 1, 2, 3} and opt["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["mapping"][0], torch.arange(5))
    # The batch-norm version survives, so load_state_dict treats the weights as current.
    assert back["models"]["decoder"]._metadata == state["models"]["decoder"]._metadata
    nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).load_state_dict(back["models"]["decoder"])


@pytest.mark.parametrize("payload", [ShellPayload, PythonPayload])
def test_state_that_would_run_code_is_refused(tmp_path, payload):
    marker = tmp_path / MARKER_NAME
    state = _state()
    state["history"]["accuracy"].append(payload(marker))
    path = tmp_path / "state.pt"
    torch.save(state, path)  # what an attacker writes: torch.save pickles anything
    with pytest.raises(StateError) as err:
        load_state(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "objects other than plain data" in message and "not loaded" in message
    assert not marker.exists(), "loading the state ran the payload"


def test_payload_is_live(tmp_path):
    """The payload above is real: an unrestricted load runs it (so the test above can fail)."""
    marker = tmp_path / MARKER_NAME
    torch.save({"x": PythonPayload(marker)}, tmp_path / "state.pt")
    torch.load(tmp_path / "state.pt", weights_only=False)
    assert marker.exists()


def test_any_object_is_refused(tmp_path):
    state = _state()
    state["measurement"]["probes"][0]["extra"] = Opaque()
    torch.save(state, tmp_path / "state.pt")
    with pytest.raises(StateError, match="objects other than plain data"):
        load_state(tmp_path)


def test_garbage_is_unreadable_not_unsafe(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"garbage")
    with pytest.raises(StateError, match="unreadable state"):
        load_state(tmp_path)


def test_save_turns_numpy_into_plain_data(tmp_path):
    state = _state()
    state["history"]["sign_agreement"].append(np.float64(0.75))
    state["measurement"]["probes"][np.int64(1)] = {"code_index": np.arange(3)}
    save_state(state, tmp_path)
    back = load_state(tmp_path)
    assert back["history"]["sign_agreement"] == [0.75]
    assert type(back["history"]["sign_agreement"][0]) is float
    assert torch.equal(back["measurement"]["probes"][1]["code_index"], torch.arange(3))


def test_save_refuses_an_object_naming_where_it_is(tmp_path):
    state = _state()
    state["phase_metrics"][0]["extra"] = collections.defaultdict(list)
    with pytest.raises(TypeError, match=r"phase_metrics\[0\]/extra holds a collections.defaultdict"):
        save_state(state, tmp_path)
    assert not (tmp_path / "state.pt").exists()


def test_every_state_entry_is_declared_and_an_undeclared_one_is_refused_before_writing(tmp_path):
    from binplay.state import STATE_KEYS, TASK_SCOPED, RunState

    # Task-scoped entries are marked where RunState declares them, not in a list kept apart.
    assert set(TASK_SCOPED) == {"optim", "snapshots", "mapping", "phase_metrics", "task_elapsed",
                                "decoder_packed"}
    assert set(TASK_SCOPED) < set(STATE_KEYS) == set(RunState.__annotations__)
    state = {"version": 2, "task": 0, "probes_of_task": {}}
    with pytest.raises(TypeError, match="probes_of_task"):
        save_state(state, tmp_path / "s")
    assert not (tmp_path / "s").exists()
