"""``source: tool-use``: episodes driven turn by turn over real HTTP, scored on success, with the
facts of each trajectory feeding the failure categories; bad schemas and raising tools."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from servers import FakeServer, Reply

from pytest_parity import load_contract
from pytest_parity.contract.spec import ContractError
from pytest_parity.endpoints.cache import ResponseCache
from pytest_parity.endpoints.recording import Recorder
from pytest_parity.runner import Runner, TaskRunError
from pytest_parity.scoring.categories import trajectory_category
from pytest_parity.sources.base import SourceError
from pytest_parity.sources.tooluse.episodes import load_episodes, schema_error
from pytest_parity.verdict import evaluate

SEARCH = {"type": "function", "function": {"name": "search_flights", "description": "Find flights",
          "parameters": {"type": "object", "properties": {"origin": {"type": "string"},
                         "destination": {"type": "string"}}, "required": ["origin", "destination"]}}}  # fmt: skip
BOOK = {"type": "function", "function": {"name": "book", "parameters": {"type": "object",
        "properties": {"number": {"type": "string"}}, "required": ["number"]}}}  # fmt: skip
CANCEL = {"type": "function", "function": {"name": "cancel", "parameters": {"type": "object",
          "properties": {"number": {"type": "string"}}, "required": ["number"]}}}  # fmt: skip
ROUTES = [("Paris", "Rome", "AZ 123"), ("Oslo", "Rome", "SK 7")]


def episode(k: int, **over: Any) -> dict[str, Any]:
    origin, dest, number = ROUTES[k % 2]
    return {
        "id": f"trip-{k}",
        "goal": f"Request #{k}: book the cheapest flight from {origin} to {dest} and tell me its number.",
        "tools": [SEARCH, BOOK, CANCEL],
        "environment": {"python": "tool_envs:Travel"},
        "expect": {"answer": number, "state": {"booked": [number]},
                   "calls": ["search_flights", "book"]},
        **over,
    }  # fmt: skip


def write_items(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "trips.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def contract(tmp_path: Path, old: str, new: str, kind: str = "openai", opts: str = "{}",
             extra: str = "") -> Path:  # fmt: skip
    base = old if kind == "openai" else old.removesuffix("/v1")
    cand = new if kind == "openai" else new.removesuffix("/v1")
    path = tmp_path / "contract.yaml"
    path.write_text(
        f"baseline: {{kind: {kind}, base_url: '{base}', model: m}}\n"
        f"candidate: {{kind: {kind}, base_url: '{cand}', model: m}}\n"
        f"tasks:\n  - {{name: trips, source: tool-use, path: trips.jsonl, tool_use: {opts}{extra}}}\n"
    )
    return path


def turns(body: dict[str, Any]) -> tuple[str, str | None, Any]:
    """(goal, name of the last tool called, its result) from an OpenAI or Anthropic body."""
    msgs = body["messages"]
    goal = next(m["content"] for m in msgs if m["role"] == "user")
    if isinstance(goal, list):
        goal = goal[0].get("text", "")
    last = msgs[-1]
    if last["role"] == "tool":
        call = next(m for m in reversed(msgs) if m["role"] == "assistant")["tool_calls"][-1]
        return goal, call["function"]["name"], json.loads(last["content"])
    if last["role"] == "user" and isinstance(last["content"], list):  # Anthropic tool_result
        use = [b for b in msgs[-2]["content"] if b["type"] == "tool_use"][-1]
        return goal, use["name"], json.loads(last["content"][-1]["content"])
    return goal, None, None


def agent(wrong_every: int = 0, bad_args: bool = False, loop: bool = False) -> Any:
    """A scripted model: search, book the cheapest, say its number. ``wrong_every`` k: on
    requests #0, #k, #2k... it cancels on step 2 instead of booking."""

    def answer(body: dict[str, Any]) -> Reply:
        goal, called, result = turns(body)
        k = int(re.search(r"#(\d+)", goal).group(1))  # type: ignore[union-attr]
        origin, dest = re.search(r"from (\w+) to (\w+)", goal).groups()  # type: ignore[union-attr]
        if called is None or bad_args or (loop and called == "search_flights"):
            args: dict[str, Any] = {"origin": origin, "destination": dest}
            if bad_args:
                args = {"origin": 5}
            return Reply(
                "", "tool_calls", [{"name": "search_flights", "arguments": json.dumps(args)}]
            )
        if called == "search_flights":
            if not result:
                return Reply("I could not find a flight.")
            cheapest = min(result, key=lambda f: f["price"])["number"]
            tool = "cancel" if wrong_every and k % wrong_every == 0 else "book"
            return Reply(
                "", "tool_calls", [{"name": tool, "arguments": json.dumps({"number": cheapest})}]
            )
        if called == "book":
            return Reply(f"Booked flight {result['number']}.")
        return Reply("Done.")

    return answer


