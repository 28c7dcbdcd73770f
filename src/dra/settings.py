"""Experiment settings: one typed schema (dataclasses + OmegaConf), a YAML per protocol, CLI overrides.

    settings = load_settings("base2new", {"datasets": ["eurosat"]}, ["train.epochs=1", "dra.rank=16"])

The schema below holds every setting with its type and default (the paper's values); a packaged
protocol file (`configs/<name>.yaml`) or a user's YAML holds only what differs, and each method's
published hyper-parameters live in `configs/methods/<method>.yaml` (an `all:` block, then one block per
protocol: `base2new:`, `cross_dataset:`, `domain_gen:`). `load_settings` merges schema <- protocol
YAML <- method YAML (`all`, then the protocol's block) <- the protocol YAML's `method_overrides.<method>`
block (what one world needs for one method: the pocket CLIP's learning rates) <- explicit values (CLI
options) <- `key=value` overrides and checks the result before anything is written: unknown keys at any level (with the
nearest valid key), types, ranges and choices. Errors are `SettingsError`s with a one-line message
that names the key. The valid method names and their sections come from the methods' registration
(`dra.methods.registry`, which imports no torch); each has its packaged method file.

This is the settings layer: it imports `dra.config` (the typed method configs and the engine's plain
`TrainSettings`/`EvalSettings` with their checks, re-exported here), `dra.data.registry` (the default
dataset list), the methods' registration (`dra.methods.registry`, no torch), `dra.labels`,
`dra.run_files` (the evaluation splits) and `dra.errors`; the engine and the methods import `dra.config`, never this.

Just over 400 lines on purpose: the schema, the YAML layering and the checks read one file top to bottom;
the engine's own checks already live in `dra.config.train`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dra.config import (  # LATER_TRAIN_DEFAULTS: re-exported (protocols/experiment.py reads S.LATER_...)
    LATER_TRAIN_DEFAULTS,  # noqa: F401
    DRAConfig,
    EvalSettings,
    TrainSettings,
    check_eval,
    check_fields,
    check_train,
)
from dra.data.registry import BASE_TO_NEW_DATASETS
from dra.errors import SettingsError
from dra.labels import DEFAULT_TEMPLATE, template_problem
from dra.methods.registry import method_names, method_sections
from dra.run_files import EVAL_SPLITS

METHOD_SECTIONS = method_sections()  # section -> config class, from the methods' one registration

PAPER_TABLES = {"base2new": 1, "cross_dataset": 2, "domain_gen": 3}
PROTOCOLS = tuple(PAPER_TABLES)
"""The experiment protocols (the `protocol` setting): the one list; the method files' blocks, `dra ablate`
and the CLI's help derive from it. `demo` and `pocket` are packaged settings files, not protocols."""
ALL_SHOTS = "all"


@dataclass
class SlurmSettings:
    """`--launcher slurm`: what each job asks SLURM for (not part of any run's identity or hash)."""

    partition: Optional[str] = None
    time_min: int = 120
    """Wall-time limit of one job (one run), minutes."""
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    """Also the torch threads of the job."""
    mem_gb: int = 32
    array_parallelism: int = 64
    """At most this many jobs of the array run at once (sbatch --array=0-N%P)."""
    sbatch: Dict[str, Any] = field(default_factory=dict)
    """Extra sbatch options, e.g. {account: mylab, qos: high, constraint: a100}."""


def _section(cls, name: str, exclude: tuple[str, ...] = ()) -> type:
    """A schema dataclass with `cls`'s fields (tuples become lists: OmegaConf stores lists)."""
    types = {int: int, float: float, bool: bool, str: str, "int": int, "float": float, "bool": bool, "str": str}
    out = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        default = getattr(cls(), f.name)
        if isinstance(default, tuple):
            out.append((f.name, List[float], field(default_factory=lambda d=default: list(d))))
        else:
            out.append((f.name, types[f.type], field(default=default)))
    return dataclasses.make_dataclass(name, out)


DRASection = _section(DRAConfig, "DRASection")
METHOD_SCHEMAS = {name: _section(cls, f"{cls.__name__}Section") for name, cls in METHOD_SECTIONS.items()}
TrainSection = _section(TrainSettings, "TrainSection", exclude=("seed",))


