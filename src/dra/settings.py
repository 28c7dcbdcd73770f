"""Experiment settings: a YAML file per protocol (OmegaConf), overridden from the command line.

    settings = load_settings("base2new", {"datasets": ["eurosat"]}, ["train.epochs=1", "dra.rank=16"])

`load_settings` accepts a packaged name (base2new, cross_dataset, domain_gen, demo) or a YAML path,
then merges explicit values (CLI options) and `key=value` overrides (dotted paths). Sections are
checked against the dataclasses they feed (DRAConfig, TrainSettings), so a typo is an error.
"""
from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dra.config import DRAConfig
from dra.engine.trainer import TrainSettings

PROTOCOLS = ("base2new", "cross_dataset", "domain_gen", "demo", "pocket")


class SettingsError(ValueError):
    """Bad settings file or override; the message names the key and what is allowed."""


def settings_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SettingsError(f"settings file {path} not found")
        return path
    packaged = resources.files("dra") / "configs" / f"{name}.yaml"
    if not packaged.is_file():
        raise SettingsError(f"no packaged settings '{name}'; choose one of {PROTOCOLS} or a .yaml path")
    return Path(str(packaged))


def load_settings(name: str, values: dict[str, Any] | None = None, overrides: list[str] | None = None) -> DictConfig:
    try:
        cfg = OmegaConf.load(settings_path(name))
        explicit = {k: v for k, v in (values or {}).items() if v is not None}
        if explicit:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(explicit))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise SettingsError(f"overrides must look like key=value (e.g. train.epochs=1), got {bad}")
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as e:
        raise SettingsError(f"bad settings: {e}".splitlines()[0]) from e
    check(cfg)
    return cfg


def _check_section(cfg: DictConfig, key: str, cls) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg.get(key) or {}) - known)
    if unknown:
        raise SettingsError(f"unknown {key} setting(s) {unknown}; known: {sorted(known)}")


def check(cfg: DictConfig) -> None:
    _check_section(cfg, "dra", DRAConfig)
    _check_section(cfg, "train", TrainSettings)
    for name, extra in (cfg.get("dataset_overrides") or {}).items():
        for section, cls in (("dra", DRAConfig), ("train", TrainSettings)):
            _check_section(OmegaConf.create(dict(extra)), section, cls)
    try:
        dra_config(cfg)
    except (TypeError, ValueError) as e:
        raise SettingsError(f"dra settings: {e}") from e


def for_dataset(cfg: DictConfig, dataset: str) -> DictConfig:
    """The settings with `dataset_overrides[dataset]` merged in."""
    extra = (cfg.get("dataset_overrides") or {}).get(dataset)
    return OmegaConf.merge(cfg, extra) if extra else cfg


def dra_config(cfg: DictConfig) -> DRAConfig:
    return DRAConfig(**OmegaConf.to_container(cfg.get("dra") or {}, resolve=True))


def train_settings(cfg: DictConfig, seed: int) -> TrainSettings:
    return TrainSettings(**{**OmegaConf.to_container(cfg.train, resolve=True), "seed": int(seed)})


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)