def run(path: Path, **kw: Any) -> Any:
    c = load_contract(path)
    return c, Runner(c, **kw).run(c.tasks[0])


def test_both_stacks_complete_the_task_and_the_trajectory_is_recorded(tmp_path: Path) -> None:
    write_items(tmp_path, [episode(k) for k in range(4)])
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent()) as new:
        _, tr = run(contract(tmp_path, old.base_url, new.base_url))
        # 3 turns per episode: search, book, final answer
        assert len(new.received) == 12
        second = next(b for b in new.received if b["messages"][-1]["role"] == "tool")
        assert second["tools"][0]["function"]["name"] == "search_flights"
        call_id = second["messages"][-2]["tool_calls"][0]["id"]
        assert second["messages"][-1] == {"role": "tool", "tool_call_id": call_id,
                                          "content": json.dumps(json.loads(second["messages"][-1]["content"]))}  # fmt: skip
    rec = tr.records[0]["candidate"]
    assert rec["score"] == 1.0 and rec["category"] == "correct"
    assert rec["facts"]["steps"] == 3 and rec["facts"]["calls"] == 2
    assert rec["facts"]["tool_names"] == ["search_flights", "book"]
    assert rec["facts"]["invalid_calls"] == 0 and not rec["facts"]["hit_step_limit"]
    roles = [t["role"] for t in rec["trajectory"]]
    assert roles == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert "AZ 123" in rec["trajectory"][1]["result"]
    assert tr.data_digest is not None


def test_a_wrong_tool_on_step_two_one_time_in_five_fails_wrong_tool_and_nothing_else(
    tmp_path: Path,
) -> None:
    write_items(tmp_path, [episode(k) for k in range(50)])
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent(wrong_every=5)) as new:
        c, tr = run(contract(tmp_path, old.base_url, new.base_url))
    result = evaluate(c.tasks[0], tr, 0, 10)
    cats = [r["candidate"]["category"] for r in tr.records]
    assert cats.count("wrong_tool") == 10 and cats.count("correct") == 40
    assert {r["baseline"]["category"] for r in tr.records} == {"correct"}
    wrong = next(r["candidate"] for r in tr.records if r["candidate"]["category"] == "wrong_tool")
    assert wrong["facts"]["off_plan_step"] == 2
    fm = result["checks"]["failure_modes"]
    assert fm["status"] == "FAIL"
    assert fm["numbers"]["failed"] == ["wrong_tool"]
    assert result["checks"]["delta"]["status"] == "FAIL"  # 20% of the episodes fail


def test_invalid_arguments_loops_and_the_step_limit_get_their_categories(tmp_path: Path) -> None:
    write_items(tmp_path, [episode(k) for k in range(2)])
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent(bad_args=True)) as new:
        _, tr = run(contract(tmp_path, old.base_url, new.base_url, opts="{max_steps: 3}"))
    facts = tr.records[0]["candidate"]["facts"]
    assert facts["invalid_arguments"] == 3 and facts["calls"] == 3
    # every call was refused, none repeated a valid call: the step limit, caused by bad arguments
    assert tr.records[0]["candidate"]["category"] == "step_limit"
    bad = next(b for b in new.received if b["messages"][-1]["role"] == "tool")["messages"][-1][
        "content"
    ]
    assert "search_flights: arguments: missing required 'destination'" in bad
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent(loop=True)) as new:
        _, tr = run(contract(tmp_path, old.base_url, new.base_url, opts="{max_steps: 4}"))
    side = tr.records[0]["candidate"]
    assert side["facts"]["max_repeats"] == 4 and side["facts"]["hit_step_limit"]
    assert side["category"] == "loop"


