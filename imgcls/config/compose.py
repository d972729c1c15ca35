"""Composing a config like ``imgcls train`` does, with imgcls's schemas and resolvers."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from imgcls.base.folders import job_dir, unique_dir
from imgcls.base.record import parse_overrides
from imgcls.config.files import config_dir
from imgcls.config.hydra_errors import translate_compose_error
from imgcls.config.options import SCHEMAS
from imgcls.config.schemas import TrainConfig

_registered = False
_composed: dict[tuple[str, tuple[str, ...]], DictConfig] | None = None  # see compose_once


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore and register imgcls's resolvers (idempotent)."""
    global _registered
    if _registered:
        return
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for (group, name), options in SCHEMAS.items():  # what conf/<group>/<name>.yaml extends
        store.store(group=f"schema/{group}", name=name, node=options)
    register_resolvers()
    _share_config_store()
    _registered = True


def _share_config_store() -> None:
    """Let copies of Hydra's config sources share the ConfigStore instead of copying it.

    Hydra deep-copies its config repository on every compose (and once per config group for
    ``train --help``) so that it can replace the copy's list of sources; with it went a copy
    of the ConfigStore singleton and every schema stored in it, a fifth of each compose and
    almost all of ``train --help`` (13 s). The store is one shared object anyway (every
    source holds ``ConfigStore.instance()``) and hands out copies of its nodes when loading.
    """
    ConfigStore.__deepcopy__ = lambda self, memo: self  # type: ignore[attr-defined]


def register_resolvers() -> None:
    """The resolvers conf/train.yaml's run and sweep folders use. Also run when this module is
    imported, so that a job process a launcher starts (joblib, submitit) resolves them."""
    OmegaConf.register_new_resolver("imgcls_unique_dir", unique_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("imgcls_job_dir", _job_dir_resolver, replace=True)


def _job_dir_resolver(name: str, sweep_dir: str, overrides: Any) -> str:
    return job_dir(str(name), str(sweep_dir), [str(o) for o in overrides])


register_resolvers()


def compose(
    overrides: list[str] | tuple[str, ...] = (),
    config_name: str = "train",
    return_hydra: bool = False,
) -> DictConfig:
    """Compose a config like ``imgcls train`` does, turning Hydra's errors into UserError.

    The Hydra node is kept as the current :class:`HydraConfig`, as Hydra does for a job, so
    that ``${hydra:runtime.cwd}`` in a value resolves while the config is checked.
    """
    key = (config_name, tuple(overrides))
    if _composed is not None and key in _composed:
        cfg = copy.deepcopy(_composed[key])
    else:
        try:
            cfg = _hydra_compose(list(overrides), config_name)
        except Exception as error:  # Hydra and OmegaConf raise many exception types
            raise translate_compose_error(error, list(overrides), compose_valid_keys) from error
        if _composed is not None:
            _composed[key] = copy.deepcopy(cfg)  # kept unresolved: resolvers run on copies
    HydraConfig.instance().set_config(cfg)
    return cfg if return_hydra else without_hydra(cfg)


@contextmanager
def compose_once() -> Iterator[None]:
    """Within the block, the same overrides are composed once and later calls get a copy.

    ``imgcls train`` composes a run's overrides to validate them and again to find its
    folder (about 0.2 s each); the block is one command's checks, during which neither the
    ConfigStore nor the working directory changes.
    """
    global _composed
    _composed = {}
    try:
        yield
    finally:
        _composed = None


def _hydra_compose(overrides: list[str], config_name: str) -> DictConfig:
    """Hydra's compose with its config node, its errors untranslated."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        try:
            return hydra_compose(
                config_name=config_name, overrides=overrides, return_hydra_config=True
            )
        finally:
            GlobalHydra.instance().clear()


def without_hydra(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` without its ``hydra`` node: the config a job receives."""
    task = copy.deepcopy(cfg)
    with read_write(task), open_dict(task):
        del task["hydra"]
    return task


def compose_valid_keys(
    parent_key: str, overrides: list[str] | tuple[str, ...] = (), rejected: str = ""
) -> list[str]:
    """The keys at ``parent_key`` in the config the overrides compose, without the rejected
    one (or, if the rest still fails, with only the group choices such as ``model=lenet``)."""
    kept = [o for o in overrides if _override_key(o) != rejected]
    choices = [o for o in kept if "." not in _override_key(o)]
    for attempt in (kept, choices, []):
        try:  # untranslated: a failure here must not look for valid keys again
            cfg = _hydra_compose(attempt, "train")
        except Exception:  # noqa: BLE001 - Hydra and OmegaConf raise many exception types
            continue
        node = OmegaConf.select(cfg, parent_key) if parent_key else without_hydra(cfg)
        return sorted(node.keys()) if isinstance(node, DictConfig) else []
    return []


def _override_key(override: str) -> str:
    return parse_overrides([override])[0].key