@dataclass
class Settings:
    protocol: str = "base2new"
    method: str = "dra"
    model: str = "ViT-B-16"
    pretrained: Optional[str] = "openai"
    template: str = DEFAULT_TEMPLATE
    data_root: Optional[str] = None
    split: Optional[str] = None
    """A CoOp split file (JSON) for image-folder datasets (a dataset given as a path)."""
    datasets: List[str] = field(default_factory=lambda: list(BASE_TO_NEW_DATASETS))
    source: str = "imagenet"
    targets: List[str] = field(default_factory=list)
    seeds: List[int] = field(default_factory=lambda: [1, 2, 3])
    shots: Any = 16
    """Images per class of the few-shot draw, or "all" for the whole training split."""
    output: str = "runs"
    device: Optional[str] = None
    test_per_class: Optional[int] = None
    eval_split: str = "test"
    """The split a base-to-new run is scored on: `test` (the reported numbers) or `val` (each class half's
    validation list of the draw: tuning, `dra tune`); a val result goes to its own file (`result-val.json`)."""
    # + one typed section per method config (`dra`, `mma`, `coop`, ...: METHOD_SECTIONS), added by _schema
    train: Any = field(default_factory=TrainSection)
    eval: Any = field(default_factory=EvalSettings)
    slurm: Any = field(default_factory=SlurmSettings)
    dataset_overrides: Dict[str, Any] = field(default_factory=dict)


SECTIONS = {**METHOD_SCHEMAS, "train": TrainSection, "eval": EvalSettings, "slurm": SlurmSettings}
_TOP = [f.name for f in dataclasses.fields(Settings)] + list(METHOD_SCHEMAS)
_LEAVES: dict[str, str] = {}
for _s, _c in SECTIONS.items():  # a leaf name of several sections suggests the first (dra's, train's)
    for _f in dataclasses.fields(_c):
        _LEAVES.setdefault(_f.name, f"{_s}.{_f.name}")


def _schema() -> DictConfig:
    base = OmegaConf.structured(Settings)
    for name, cls in SECTIONS.items():  # typed sections (Any above keeps OmegaConf from nesting twice)
        OmegaConf.set_struct(base, False)
        base[name] = OmegaConf.structured(cls)
        OmegaConf.set_struct(base, True)
    OmegaConf.set_struct(base.dataset_overrides, False)  # any dataset name; its values are checked by check_keys
    OmegaConf.set_struct(base.slurm.sbatch, False)  # any sbatch option
    return base


def check_keys(data: dict, prefix: str = "") -> None:
    """Every key of a (partial) settings mapping exists in the schema, at any level."""
    check_fields(_TOP, data, prefix, elsewhere=_LEAVES)
    for name, cls in SECTIONS.items():
        value = data.get(name)
        if value is not None and not isinstance(value, dict):
            raise SettingsError(f"{prefix}{name} must be a mapping of settings ({name}: {{key: value}}), got {value!r}")
        if isinstance(value, dict):
            check_fields(
                [f.name for f in dataclasses.fields(cls)],
                value,
                f"{prefix}{name}.",
                elsewhere={k: v for k, v in {**_LEAVES, **{t: t for t in _TOP}}.items()},
            )
    overrides = data.get("dataset_overrides")
    if isinstance(overrides, dict):
        for dataset, extra in overrides.items():
            if not isinstance(extra, dict):
                raise SettingsError(f"dataset_overrides.{dataset} must be a mapping of settings, got {extra!r}")
            if "dataset_overrides" in extra:
                raise SettingsError(f"dataset_overrides.{dataset} cannot hold dataset_overrides")
            check_keys(extra, f"{prefix}dataset_overrides.{dataset}.")


def _methods_dir():
    return resources.files("dra") / "configs" / "methods"


METHOD_BLOCKS = ("all", *PROTOCOLS)


def method_layers(method: str, protocol: str) -> list[dict]:
    """The settings a method's packaged YAML gives for `protocol`: its `all:` block, then the protocol's."""
    names = method_names()
    if method not in names:
        raise SettingsError(f"method must be one of {names}, got {method!r}")
    path = Path(str(_methods_dir() / f"{method}.yaml"))
    data = read_yaml(path)
    try:
        check_fields(METHOD_BLOCKS, data)
    except ValueError as e:
        raise SettingsError(f"{path}: {e} (a method file holds the blocks {METHOD_BLOCKS})") from None
    layers = []
    for block in ("all", protocol):
        value = data.get(block)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise SettingsError(f"{path}: {block} must be a mapping of settings, got {value!r}")
        fixed = [k for k in ("method", "protocol") if k in value]
        if fixed:
            raise SettingsError(f"{path}: {block} cannot set {fixed[0]} (the method file is chosen by it)")
        layers.append(value)
    return layers


