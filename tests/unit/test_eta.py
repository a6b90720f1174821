"""The ETA simulation, on its own (pure)."""

from __future__ import annotations

from broker.core.eta import TaskInput, duration_stats, simulate

NOW = 1_000_000


def t(tid: str, *parents: str, dur: float | None = 10.0, state: str = "pending",
      rclass: str = "cpu", priority: int = 0, **kw: int) -> TaskInput:
    return TaskInput(id=tid, state=state, rclass=rclass, parents=list(parents),
                     priority=priority, duration_s=dur, **kw)


def finishes(est: object) -> dict[str, int | None]:
    return {e.id: e.finish_ms for e in est.tasks}  # type: ignore[attr-defined]


def test_chain_on_one_slot() -> None:
    est = simulate([t("a", state="ready"), t("b", "a"), t("c", "b")], {"cpu": 1}, NOW)
    assert finishes(est) == {"a": NOW + 10_000, "b": NOW + 20_000, "c": NOW + 30_000}
    assert est.eta_ms == NOW + 30_000 and est.unknown == 0


def test_fan_out_shares_slots() -> None:
    tasks = [t(f"m{i}", state="ready") for i in range(4)] + [t("sink", *[f"m{i}" for i in range(4)],
                                                              dur=1.0)]
    est = simulate(tasks, {"cpu": 2}, NOW)
    assert sorted(finishes(est)[f"m{i}"] for i in range(4)) == [NOW + 10_000] * 2 + [
        NOW + 20_000] * 2
    assert est.eta_ms == NOW + 21_000


def test_overrunning_task_is_never_in_the_past() -> None:
    est = simulate([t("slow", state="running", started_at_ms=NOW - 100_000), t("next", "slow")],
                   {"cpu": 1}, NOW)
    f = finishes(est)
    assert f["slow"] == NOW and f["next"] == NOW + 10_000
    later = simulate([t("slow", state="running", started_at_ms=NOW - 100_000),
                      t("next", "slow")], {"cpu": 1}, NOW + 5_000)
    assert later.eta_ms == NOW + 15_000  # grows with the clock while it overruns


def test_running_task_holds_its_slot() -> None:
    est = simulate([t("r", state="running", started_at_ms=NOW - 4_000), t("q", state="ready")],
                   {"cpu": 1}, NOW)
    assert finishes(est) == {"r": NOW + 6_000, "q": NOW + 16_000}


def test_unserved_class_has_no_estimate_below_it() -> None:
    est = simulate([t("g", state="ready", rclass="gpu"), t("after", "g"), t("x", state="ready")],
                   {"cpu": 1}, NOW)
    f = finishes(est)
    assert f["g"] is None and f["after"] is None and f["x"] == NOW + 10_000
    assert est.eta_ms is None and est.unserved_classes == ["gpu"]


def test_parked_task_has_no_estimate_below_it_and_takes_no_slot() -> None:
    est = simulate([t("big", state="ready", parked=True), t("after", "big"),
                    t("x", state="ready"), t("y", "x")], {"cpu": 1}, NOW)
    f = finishes(est)
    assert f["big"] is None and f["after"] is None
    assert f["x"] == NOW + 10_000 and f["y"] == NOW + 20_000  # the slot was never held
    assert est.eta_ms is None and est.parked == ["big"] and est.unserved_classes == []


def test_work_ahead_delays_the_start() -> None:
    est = simulate([t("a", state="ready")], {"cpu": 2}, NOW, ahead_s={"cpu": 40.0})
    assert est.tasks[0].start_ms == NOW + 20_000


def test_higher_priority_first_when_ready_together() -> None:
    est = simulate([t("low", state="ready"), t("high", state="ready", priority=5)],
                   {"cpu": 1}, NOW)
    assert finishes(est) == {"high": NOW + 10_000, "low": NOW + 20_000}


def test_finished_tasks_keep_their_times_and_unknown_durations_are_flagged() -> None:
    est = simulate([t("done", state="succeeded", started_at_ms=NOW - 50, finished_at_ms=NOW - 10),
                    t("mystery", "done", dur=None)], {"cpu": 1}, NOW)
    f = finishes(est)
    assert f["done"] == NOW - 10 and f["mystery"] == NOW
    assert est.unknown == 1 and not est.tasks[1].known


def test_duration_stats() -> None:
    assert duration_stats([]) is None
    assert duration_stats([3.0, 1.0, 2.0]) == (2.0, 3.0)
    med, p80 = duration_stats([float(i) for i in range(1, 11)])  # type: ignore[misc]
    assert med == 5.5 and p80 == 8.0
