"""`dra pocket pretrain` (a simulation): a few contrastive steps lower the loss; a stopped run resumes."""

from __future__ import annotations

import json

import numpy as np

from dra.pocket.pretrain import PretrainSettings, pretrain


def test_a_few_pretraining_steps_lower_the_contrastive_loss_and_resume(tmp_path):
    s = PretrainSettings(
        steps=10, batch_size=16, lr=2e-3, warmup=2, seed=0, checkpoint_every=5, threads=2, workers=0, recipe="groups"
    )  # groups: the one recipe whose stages do not depend on --steps, so a longer run resumes a shorter one
    first = PretrainSettings(**{**s.__dict__, "steps": 5})
    pretrain(first, tmp_path, progress=False, echo=lambda *_: None)  # stops after 5 steps (a checkpoint)
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 5
    meta = pretrain(s, tmp_path, progress=False, echo=lambda *_: None)  # resumes at step 5
    losses = json.loads((tmp_path / "checkpoint.json").read_text())["losses"]
    assert len(losses) == 10
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses
    assert meta["simulation"] and meta["steps"] == 10 and (tmp_path / "pocket.safetensors").is_file()
