"""The request limiter: a hard cap, later steps first, cancellation never leaks a slot."""

import asyncio

import pytest

from infra.limiter import PriorityLimiter


def test_waiters_are_served_lowest_priority_number_first_and_fifo_among_equals():
    order = []

    async def scenario():
        limiter = PriorityLimiter(1)
        gate = asyncio.Event()

        async def holder():
            async with limiter.slot(0):
                await gate.wait()

        async def waiter(name, priority):
            async with limiter.slot(priority):
                order.append(name)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(waiter(n, p)) for n, p in [("si-a", 2), ("gen-a", 1), ("ext-a", 0), ("gen-b", 1)]]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, *tasks)

    asyncio.run(scenario())
    assert order == ["ext-a", "gen-a", "gen-b", "si-a"]


def test_a_cancelled_waiter_does_not_keep_a_slot():
    async def scenario():
        limiter = PriorityLimiter(1)
        async with limiter.slot(0):
            waiting = asyncio.create_task(limiter.slot(0).__aenter__())
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        async with limiter.slot(5):
            return limiter.free

    assert asyncio.run(scenario()) == 0


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        PriorityLimiter(0)
