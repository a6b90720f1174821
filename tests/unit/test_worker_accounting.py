"""Resource accounting on the worker: fit, strict FIFO admission, release, read count, flags."""

from __future__ import annotations

from collections import deque

import pytest

from broker.spec import TaskSpec
from broker.wire import Outcome, TaskMessage
from worker.cli import parse_settings
from worker.config import WorkerSettings
from worker.handle import TaskHandle
from worker.hostres import host_cores, host_gpus, host_memory_mb, meminfo_total_mb
from worker.inflight import InFlight
from worker.registry import RunnerStatus, runner_fields
from worker.resources import Amount, Pool, admit, format_cores, need_of, shortfall


def handle(node: str, **spec: object) -> TaskHandle:
    return TaskHandle(TaskMessage(
        msg_id=f"1-{node}", stream="q", run="r", node=node, attempt=1, tpl=node, batch="b",
        spec=TaskSpec(node=node, executor="shell", **spec),  # type: ignore[arg-type]
    ))


def nodes(handles: list[TaskHandle]) -> list[str]:
    return [h.msg.node for h in handles]


def test_needs_come_from_the_spec_with_defaults() -> None:
    assert need_of(TaskSpec(node="a", executor="shell")) == Amount(1000, 0, 0)
    assert need_of(TaskSpec(node="a", executor="shell", cores=0.5, memory_mb=512, gpus=2)) \
        == Amount(500, 512, 2)
    assert Amount.of(0.1, None, 0) + Amount.of(0.2, None, 0) == Amount.of(0.3, None, 0)
    assert Amount.of(0.0004, None, 0).millicores == 1  # rounded up, never to nothing
    assert [format_cores(m) for m in (4000, 500, 1250, 0, -5)] == ["4", "0.5", "1.25", "0", "0"]


def test_pool_fits_takes_and_releases() -> None:
    pool = Pool(Amount.of(2, 1024, 1))
    a, b = Amount.of(1.5, 512, 1), Amount.of(1, 512, 0)
    assert pool.fits(a) and pool.fits(b)
    pool.take(a)
    assert pool.free == Amount.of(0.5, 512, 0)
    assert not pool.fits(b)  # cores short
    assert pool.fits(Amount.of(0.5, 512, 0))  # exactly what is left
    pool.release(a)
    assert pool.free == pool.total and pool.fits(b)


@pytest.mark.parametrize(("need", "short_of"), [
    (Amount.of(1, 2048, 0), "memory"),
    (Amount.of(1, 0, 2), "gpus"),
    (Amount.of(4, 0, 0), "cores"),
])
def test_each_resource_limits_on_its_own(need: Amount, short_of: str) -> None:
    pool = Pool(Amount.of(4, 4096, 2))
    pool.take(Amount.of(1, 3072, 1))  # leaves 3 cores, 1024 MiB, 1 GPU
    assert not pool.fits(need), short_of
    pool.release(Amount.of(1, 3072, 1))
    assert pool.fits(need)


def test_admission_is_strict_fifo_head_of_line() -> None:
    pool = Pool(Amount.of(4, 8192, 1))
    need = {"a": Amount.of(2, 0, 0), "big": Amount.of(4, 0, 0), "small": Amount.of(1, 0, 0)}
    line = deque(["a", "big", "small"])
    assert admit(pool, line, need.__getitem__) == ["a"]
    assert list(line) == ["big", "small"]  # small fits (2 free) but waits behind big
    assert admit(pool, line, need.__getitem__) == []
    pool.release(need["a"])
    assert admit(pool, line, need.__getitem__) == ["big"]
    pool.release(need["big"])
    assert admit(pool, line, need.__getitem__) == ["small"] and not line


def test_gpus_and_memory_are_admitted_like_cores() -> None:
    pool = Pool(Amount.of(8, 4096, 2))
    need = {"g1": Amount.of(1, 0, 1), "g2": Amount.of(1, 0, 2), "m": Amount.of(1, 4096, 0)}
    line = deque(["g1", "g2", "m"])
    assert admit(pool, line, need.__getitem__) == ["g1"]  # g2 needs both GPUs
    pool.release(need["g1"])
    assert admit(pool, line, need.__getitem__) == ["g2", "m"]
    assert pool.free == Amount.of(6, 0, 0)


