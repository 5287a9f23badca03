"""Times as the stores keep them: a due time rounded up to the millisecond, read alike by all."""

from __future__ import annotations

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
