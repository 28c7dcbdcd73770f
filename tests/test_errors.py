"""Every error a user can act on derives from `dra.errors.DraError` (the one class the CLI catches) and
keeps its older base, so `except ValueError` / `except OSError` callers still catch it."""

from __future__ import annotations

import pytest

from dra.backbones.loading import BackboneError, WeightsUnavailableError
from dra.backbones.torchscript import TorchScriptError
from dra.backbones.wrapping import WrapError
from dra.config import UnknownFieldError
from dra.data.core import DataError
from dra.engine.checkpoint import CheckpointError
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
