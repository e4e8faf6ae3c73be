"""Finding an lm-eval task and turning it into configs that run offline and the same everywhere.

A task name (or group, or tag) becomes a list of plain task configs, loaded from their YAML files:

- user tasks come from ``include_path`` through a TaskManager that skips the built-ins (instant);
  a built-in task is looked up in its own directory first (gsm8k/ for gsm8k); the full built-in
  index (~15k names, 10-30 s) is built at most once per process, only for built-in groups, tags
  and names no directory matches;
- relative data paths are made absolute against the YAML file that names them (lm-eval and
  ``datasets`` would resolve them against the current directory);
- ``data_files`` points a built-in task at a local copy of its data: the config is rewritten to
  ``dataset_path: json`` with those files, and splits the copy lacks are dropped;
- a group or tag expands to its member tasks, group-level settings applied to each, so every
  document pairs within its own task (group aggregation is not needed for pairing).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_parity.sources.lmeval.models import error_line

Fail = Callable[[str, str], Exception]

_BUILTIN: list[Any] = []  # the built-in TaskManager, once per process
_FAMILY: dict[Path, Any] = {}  # TaskManagers over one built-in task directory each
MAX_DEPTH = 8  # groups of groups of tags (mmlu) are 3 deep; more is a cycle


def builtin_manager() -> Any:
    from lm_eval.tasks import TaskManager

    if not _BUILTIN:
        _BUILTIN.append(TaskManager())
    return _BUILTIN[0]


def _family_manager(name: str) -> Any | None:
    """A TaskManager over the built-in task's own directory (gsm8k/, arc/...), when it holds the
    task: a fraction of a second instead of indexing every built-in. Only for a single task: a
    group's or tag's members may live in other directories, so those need the full index."""
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import Kind

    root = Path(lm_eval.tasks.__file__).parent
    dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and name.startswith(d.name)),
        key=lambda d: -len(d.name),
    )
    for d in dirs[:2]:
        if d not in _FAMILY:
            _FAMILY[d] = TaskManager(include_path=str(d), include_defaults=False)
        entry = _FAMILY[d].task_index.get(name)
        if entry is not None and entry.kind in (Kind.TASK, Kind.PY_TASK):
            return _FAMILY[d]
    return None


def resolve_task(opts: Mapping[str, Any], fail: Fail) -> tuple[Any, list[dict[str, Any]]]:
    """The TaskManager that knows the task, and one config per task to run."""
    from lm_eval.tasks import TaskManager

    name = opts["task"]
    known: list[str] = []
    manager = None
    if opts.get("include_path"):
        manager = TaskManager(include_path=list(opts["include_path"]), include_defaults=False)
        known = manager.all_tasks
    if manager is None or name not in manager.task_index:
        manager = _family_manager(name) or builtin_manager()
        known = known + manager.all_tasks
    if name not in manager.task_index:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        raise fail(
            f"no lm-eval task named {name!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
            "name a built-in task, or set include_path to the directory of your task YAML",
        )
    try:
        cfgs = _expand(manager, name, {}, fail, 0)
    except ImportError as exc:  # a task's !function helpers import its extra packages
        missing = getattr(exc, "name", None) or "the missing package"
        raise fail(
            f"{name!r} needs {missing!r}: {error_line(exc)}",
            f"pip install {missing} (lm-eval's extras install what a task needs)",
        ) from exc
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise fail(f"cannot load {name!r}: {error_line(exc)}", "check the task's YAML") from exc
    if not cfgs:
        raise fail(f"{name!r} has no tasks", "name a task, or a group with member tasks")
    if opts.get("data_files"):
        if len(cfgs) != 1:
            raise fail(f"{name!r} is a group of {len(cfgs)} tasks", "data_files needs one task")
        _use_local_data(cfgs[0], opts, fail)
    if opts.get("samples") and len(cfgs) != 1:
        raise fail(f"{name!r} is a group", "samples (document ids) needs a single task")
    return manager, cfgs


def output_type(cfgs: list[dict[str, Any]], fail: Fail) -> str:
    kinds = sorted({str(c.get("output_type") or "generate_until") for c in cfgs})
    if len(kinds) != 1:
        raise fail(f"the tasks mix output types {kinds}", "gate the group's tasks one by one")
    return kinds[0]


def _expand(
    manager: Any, name: str, overrides: dict[str, Any], fail: Fail, depth: int
) -> list[dict[str, Any]]:
    from lm_eval.config.group import GroupConfig
    from lm_eval.tasks._index import Kind
    from lm_eval.tasks._yaml_loader import load_yaml

    if depth > MAX_DEPTH:
        raise fail(f"groups nest deeper than {MAX_DEPTH} at {name!r}", "check for a cycle")
    entry = manager.task_index.get(name)
    if entry is None:
        raise fail(f"a group names the unknown task {name!r}", "fix the group's task list")
    if entry.kind == Kind.TAG:
        return [
            c for t in sorted(entry.tags) for c in _expand(manager, t, overrides, fail, depth + 1)
        ]
    if entry.yaml_path is None:
        raise fail(f"{name!r} has no YAML config", "name a YAML-defined task")
    raw = load_yaml(entry.yaml_path, resolve_func=True)
    if entry.kind == Kind.GROUP:
        group_fields = set(GroupConfig.__dataclass_fields__)
        inherited = {**{k: v for k, v in raw.items() if k not in group_fields}, **overrides}
        out: list[dict[str, Any]] = []
        for member in raw.get("task") or []:
            if isinstance(member, dict) and isinstance(member.get("task"), str):
                extra = {k: v for k, v in member.items() if k != "task"}
                out += _expand(manager, member["task"], {**inherited, **extra}, fail, depth + 1)
            elif isinstance(member, str):
                out += _expand(manager, member, inherited, fail, depth + 1)
            else:
                raise fail(
                    f"group {name!r} defines a task inline", "name member tasks by their task name"
                )
        return out
    _absolute_data_paths(raw, Path(entry.yaml_path).parent)
    raw.update(overrides)
    for key in ("tag", "group"):
        raw.pop(key, None)
    return [raw]


def _use_local_data(cfg: dict[str, Any], opts: Mapping[str, Any], fail: Fail) -> None:
    """Point a task at local JSON/JSONL copies of its splits (the datasets "json" builder)."""
    data_files = {k: str(Path(v).resolve()) for k, v in opts["data_files"].items()}
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": data_files})
    needed = [cfg.get("test_split") or cfg.get("validation_split")]
    shots = opts.get("num_fewshot", cfg.get("num_fewshot")) or 0
    if shots and cfg.get("fewshot_split"):
        needed.append(cfg["fewshot_split"])
    missing = [s for s in needed if s and s not in data_files]
    if missing:
        raise fail(
            f"data_files has no {', '.join(repr(m) for m in missing)} split",
            f"{cfg['task']} reads split(s) {', '.join(str(s) for s in needed if s)}; add them"
            + (" or set num_fewshot: 0" if shots else ""),
        )
    # lm-eval opens every split the YAML names (a few-shot sampler even at 0 shots).
    for key in ("training_split", "validation_split", "fewshot_split"):
        if cfg.get(key) is not None and cfg[key] not in data_files:
            cfg[key] = None
    if not shots:
        cfg["num_fewshot"] = 0


def _absolute_data_paths(cfg: dict[str, Any], base: Path) -> None:
    """lm-eval resolves relative data paths against the current directory: use the YAML's."""
    kwargs = cfg.get("dataset_kwargs")
    if isinstance(kwargs, dict):
        files = kwargs.get("data_files")
        if isinstance(files, str):
            kwargs["data_files"] = _abs(files, base)
        elif isinstance(files, list):
            kwargs["data_files"] = [_abs(f, base) for f in files]
        elif isinstance(files, dict):
            kwargs["data_files"] = {
                k: [_abs(f, base) for f in v] if isinstance(v, list) else _abs(v, base)
                for k, v in files.items()
            }
        if isinstance(kwargs.get("data_dir"), str):
            kwargs["data_dir"] = _abs(kwargs["data_dir"], base)
    path = cfg.get("dataset_path")
    if isinstance(path, str) and not Path(path).is_absolute() and (base / path).exists():
        cfg["dataset_path"] = str((base / path).resolve())


def _abs(p: Any, base: Path) -> Any:
    if not isinstance(p, str) or "://" in p or Path(p).is_absolute():
        return p
    return str((base / p).resolve())
