"""Every error a user can act on derives from `dra.errors.DraError` (the one class the CLI catches) and
keeps its older base, so `except ValueError` / `except OSError` callers still catch it."""

from __future__ import annotations

import pytest

from dra.backbones.loading import BackboneError, WeightsUnavailableError
from dra.backbones.torchscript import TorchScriptError
from dra.backbones.wrapping import WrapError
from dra.checkpoints.format import CheckpointError
from dra.config import UnknownFieldError
from dra.data.core import DataError
from dra.engine.trainer import RunBusyError, RunMismatchError, TrainingDivergedError
from dra.errors import DraError
from dra.io import OutputError
from dra.protocols.experiment import RunMissingError
from dra.settings import SettingsError

SECOND_BASES = {
    BackboneError: RuntimeError,
    WeightsUnavailableError: BackboneError,
    TorchScriptError: ValueError,
    WrapError: RuntimeError,
    UnknownFieldError: ValueError,
    DataError: Exception,
    CheckpointError: RuntimeError,
    RunBusyError: RuntimeError,
    RunMismatchError: RuntimeError,
    TrainingDivergedError: RuntimeError,
    OutputError: OSError,
    RunMissingError: RuntimeError,
    SettingsError: ValueError,
}


@pytest.mark.parametrize("cls", list(SECOND_BASES), ids=lambda c: c.__name__)
def test_domain_errors_derive_from_dra_error(cls):
    assert issubclass(cls, DraError)
    assert issubclass(cls, SECOND_BASES[cls])
    with pytest.raises(DraError, match="names the fix"):
        raise cls("bad.yaml: names the fix")


def test_user_facing_value_errors_are_dra_errors(tmp_path):
    """What a user typed wrong (a method name, a device, a precision, a class-names file) is a DraError
    that names the value and the choices, and still a ValueError."""
    import torch

    from dra.engine.distributed import resolve_device
    from dra.engine.precision import resolve
    from dra.errors import SettingsError
    from dra.labels import LabelsError, read_classnames
    from dra.methods import build_method

    with pytest.raises(SettingsError, match="unknown method 'nosuch'; choose one of .*'dra'"):
        build_method("nosuch", None, ["a"])
    with pytest.raises(SettingsError, match="unknown device 'gpu0'; use cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    with pytest.raises(SettingsError, match="precision must be one of"):
        resolve("fp8", torch.device("cpu"))
    (tmp_path / "names.txt").write_text("cat\ndog\ncat\n")
    with pytest.raises(LabelsError, match="'cat' is listed twice; each class needs one name"):
        read_classnames(tmp_path / "names.txt")
    assert issubclass(SettingsError, DraError) and issubclass(SettingsError, ValueError)
    assert issubclass(LabelsError, DraError) and issubclass(LabelsError, ValueError)