def test_category_order_reads_the_facts() -> None:
    base = {"episode": True, "max_repeats": 1, "hit_step_limit": False, "unknown_tools": 0,
            "off_plan_step": None, "invalid_arguments": 0, "no_final_answer": False}  # fmt: skip
    assert trajectory_category(base) is None
    assert trajectory_category({**base, "invalid_arguments": 1}) == "invalid_arguments"
    assert trajectory_category({**base, "invalid_arguments": 1, "unknown_tools": 1}) == "wrong_tool"
    assert trajectory_category({**base, "no_final_answer": True}) == "no_final_answer"
    assert trajectory_category({**base, "hit_step_limit": True, "max_repeats": 3}) == "loop"


def test_parallel_calls_in_one_turn_and_a_recorded_table(tmp_path: Path) -> None:
    weather = {"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip
    table = [{"call": {"name": "weather", "arguments": {"city": c}}, "result": {"sky": s}}
             for c, s in (("Oslo", "snow"), ("Rome", "sun"))]  # fmt: skip
    write_items(tmp_path, [{"id": "w", "goal": "Weather in Oslo and Rome?", "tools": [weather],
                            "environment": {"table": table}, "expect": {"answer": "snow"}}])  # fmt: skip

    def two_at_once(body: dict[str, Any]) -> Reply:
        if body["messages"][-1]["role"] != "tool":
            calls = [{"name": "weather", "arguments": json.dumps({"city": c})} for c in ("Oslo", "Rome")]  # fmt: skip
            return Reply("", "tool_calls", calls)
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        return Reply(" and ".join(results))

    with FakeServer(answer=two_at_once) as srv:
        _, tr = run(contract(tmp_path, srv.base_url, srv.base_url))
        second = next(b for b in srv.received if b["messages"][-1]["role"] == "tool")["messages"]
    assert [m["tool_call_id"] for m in second if m["role"] == "tool"] == ["c0", "c1"]
    side = tr.records[0]["candidate"]
    assert side["score"] == 1.0 and side["facts"]["calls"] == 2
    assert "snow" in side["text"] and "sun" in side["text"]


def test_anthropic_tool_use_blocks_drive_the_same_episode(tmp_path: Path) -> None:
    write_items(tmp_path, [episode(0)])
    with FakeServer(answer=agent()) as srv:
        _, tr = run(contract(tmp_path, srv.base_url, srv.base_url, kind="anthropic"))
        second = next(b for b in srv.received if isinstance(b["messages"][-1]["content"], list))
    assert second["tools"][0]["name"] == "search_flights" and "input_schema" in second["tools"][0]
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    assert second["messages"][-1]["content"][0]["tool_use_id"] == "tu_1"
    assert tr.records[0]["candidate"]["score"] == 1.0


def test_a_tool_that_raises_is_an_environment_error_not_a_model_failure(tmp_path: Path) -> None:
    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"key": {"type": "string"}}}}}  # fmt: skip
    rows = [episode(k) for k in range(60)]
    rows.append({"id": "broken", "goal": "Request #1: look up from A to B.", "tools": [lookup],
                 "environment": {"python": "tool_envs:Broken"}, "expect": {"answer": "x"}})  # fmt: skip
    write_items(tmp_path, rows)

    def ask_lookup(body: dict[str, Any]) -> Reply:
        if body["tools"][0]["function"]["name"] == "lookup":
            return Reply("", "tool_calls", [{"name": "lookup", "arguments": '{"key": "k"}'}])
        return agent()(body)

    with FakeServer(answer=ask_lookup) as old, FakeServer(answer=ask_lookup) as new:
        c, tr = run(contract(tmp_path, old.base_url, new.base_url))
    rec = next(r for r in tr.records if r["id"] == "broken")
    for role in ("baseline", "candidate"):
        side = rec[role]
        assert side["category"] == "environment_error" and side["direction"] == "X"
        assert side["score"] is None
        assert "tool lookup (tool_envs:Broken) raised RuntimeError" in side["error"]
    result = evaluate(c.tasks[0], tr, 0, 10)
    assert result["checks"]["failure_modes"]["status"] == "PASS"
    assert result["n_paired"] == 60


