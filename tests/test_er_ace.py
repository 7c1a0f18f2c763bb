"""ER-ACE, one file in strategies/: ER's buffer, the current loss over the new classes only."""

from __future__ import annotations

from test_engine import _run


def test_er_ace_current_loss_is_over_the_new_classes(tiny, tmp_path, classifier_calls):
    from binplay.strategies import make_strategy

    cfg = tiny("strategy=er_ace", "er.memory_mb=0.02", "classifier.epochs=1")
    ace = make_strategy(cfg)
    assert ace.classifier_config().current_loss_classes == "new" and ace.memory_field == "er.memory_mb"
    _run(cfg, tmp_path)
    task2 = classifier_calls[-1]
    assert task2["cfg"].current_loss_classes == "new" and task2["old"].tolist() == [True, True, False, False]
    assert task2["n_past"] == 32  # ER's replay: a batch the size of the current one
