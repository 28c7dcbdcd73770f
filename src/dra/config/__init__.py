"""The library's plain, typed configuration (dataclasses, no OmegaConf): each method's config
(`methods.py`: `DRAConfig` and one class per baseline), the engine's
`TrainSettings`/`EvalSettings` with their range checks (`train.py`), and the one unknown-key check
(`fields.py`). The settings layer (`dra.settings`) builds its schema from these; the engine and the
methods import them from here, below the settings layer."""

from dra.config.fields import UnknownFieldError, check_fields
from dra.config.methods import (
    BRANCHES,
    PLACEMENTS,
    REDUCTIONS,
    CLIPAdapterConfig,
    CoCoOpConfig,
    CoOpConfig,
    DRAConfig,
    KgCoOpConfig,
    LFAConfig,
    LoRAConfig,
    MaPLeConfig,
    MetaPromptConfig,
    MMAConfig,
    ProDAConfig,
    TCPConfig,
    TipAdapterConfig,
)
from dra.config.train import (
    LATER_TRAIN_DEFAULTS,
    OPTIMIZERS,
    PAPER_SGD,
    PRECISIONS,
    SCHEDULES,
    EvalSettings,
    TrainSettings,
    check_eval,
    check_train,
)

__all__ = [
    "DRAConfig",
    "MMAConfig",
    "LoRAConfig",
    "CLIPAdapterConfig",
    "TipAdapterConfig",
    "CoOpConfig",
    "KgCoOpConfig",
    "CoCoOpConfig",
    "MaPLeConfig",
    "TCPConfig",
    "MetaPromptConfig",
    "LFAConfig",
    "ProDAConfig",
    "BRANCHES",
    "PLACEMENTS",
    "REDUCTIONS",
    "PRECISIONS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainSettings",
    "EvalSettings",
    "LATER_TRAIN_DEFAULTS",
    "PAPER_SGD",
    "check_train",
    "check_eval",
    "UnknownFieldError",
    "check_fields",
]
