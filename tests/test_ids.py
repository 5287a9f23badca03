"""Job ids: valid, unique, and sorted by creation time."""

from __future__ import annotations

import pytest

from filestore.ids import ALPHABET, ID_LENGTH, id_timestamp, is_valid_id, new_id
from tests.concurrency import made_in_threads, said_by_a_child

T0 = 1_790_000_000.0


def test_it_makes_ids_of_the_documented_shape():
    ids = [new_id() for _ in range(200)]

    assert all(len(job_id) == ID_LENGTH == 26 for job_id in ids)
    assert all(is_valid_id(job_id) for job_id in ids)
    assert not any(set(job_id) & set("ILOUilou") for job_id in ids)


def test_it_orders_ids_by_creation_time():
    times = [T0 + offset for offset in (0, 0.001, 0.5, 1, 60, 3600, 86400 * 400)]

    ids = [new_id(at) for at in reversed(times)]

    assert sorted(ids) == list(reversed(ids))
    assert [id_timestamp(job_id) for job_id in reversed(ids)] == pytest.approx(times, abs=0.001)


def test_it_keeps_a_burst_within_one_millisecond_in_order():
    ids = [new_id(T0) for _ in range(5000)]

    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {id_timestamp(job_id) for job_id in ids} == {T0}


def test_it_makes_unique_ids_from_many_threads():
    made = made_in_threads(lambda: new_id(T0), threads=4, each=2000)

    every = [job_id for out in made for job_id in out]
    assert len(set(every)) == len(every) == 8000
    assert all(out == sorted(out) for out in made)


def test_it_makes_no_duplicates_across_a_fork():
    """A forked child must not continue its parent's sequence in the same millisecond."""
    new_id(T0)  # the parent has a sequence going for this millisecond
    _, said = said_by_a_child(lambda: " ".join(new_id(T0) for _ in range(50)))
    child_ids = said.split()
    parent_ids = [new_id(T0) for _ in range(50)]

    assert len(child_ids) == 50
    assert not set(parent_ids) & set(child_ids)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "01ARZ3NDEKTSV4RRFFQ69G5FA",  # 25 characters
        "01ARZ3NDEKTSV4RRFFQ69G5FAVV",  # 27
        "01arz3ndektsv4rrffq69g5fav",  # lowercase
        "01ARZ3NDEKTSV4RRFFQ69G5FAI",  # I is not in the alphabet
        "01ARZ3NDEKTSV4RRFFQ69G5FA/",
        "../../../../../../../../..",
        "01ARZ3NDEKTSV4RRFFQ69G5FA\n",
        None,
        12345,
    ],
)
def test_it_rejects_values_that_are_not_ids(value):
    assert not is_valid_id(value)


def _digits(value: int, length: int) -> str:
    """``value`` as ``length`` digits of the alphabet, one at a time (the reference)."""
    return "".join(ALPHABET[(value >> (5 * place)) & 31] for place in reversed(range(length)))


@pytest.mark.parametrize(
    ("ms", "random_part"),
    [
        (0, 0),
        (1, 1),
        ((1 << 48) - 1, (1 << 80) - 1),
        (1_733_490_000_123, 0x1234_5678_9ABC_DEF0_1357),
    ],
)
def test_an_id_is_its_time_then_its_random_part_in_crockford_base32(ms, random_part):
    from filestore.ids import _encode

    assert _encode(ms, random_part) == _digits(ms, 10) + _digits(random_part, 16)
    assert id_timestamp(_encode(ms, random_part)) == ms / 1000