def packaged_settings() -> tuple[str, ...]:
    """The names of the packaged settings files (`configs/<name>.yaml`): the protocols, `demo`, `pocket`."""
    folder = resources.files("dra") / "configs"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def protocols_text(tables: bool = False) -> str:
    """The protocols for a help line: "base2new, cross_dataset or domain_gen"; with `tables`, each
    followed by its table of the paper: "base2new (Table 1), ..."."""
    names = [f"{p} (Table {PAPER_TABLES[p]})" if tables else p for p in PROTOCOLS]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def settings_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SettingsError(f"settings file {path} not found")
        return path
    packaged = resources.files("dra") / "configs" / f"{name}.yaml"
    if not packaged.is_file():
        raise SettingsError(f"no packaged settings '{name}'; choose one of {packaged_settings()} or a .yaml path")
    return Path(str(packaged))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, got a {type(key).__name__}", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> dict:
    """A settings file as a plain mapping; any parse problem is a one-line SettingsError."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SettingsError(f"settings file {path} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(f"settings file {path} cannot be read ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"settings file {path} must be a mapping of settings (key: value), got a {type(data).__name__}"
        )
    return data


def parse_overrides(overrides: list[str]) -> dict:
    bad = [o for o in overrides if "=" not in o or o.startswith("=")]
    if bad:
        raise SettingsError(f"overrides must look like key=value (e.g. train.epochs=1), got {bad}")
    for o in overrides:  # each value must be plain YAML (no tags: `!!python/...` is refused, never built)
        key, _, value = o.partition("=")
        try:
            yaml.safe_load(value)
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise SettingsError(
                f"override {o!r}: the value is not valid YAML ({problem}); quote it, e.g. '{key}=\"...\"'"
            ) from None
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(list(overrides)))
    except (OmegaConfBaseException, yaml.YAMLError, TypeError, ValueError, IndexError, KeyError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise SettingsError(
            f"bad override in {list(overrides)}: {first} (write key=value, e.g. train.epochs=1)"
        ) from None


def _merge(cfg: DictConfig, data: dict) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, data)
    except (OmegaConfBaseException, TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
        # OmegaConf raises plain TypeErrors too ("Cannot merge incompatible container types": a mapping
        # where a list belongs); each is a wrong value in the user's settings
        key = getattr(e, "full_key", None)
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise SettingsError(f"bad value for {key}: {first}" if key else f"bad settings: {first}") from None


def per_method_layer(protocol_file: dict, method: str, path: Path) -> list[dict]:
    """A settings file's `method_overrides.<method>` block (popped from `protocol_file`), checked: the
    settings one world needs for one method (the pocket CLIP's learning rates, its 4 blocks)."""
    blocks = protocol_file.pop("method_overrides", None) or {}
    if not isinstance(blocks, dict):
        raise SettingsError(f"{path}: method_overrides must be a mapping method -> settings, got {blocks!r}")
    for m, block in blocks.items():
        if m not in method_names():
            raise SettingsError(f"{path}: method_overrides.{m}: method must be one of {method_names()}")
        if not isinstance(block, dict) or any(k in block for k in ("method", "protocol", "method_overrides")):
            raise SettingsError(f"{path}: method_overrides.{m} must be a mapping of settings (not method/protocol)")
        try:
            check_keys(block, f"method_overrides.{m}.")
        except ValueError as e:
            raise SettingsError(f"{path}: {e}") from None
    return [blocks[method]] if method in blocks else []


def load_settings(name: str, values: dict[str, Any] | None = None, overrides: list[str] | None = None) -> DictConfig:
    """The settings file `name`, then the method's packaged YAML, then the file's `method_overrides` for
    that method, then `values` (explicit, None skipped), then `overrides` (key=value), validated."""
    path = settings_path(name)
    protocol_file = read_yaml(path)
    explicit = {k: v for k, v in (values or {}).items() if v is not None}
    late = [explicit] if explicit else []
    if overrides:
        late.append(parse_overrides(overrides))
    chosen = {k: v for layer in (protocol_file, *late) for k, v in layer.items() if k in ("method", "protocol")}
    method = str(chosen.get("method", Settings.method))
    protocol = str(chosen.get("protocol", Settings.protocol))
    per_method = per_method_layer(protocol_file, method, path)
    layers = [protocol_file, *method_layers(method, protocol), *per_method, *late]
    cfg = _schema()
    try:
        for data in layers:
            data = {k: v for k, v in data.items() if not (v is None and k in (*SECTIONS, "dataset_overrides"))}
            check_keys(data)
            shots_value = data.get("shots")
            if isinstance(shots_value, str) and shots_value.strip().lstrip("+-").isdigit():
                data = {**data, "shots": int(shots_value)}  # `--shots 8` arrives as text (it may be "all")
            cfg = _merge(cfg, data)
    except ValueError as e:
        raise SettingsError(str(e)) from None
    check(cfg)
    return cfg


def _need(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise SettingsError(f"{key} must be {rule}, got {value!r}")


def _check_ranges(cfg: DictConfig, prefix: str = "") -> None:
    t, e = cfg.train, cfg.eval
    _need(cfg.method in method_names(), f"{prefix}method", f"one of {method_names()}", cfg.method)
    _need(cfg.protocol in PROTOCOLS, f"{prefix}protocol", f"one of {PROTOCOLS}", cfg.protocol)
    if template_problem(cfg.template):
        raise SettingsError(f"{prefix}template must be {template_problem(cfg.template)}")
    check_train(t, prefix, all_shots=cfg.shots == ALL_SHOTS)
    check_eval(e, prefix)
    sl = cfg.slurm
    for key in ("time_min", "cpus_per_task", "mem_gb", "array_parallelism"):
        _need(sl[key] >= 1, f"{prefix}slurm.{key}", ">= 1", sl[key])
    _need(sl.gpus_per_node >= 0, f"{prefix}slurm.gpus_per_node", ">= 0", sl.gpus_per_node)
    shots = cfg.shots
    ok = shots == ALL_SHOTS or (isinstance(shots, int) and not isinstance(shots, bool) and shots >= 1)
    _need(ok, f"{prefix}shots", f"an integer >= 1 or '{ALL_SHOTS}' (every training image)", shots)
    _need(
        cfg.test_per_class is None or cfg.test_per_class >= 1,
        f"{prefix}test_per_class",
        ">= 1 or null",
        cfg.test_per_class,
    )
    _need(cfg.eval_split in EVAL_SPLITS, f"{prefix}eval_split", f"one of {EVAL_SPLITS}", cfg.eval_split)
    _need(
        cfg.eval_split == "test" or cfg.protocol == "base2new",
        f"{prefix}eval_split",
        f"'test' under protocol {cfg.protocol} (val scores base-to-new runs only)",
        cfg.eval_split,
    )
    _need(len(cfg.seeds) >= 1, f"{prefix}seeds", "at least one seed", list(cfg.seeds))
    seeds = list(cfg.seeds)
    _need(all(type(s) is int for s in seeds), f"{prefix}seeds", "integers", seeds)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    _need(not repeated, f"{prefix}seeds", f"distinct (repeated: {repeated})", list(cfg.seeds))
    _need(len(cfg.datasets) >= 1, f"{prefix}datasets", "at least one dataset", list(cfg.datasets))
    for section in METHOD_SECTIONS:
        try:
            section_config(cfg, section)
        except (TypeError, ValueError) as err:
            raise SettingsError(f"{prefix}{section} settings: {err}") from None


def check(cfg: DictConfig) -> None:
    """Ranges and choices of every setting, also with each dataset's overrides merged in."""
    _check_ranges(cfg)
    for dataset in cfg.get("dataset_overrides") or {}:
        _check_ranges(for_dataset(cfg, dataset), f"(with dataset_overrides.{dataset}) ")


def for_dataset(cfg: DictConfig, dataset: str) -> DictConfig:
    """The settings with `dataset_overrides[dataset]` merged in."""
    extra = (cfg.get("dataset_overrides") or {}).get(dataset)
    return _merge(cfg, OmegaConf.to_container(extra)) if extra else cfg


def shots(cfg: DictConfig) -> int | None:
    """The few-shot K, or None for every training image (`shots: all`)."""
    return None if cfg.shots == ALL_SHOTS else int(cfg.shots)


def section_config(cfg: DictConfig, section: str):
    """The typed config of a method section (`dra`, `mma`, `lora`, ...), built and checked."""
    return METHOD_SECTIONS[section](**OmegaConf.to_container(cfg.get(section) or {}, resolve=True))


def dra_config(cfg: DictConfig) -> DRAConfig:
    return section_config(cfg, "dra")


def train_settings(cfg: DictConfig, seed: int) -> TrainSettings:
    """The engine's settings; `iterations_per_shot` becomes the absolute `iterations` budget here."""
    values = {**OmegaConf.to_container(cfg.train, resolve=True), "seed": int(seed)}
    if values.get("iterations_per_shot"):
        values["iterations"] = values.pop("iterations_per_shot") * int(cfg.shots)
        values["iterations_per_shot"] = 0
    return TrainSettings(**values)


def from_container(data: dict) -> DictConfig:
    """Settings again from their plain mapping (`OmegaConf.to_container` of loaded settings: a launched
    job's), typed by the schema and checked."""
    try:
        check_keys(data)
        cfg = _merge(_schema(), data)
    except ValueError as e:
        raise SettingsError(str(e)) from None
    check(cfg)
    return cfg