def test_shortfall_names_the_missing_capability() -> None:
    total = Amount.of(4, 16384, 0)
    assert shortfall(Amount.of(4, 16384, 0), total, "w1") is None
    assert shortfall(Amount.of(8, 0, 0), total, "w1") == "needs 8 cores; runner w1 offers 4"
    assert shortfall(Amount.of(1, 65536, 0), total, "w1") == \
        "needs 64 GiB memory; runner w1 offers 16 GiB"
    assert shortfall(Amount.of(0.5, 100000, 2), total, "w1") == \
        "needs 100000 MiB memory, 2 GPUs; runner w1 offers 16 GiB memory, 0 GPUs"
    assert shortfall(Amount.of(1, 0, 1), total, "w1") == "needs 1 GPUs; runner w1 offers 0"


def test_inflight_waits_admits_releases_and_withdraws() -> None:
    fl = InFlight(4, Amount.of(2, 4096, 0))
    assert fl.read_count() == 4  # nothing read yet: every free slot
    hs = [handle("a"), handle("b", cores=2), handle("c")]
    assert fl.hold(hs, "w1") == []
    assert nodes(fl.admit()) == ["a"]
    assert (fl.running(), fl.waiting(), len(fl)) == (1, 2, 3)
    assert fl.read_count() == 0 and not fl.readable()  # nothing is read while a task waits
    assert {h.msg.node for h in fl.handles()} == {"a", "b", "c"}  # leases renewed for all
    assert nodes(fl.find("r", "c")) == ["c"]
    assert sorted(fl.ids_by_stream()["q"]) == ["1-a", "1-b", "1-c"]
    fl.discard([hs[0]])
    assert fl.pool.free == fl.pool.total
    assert nodes(fl.admit()) == ["b"]  # the head first; c fits nothing now
    assert fl.pool.free == Amount.of(0, 4096, 0)
    assert nodes(fl.withdraw([hs[2], hs[1]])) == ["c"]  # only waiting ones are withdrawn
    assert fl.waiting() == 0 and len(fl) == 2  # still held until reported
    fl.discard([hs[1], hs[2]])
    assert len(fl) == 0 and fl.pool.free == fl.pool.total
    assert fl.read_count() == 2


def test_inflight_read_count_reads_one_ahead_and_never_past_the_slots() -> None:
    fl = InFlight(3, Amount.of(1.5, 4096, 0))
    assert fl.read_count() == 3  # nothing read yet: every free slot
    fl.hold([handle("a")], "w1")
    fl.admit()
    assert fl.read_count() == 1  # 0.5 free cores: still one, to start the next at once
    fl.hold([handle("b"), handle("c")], "w1")
    assert fl.free() == 0 and fl.read_count() == 0


def remote(node: str, executor: str = "slurm", **spec: object) -> TaskHandle:
    return TaskHandle(TaskMessage(
        msg_id=f"1-{node}", stream="q", run="r", node=node, attempt=1, tpl=node, batch="b",
        spec=TaskSpec(node=node, executor=executor, **spec),  # type: ignore[arg-type]
    ))


def test_remote_tasks_take_a_slot_but_no_local_resources() -> None:
    for ex in ("slurm", "ssh", "aws_batch", "noop"):
        assert need_of(TaskSpec(node="a", executor=ex, cores=64, memory_mb=1 << 20, gpus=8)) \
            == Amount(0, 0, 0)
    fl = InFlight(100, Amount.of(2, 1024, 0))  # a SLURM runner on a small login node
    assert fl.read_count() == 100  # nothing read yet: every free slot (a whole array)
    hs = [remote(f"s{i}", cores=32, memory_mb=65536) for i in range(2)]
    assert fl.hold(hs, "w1") == []  # not too big: the cluster runs them, not this host
    assert nodes(fl.admit()) == ["s0", "s1"]
    assert fl.pool.free == fl.pool.total
    assert fl.read_count() == 98  # the last read needed no cores here: read every free slot
    fl.hold([remote("s2"), handle("local")], "w1")
    fl.admit()
    assert fl.read_count() == 1  # a local task came along: back to the core cap (1 core free)