def test_every_turn_goes_through_the_response_cache(tmp_path: Path) -> None:
    write_items(tmp_path, [episode(k) for k in range(3)])
    cache_dir = tmp_path / "cache"
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent()) as new:
        _, first = run(
            contract(tmp_path, old.base_url, new.base_url), cache=ResponseCache(cache_dir)
        )
        sent = len(new.received)
        _, again = run(
            contract(tmp_path, old.base_url, new.base_url), cache=ResponseCache(cache_dir)
        )
        assert len(new.received) == sent == 9
    assert [r["candidate"]["trajectory"] for r in again.records] == [
        r["candidate"]["trajectory"] for r in first.records
    ]
    assert again.records[0]["candidate"]["cached"]


# ----------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "strng"}, "parameters.type: 'strng' is not a JSON type"),
        ({"type": "object", "properties": {"a": {"type": "int"}}}, "properties.a.type: 'int'"),
        ({"type": "object", "properties": []}, "properties: expected an object of schemas"),
        ({"type": "object", "required": "a"}, "required: expected a list"),
        (
            {"type": "object", "properties": {"a": {"enum": []}}},
            "properties.a.enum: expected a non-empty list",
        ),
        ({"type": "array"}, "a tool's parameters must be an object schema"),
        (
            {"type": "object", "properties": {"a": {"pattern": "("}}},
            "pattern: not a regular expression",
        ),
    ],
)
def test_a_schema_that_is_not_json_schema_stops_the_task_naming_the_line(
    tmp_path: Path, schema: dict[str, Any], message: str
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    path = write_items(tmp_path, [episode(0), episode(1, tools=[SEARCH, BOOK, tool])])
    with pytest.raises(SourceError) as err:
        load_episodes(path)
    assert str(err.value).startswith(f"{path}:2: tools[2].")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_schema_is_an_error_of_the_task_before_any_request(tmp_path: Path) -> None:
    bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "strng"}}}
    write_items(tmp_path, [episode(0, tools=[bad])])
    with FakeServer(answer=agent()) as srv:
        with pytest.raises(TaskRunError, match="is not a JSON type"):
            run(contract(tmp_path, srv.base_url, srv.base_url))
        assert srv.received == []


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"expect": {}}, "expect: give answer, state or check"),
        (
            {"expect": {"answer": "x", "calls": ["fly"]}},
            "expect.calls: 'fly' is not one of the tools",
        ),
        ({"environment": {"python": "no_such_module:X"}}, "environment.python: cannot import"),
        ({"environment": {}}, "environment: give python"),
        ({"environment": {"table": [{"call": {"name": "f"}}]}}, "environment.table[0]: expected"),
        ({"tools": [{"function": {"name": "has space"}}]}, "tools[0].name: expected 1-64"),
        ({"steps": 3}, "unknown key 'steps'"),
    ],
)
def test_bad_items_are_one_line_naming_the_file_and_line(
    tmp_path: Path, over: dict[str, Any], message: str
) -> None:
    path = write_items(tmp_path, [episode(0, **over)])
    with pytest.raises(SourceError) as err:
        load_episodes(path)
    assert str(err.value).startswith(f"{path}:1: ") and message in str(err.value)


def test_schema_error_accepts_what_tools_really_use() -> None:
    assert schema_error(SEARCH["function"]["parameters"], "p") is None
    nested = {"type": "object", "properties": {"legs": {"type": "array", "items": {
        "type": "object", "properties": {"to": {"type": ["string", "null"]}},
        "additionalProperties": False}}, "when": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]}}}  # fmt: skip
    assert schema_error(nested, "p") is None


def test_options_and_the_scorer_are_contract_errors(tmp_path: Path) -> None:
    write_items(tmp_path, [episode(0)])
    with pytest.raises(ContractError, match=re.escape("tasks[0].tool_use.steps: unknown key")):
        load_contract(contract(tmp_path, "http://x/v1", "http://x/v1", opts="{steps: 3}"))
    with pytest.raises(ContractError, match="the tool-use source scores its own items"):
        load_contract(contract(tmp_path, "http://x/v1", "http://x/v1", extra=", scorer: exact"))
    (tmp_path / "trips.jsonl").unlink()
    with pytest.raises(ContractError, match=re.escape("tasks[0].path: file not found")):
        load_contract(contract(tmp_path, "http://x/v1", "http://x/v1"))


