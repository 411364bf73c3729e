"""start_eagerly: inline when a coroutine never waits, a task when it does."""

from __future__ import annotations

import asyncio

import pytest

from realtime.eager import start_eagerly


async def test_a_coroutine_that_never_waits_completes_inline():
    done = []

    async def quick():
        done.append("ran")

    assert start_eagerly(quick()) is None
    assert done == ["ran"]


async def test_a_coroutine_that_waits_is_finished_by_a_task_in_order():
    steps = []
    gate = asyncio.get_running_loop().create_future()

    async def slow():
        steps.append("before")
        steps.append(await gate)
        await asyncio.sleep(0)
        steps.append("after")
        return "result"

    task = start_eagerly(slow())
    assert task is not None and steps == ["before"]
    gate.set_result("gate opened")
    await task
    assert steps == ["before", "gate opened", "after"]


async def test_an_error_before_waiting_reaches_the_caller_and_after_reaches_the_task():
    async def broken():
        raise RuntimeError("socket closed")

    with pytest.raises(RuntimeError, match="socket closed"):
        start_eagerly(broken())

    gate = asyncio.get_running_loop().create_future()

    async def fails_later():
        await gate
        raise ValueError("late")

    task = start_eagerly(fails_later())
    gate.set_result(None)
    with pytest.raises(ValueError, match="late"):
        await task
