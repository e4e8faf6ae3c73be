"""How an item becomes a request: the same question, in the same words, for every stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_parity.contract.spec import EndpointSpec, TaskSpec, thaw
from pytest_parity.runner.taskrun import TaskRunError
from pytest_parity.sources.item import Item

if TYPE_CHECKING:
    from pytest_parity.endpoints.http import Request

__all__ = ["build_request_parts", "request_for"]


def build_request_parts(task: TaskSpec, item: Item, api: str) -> dict[str, Any]:
    """The messages or prompt one item sends and its parameters (the same for both stacks):
    the task's params, then the item's own (captured traffic), then its tools."""
    params: dict[str, Any] = thaw(task.params)
    if item.params:
        params.update(thaw(item.params))
    if item.tools:
        params["tools"] = [thaw(t) for t in item.tools]
    if item.messages is not None:
        if api == "completions":
            raise TaskRunError(
                f"task {task.name}: item {item.id} gives chat messages but the endpoint uses the"
                " completions API (hint: set api: chat on both endpoints, or give prompt strings)"
            )
        msgs = [thaw(m) for m in item.messages]
        if task.system and not any(m.get("role") == "system" for m in msgs):
            msgs.insert(0, {"role": "system", "content": task.system})
        return {"messages": tuple(msgs), "params": params}
    assert item.prompt is not None
    text = task.template.replace("{prompt}", item.prompt) if task.template else item.prompt
    if api == "completions":
        if task.system:
            text = f"{task.system}\n\n{text}"
        return {"prompt": text, "params": params}
    msgs = [{"role": "user", "content": text}]
    if task.system:
        msgs.insert(0, {"role": "system", "content": task.system})
    return {"messages": tuple(msgs), "params": params}


def request_for(task: TaskSpec, item: Item, spec: EndpointSpec, repeat: int = 0) -> Request:
    """The request one stack is sent for ``item`` (``repeat`` > 0: a further sample of it)."""
    from pytest_parity.endpoints.http import Request

    parts = build_request_parts(task, item, spec.api)
    params = parts["params"]
    seed = params.get("seed", spec.params.get("seed"))
    if repeat and isinstance(seed, int):
        # Repeats must sample anew: the same seed makes a seeded server repeat itself.
        params = {**params, "seed": seed + repeat}
    # Task-qualified: recordings and caches hold several tasks whose item ids may clash.
    return Request(
        item_id=f"{task.name}/{item.id}",
        repeat=repeat,
        template=task.template,
        messages=parts.get("messages"),
        prompt=parts.get("prompt"),
        params=params,
    )