def test_inflight_rejects_what_can_never_fit() -> None:
    fl = InFlight(4, Amount.of(4, 1024, 0))
    hs = [handle("big", cores=8), handle("ok"), handle("gpu", gpus=1)]
    never = fl.hold(hs, "w1")
    assert nodes(never) == ["big", "gpu"]
    assert [(h.stop_outcome, h.stop_reason) for h in never] == [
        (Outcome.HANDED_BACK, "needs 8 cores; runner w1 offers 4"),
        (Outcome.HANDED_BACK, "needs 1 GPUs; runner w1 offers 0"),
    ]
    assert nodes(fl.admit()) == ["ok"] and fl.waiting() == 0
    assert len(fl) == 3  # the rejected stay held until their hand-back is reported


def test_inflight_stopped_waiting_tasks_leave_the_line() -> None:
    fl = InFlight(4, Amount.of(1, 1024, 0))
    hs = [handle("a"), handle("b"), handle("c")]
    fl.hold(hs, "w1")
    fl.admit()
    hs[1].request_stop(Outcome.LOST, "fenced")
    assert nodes(fl.withdraw_stopped()) == ["b"]
    assert nodes(fl.withdraw_all()) == ["c"] and fl.waiting() == 0


def test_reattached_tasks_count_at_once() -> None:
    fl = InFlight(2, Amount.of(2, 1024, 0))
    fl.add([handle("s", cores=2)])
    assert fl.running() == 1 and fl.pool.free.millicores == 0
    fl.discard(fl.handles())
    assert fl.pool.free == fl.pool.total


def test_settings_resources_default_to_the_host_and_are_validated() -> None:
    s = WorkerSettings(redis_url="redis://x")
    assert s.cores == host_cores() >= 1 and s.memory_mb == host_memory_mb() >= 1
    assert s.gpus == host_gpus() >= 0
    for bad in ({"cores": 0}, {"cores": -1}, {"memory_mb": 0}, {"gpus": -1}):
        with pytest.raises(ValueError):
            WorkerSettings(redis_url="redis://x", **bad)  # type: ignore[arg-type]
    assert meminfo_total_mb("MemFree: 1 kB\nMemTotal:  24684092 kB\n") == 24105
    assert meminfo_total_mb("nothing") is None


def test_cli_resource_flags() -> None:
    env = {"DAGBROKER_REDIS_URL": "redis://env:1/0"}
    s, _ = parse_settings(["--cores", "0.5", "--memory", "4G", "--gpus", "2"], env)
    assert (s.cores, s.memory_mb, s.gpus) == (0.5, 4096, 2)
    assert parse_settings(["--memory", "512M"], env)[0].memory_mb == 512
    assert parse_settings(["--memory", "3000"], env)[0].memory_mb == 3000
    d, _ = parse_settings([], env)
    assert (d.cores, d.memory_mb, d.gpus) == (host_cores(), host_memory_mb(), host_gpus())
    for bad in (["--memory", "lots"], ["--memory", "0"], ["--cores", "0"], ["--gpus", "-1"]):
        with pytest.raises(SystemExit):
            parse_settings(bad, env)


def test_runner_hash_carries_totals_and_free() -> None:
    s = WorkerSettings(redis_url="redis://x", cores=2.5, memory_mb=4096, gpus=1)
    f = runner_fields(s, ["shell"], RunnerStatus())
    assert {k: f[k] for k in ("cores", "memory_mb", "gpus", "free_cores", "free_memory_mb",
                              "free_gpus")} == {"cores": "2.5", "memory_mb": "4096", "gpus": "1",
                                                "free_cores": "2.5", "free_memory_mb": "4096",
                                                "free_gpus": "1"}
    busy = runner_fields(s, ["shell"], RunnerStatus(busy=1, free=Amount.of(0.5, 1024, 0)))
    assert (busy["busy"], busy["free_cores"], busy["free_memory_mb"], busy["free_gpus"]) == \
        ("1", "0.5", "1024", "0")
