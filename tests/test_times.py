"""Times as the stores keep them: a due time rounded up to the millisecond, read alike by all."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from jobs import clock
from storage.times import round_up_to_ms, to_ms

# Epoch seconds from 2001 to 2096.
MOMENTS = st.floats(min_value=1e9, max_value=4e9)


@given(MOMENTS)
def test_a_time_rounded_up_is_never_read_as_an_earlier_millisecond(seconds):
    milliseconds = to_ms(round_up_to_ms(seconds))

    assert milliseconds >= seconds * 1000
    assert milliseconds - seconds * 1000 < 1


@given(MOMENTS)
def test_a_queue_and_a_document_read_the_same_millisecond_of_a_time_rounded_up(seconds):
    rounded = round_up_to_ms(seconds)

    assert clock.to_iso(rounded) == clock.to_iso(to_ms(rounded) / 1000)


def test_a_whole_millisecond_stays_as_it_is():
    assert to_ms(round_up_to_ms(1_700_000_000.25)) == 1_700_000_000_250


def _formatted(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@given(MOMENTS)
def test_a_timestamp_is_written_as_datetime_formats_it(seconds):
    assert clock.to_iso(seconds) == _formatted(seconds)


@given(
    st.integers(min_value=10**9, max_value=4 * 10**9),
    st.sampled_from([-5e-7, -1e-7, 4e-7, 5e-7, 0.0]),
)
def test_a_timestamp_a_hair_from_a_whole_second_rounds_as_datetime_does(whole, offset):
    # datetime rounds to the microsecond first (half to even): 0.9999996 is the next second.
    assert clock.to_iso(whole + offset) == _formatted(whole + offset)


def test_times_in_the_same_second_and_in_the_next_are_told_apart():
    assert clock.to_iso(1_700_000_000.1) == "2023-11-14T22:13:20.100Z"
    assert clock.to_iso(1_700_000_000.9) == "2023-11-14T22:13:20.900Z"
    assert clock.to_iso(1_700_000_001.0) == "2023-11-14T22:13:21.000Z"
    assert clock.to_iso(1_699_999_999.5) == "2023-11-14T22:13:19.500Z"
