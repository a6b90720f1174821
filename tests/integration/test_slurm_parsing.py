"""The SLURM executor's pure parts: sbatch options, the batch script, SLURM's answers, verdicts.

No cluster needed: the outputs below are what SLURM 22.05 printed on the test cluster; the
generated batch script is run by the real /bin/sh, as slurmd would run it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from broker.spec import TaskSpec
from broker.wire import Outcome
from worker.cli import parse_settings
from worker.executors.slurm import slurm_config
from worker.executors.slurm_script import (
    Element,
    SlurmConfig,
    batch_script,
    job_options,
    parse_job_id,
    sbatch_argv,
)
from worker.executors.slurm_state import (
    REST,
    ElementState,
    element_state,
    parse_indices,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
    verdict,
)

SCONTROL = """\
JobId=7 ArrayJobId=7 ArrayTaskId=0-4 UserId=root(0) JobState=CANCELLED Reason=None ExitCode=0:0
JobId=9 ArrayJobId=7 ArrayTaskId=5 JobState=FAILED Reason=NonZeroExitCode ExitCode=2:0
JobId=10 ArrayJobId=7 ArrayTaskId=6 JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125
JobId=11 ArrayJobId=8 ArrayTaskId=0 JobName=other JobState=COMPLETED Reason=None ExitCode=0:0
"""


def test_array_indices() -> None:
    assert parse_indices("3") == [3]
    assert parse_indices("0-4") == [0, 1, 2, 3, 4]
    assert parse_indices("1,3,5-7") == [1, 3, 5, 6, 7]
    assert parse_indices("[0-2%1]") == [0, 1, 2]
    assert parse_indices("N/A") == []


def test_squeue_scontrol_and_sacct_outputs() -> None:
    sq = parse_squeue("7_0|RUNNING|None\n7_[2-3]|PENDING|Priority\n7|PENDING|None\n8_1|X|y\n", "7")
    assert sq == {0: ElementState("RUNNING"), 2: ElementState("PENDING", "Priority"),
                  3: ElementState("PENDING", "Priority"), REST: ElementState("PENDING")}
    assert sq[0].started and not sq[0].final and not sq[2].started
    sc = parse_scontrol(SCONTROL, "7")
    assert set(sc) == {0, 1, 2, 3, 4, 5, 6}
    assert sc[4] == ElementState("CANCELLED", "", 0, 0)
    assert sc[5] == ElementState("FAILED", "NonZeroExitCode", 2, 0)
    assert sc[6] == ElementState("OUT_OF_MEMORY", "OutOfMemory", 0, 125)
    # a one-element array cancelled while pending: only the array's own record is left
    collapsed = "JobId=5 ArrayJobId=5 ArrayTaskId=4294967294 JobState=CANCELLED ExitCode=0:0"
    assert element_state(parse_scontrol(collapsed, "5"), 0) == ElementState("CANCELLED", "", 0)
    assert element_state(parse_squeue("5|CANCELLED|None", "5"), 0) == ElementState("CANCELLED")
    assert element_state(sc, 5) == sc[5] and element_state({}, 0) is None
    sa = parse_sacct("7_0|COMPLETED|0:0\n7_1|CANCELLED by 0|0:15\n7_2|TIMEOUT|0:0\n", "7")
    assert sa[1] == ElementState("CANCELLED", "", 0, 15) and sa[2].state == "TIMEOUT"


@pytest.mark.parametrize(("state", "expected"), [
    (ElementState("COMPLETED", "", 0), (Outcome.SUCCEEDED, "", 0)),
    (ElementState("FAILED", "", 3), (Outcome.FAILED, "slurm: FAILED (exit code 3)", 3)),
    (ElementState("FAILED", "", 0, 9),
     (Outcome.FAILED, "slurm: FAILED (killed by signal SIGKILL)", -9)),
    (ElementState("OUT_OF_MEMORY", "", 0, 125), (Outcome.FAILED, "slurm: OUT_OF_MEMORY", 0)),
    (ElementState("TIMEOUT", "", 0, 15), (Outcome.FAILED, "slurm: TIMEOUT", 0)),
    (ElementState("CANCELLED", "", 0, 15), (Outcome.FAILED, "slurm: CANCELLED", 0)),
    (ElementState("NODE_FAIL", "", 0, 9), (Outcome.LOST, "slurm: NODE_FAIL", 0)),
    (ElementState("PREEMPTED", "", 0, 9), (Outcome.LOST, "slurm: PREEMPTED", 0)),
])
def test_each_final_state_has_its_own_reason(
    state: ElementState, expected: tuple[Outcome, str, int]
) -> None:
    assert verdict(state) == expected


def test_resources_map_to_sbatch_options() -> None:
    spec = TaskSpec(node="n", executor="slurm", command="x", cores=2.5, memory_mb=512, gpus=2,
                    walltime_s=90, timeout_s=600, labels={"account": "proj", "qos": "low"})
    opts = job_options(spec, SlurmConfig(partition="batch", account="default"))
    assert opts == ("--cpus-per-task=3", "--mem=512M", "--gres=gpu:2", "--time=2",
                    "--partition=batch", "--account=proj", "--qos=low")
    plain = TaskSpec(node="n", executor="slurm", command="x", timeout_s=5,
                     labels={"partition": "gpu"})
    assert job_options(plain, SlurmConfig()) == (
        "--cpus-per-task=1", "--time=1", "--partition=gpu")
    argv = sbatch_argv(opts, 3, "/d/j", "dagb-n")
    assert argv[:3] == ["sbatch", "--parsable", "--array=0-2"]
    assert "--output=/d/j/%a.out" in argv and argv[-1] == "/d/j/job.sh"


def test_batch_script_keeps_hostile_values_literal() -> None:
    value = "a'\n#SBATCH --partition=evil\n$(echo INJECTED) `echo INJECTED`; \"$HOME\\"
    elements = [
        Element(argv=["printf", "[%s][%s]", value, "$X"], env={"X": value}),
        Element(argv=["/bin/sh", "-c", 'printf "%s" "$X"'], env={"X": value}, cwd="/"),
    ]
    script = batch_script(elements)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh" and lines[1].startswith("set -u")  # a command: directives end
    for i, want in enumerate([f"[{value}][$X]", value]):
        r = subprocess.run(["/bin/sh", "-c", script], env={"SLURM_ARRAY_TASK_ID": str(i)},
                           capture_output=True, text=True, check=True)
        assert r.stdout == want
    r = subprocess.run(["/bin/sh", "-c", script], env={"SLURM_ARRAY_TASK_ID": "5"},
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no task for array index 5" in r.stderr


def test_sbatch_output_parsing() -> None:
    assert parse_job_id("123\n") == "123"
    assert parse_job_id("456;cluster\n") == "456"
    with pytest.raises(ValueError, match="unexpected sbatch output"):
        parse_job_id("Submitted batch job 7")


def test_worker_options_reach_the_executors(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yaml"
    inventory.write_text("hpc:\n  host: login.example.org\n  user: alice\n")
    settings, _ = parse_settings(
        ["--redis-url", "redis://127.0.0.1:1/0", "--slurm-partition", "batch",
         "--slurm-account", "proj", "--slurm-poll-interval", "0.5",
         "--ssh-inventory", str(inventory)], {})
    assert slurm_config(settings) == SlurmConfig(partition="batch", account="proj",
                                                 poll_interval_s=0.5)
    assert settings.ssh_inventory == str(inventory)
    bad = tmp_path / "bad.toml"
    bad.write_text("[hpc]\nport = 'x'\n")
    with pytest.raises(SystemExit):  # refused at startup, not at the first ssh task
        parse_settings(["--redis-url", "redis://127.0.0.1:1/0", "--ssh-inventory", str(bad)], {})