def test_trajectories_reach_the_disagreement_cards_escaped(tmp_path: Path) -> None:
    from pytest_parity.report.html.task import disagreements_html

    write_items(tmp_path, [episode(k) for k in range(10)])

    def sneaky(body: dict[str, Any]) -> Reply:
        goal, called, _ = turns(body)
        if called is None and "#0:" in goal:
            return Reply("<script>alert(1)</script>", "tool_calls",
                         [{"name": "<img src=x>", "arguments": "{}"}])  # fmt: skip
        return agent()(body)

    with FakeServer(answer=agent()) as old, FakeServer(answer=sneaky) as new:
        c, tr = run(contract(tmp_path, old.base_url, new.base_url, opts="{max_steps: 3}"))
    result = evaluate(c.tasks[0], tr, 0, 10)
    card = next(d for d in result["disagreements"] if d["id"] == "trip-0")
    assert card["candidate_trajectory"][0]["tool_calls"][0]["name"] == "<img src=x>"
    assert card["baseline_trajectory"][-1]["role"] == "assistant"
    html = disagreements_html(result)
    assert "<script>" not in html and "<img src=x>" not in html
    assert "&lt;img src=x&gt;" in html and "1 tool search_flights" in html
    assert tr.records[0]["candidate"]["facts"]["unknown_tools"] == 1


def test_the_gate_as_a_user_runs_it_with_the_report(pytester: pytest.Pytester) -> None:
    write_items(pytester.path, [episode(k) for k in range(50)])
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent(wrong_every=5)) as new:
        path = contract(pytester.path, old.base_url, new.base_url)
        result = pytester.runpytest(f"--parity-contract={path}", "--parity-no-cache",
                                    "--parity-json=out.json", "--parity-report=out.html")  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 2 and outcomes.get("passed") == 1, result.stdout.str()
    report = json.loads((pytester.path / "out.json").read_text())
    checks = report["tasks"][0]["checks"]
    assert checks["failure_modes"]["numbers"]["failed"] == ["wrong_tool"]
    assert checks["error_direction"]["status"] == "PASS"
    html = (pytester.path / "out.html").read_text()
    assert "trajectory" in html and "calls cancel" in html


# ----------------------------------------------------------------------------------------------
# the rest of the endpoint layer: every turn recorded and replayed, the A/A pass (issue 16 item 3)


def test_every_turn_is_recorded_and_a_replayed_baseline_drives_the_same_episodes(
    tmp_path: Path,
) -> None:
    write_items(tmp_path, [episode(k) for k in range(4)])
    recording = tmp_path / "baseline.jsonl"
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent(wrong_every=2)) as new:
        with Recorder(recording, contract_digest="d", truncate=True) as rec:
            _, live = run(contract(tmp_path, old.base_url, new.base_url), recorder=rec)
        asked = len(old.received)
        assert asked == 12 and rec.written == 12  # 3 turns an episode, each one recorded
        path = tmp_path / "replayed.yaml"
        path.write_text(
            f"baseline: {{kind: replay, recording: '{recording}', model: m}}\n"
            f"candidate: {{kind: openai, base_url: '{new.base_url}', model: m}}\n"
            "tasks:\n  - {name: trips, source: tool-use, path: trips.jsonl, tool_use: {}}\n"
        )
        _, replayed = run(path)
        assert len(old.received) == asked  # the old stack was not asked again
    for a, b in zip(live.records, replayed.records, strict=True):
        assert a["baseline"]["trajectory"] == b["baseline"]["trajectory"]
        assert a["baseline"]["score"] == b["baseline"]["score"] == 1.0
        assert a["candidate"]["category"] == b["candidate"]["category"]
    assert [r["candidate"]["category"] for r in replayed.records].count("wrong_tool") == 2


def test_the_aa_pass_drives_its_own_episodes(tmp_path: Path) -> None:
    write_items(tmp_path, [episode(k) for k in range(3)])
    with FakeServer(answer=agent()) as old, FakeServer(answer=agent()) as new:
        c, _ = run(contract(tmp_path, old.base_url, new.base_url))
        before = len(old.received)
        _, tr = run(contract(tmp_path, old.base_url, new.base_url), aa=c.baseline)
        assert len(old.received) - before == 2 * 9  # the baseline's episodes, then the A/A's
    assert tr.aa_scores is not None and len(tr.aa_scores) == 3
    assert all(pair == (1.0, 1.0) for pair in tr.aa_scores.values())
