"""The task runners: one core and Ray give the same results in the same order, and failures are one clear line."""

from __future__ import annotations

import functools

import pytest

from router_tuner.tuner.cluster import ClusterError, LocalRunner, RayRunner, TaskFailed, TaskRunner


def square(x: int) -> int:
    return x * x


def scaled(x: int, *, factor: int) -> int:
    return x * factor


def fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}\nsecond line")
    return x


def test_local_runner_maps_in_order() -> None:
    runner = LocalRunner()
    assert runner.workers == 1
    assert runner.map(square, [3, 1, 2]) == [9, 1, 4]
    assert list(runner.as_completed(square, [3, 1])) == [(0, 9), (1, 1)]


def test_ray_runner_equals_the_local_runner(ray_runner: TaskRunner) -> None:
    items = list(range(12))
    assert ray_runner.workers == 2
    assert ray_runner.map(square, items) == LocalRunner().map(square, items)
    assert ray_runner.map(functools.partial(scaled, factor=3), items) == [3 * i for i in items]
    finished = dict(ray_runner.as_completed(square, items))
    assert finished == {i: i * i for i in items}


def test_a_failing_task_is_one_line_naming_the_original_error(ray_runner: TaskRunner) -> None:
    with pytest.raises(TaskFailed, match=r"^ValueError: bad item 3$"):
        ray_runner.map(fails_on_three, [1, 2, 3])
    with pytest.raises(TaskFailed, match="ValueError"):
        list(ray_runner.as_completed(fails_on_three, [3]))


def test_ray_runner_arguments_and_lifetime() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RayRunner()
    with pytest.raises(ValueError, match="exactly one"):
        RayRunner(workers=2, address="auto")
    with pytest.raises(ValueError, match=">= 1"):
        RayRunner(workers=0)
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        RayRunner(workers=1).map(square, [1])


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"),
    ("ray://127.0.0.1:1", "no Ray cluster answers"),
    ("not-an-address", "is not HOST:PORT"),
])
def test_an_unreachable_cluster_fails_fast(address: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message), RayRunner(address=address):
        pass
