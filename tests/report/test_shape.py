"""A prospect's `shape` (one int) and `TouchBook.reshaped` against the definitions spelled out.

The distinct-prospect counts move by the difference a prospect's change makes; `shape` packs
what they read into one int and `reshaped` counts the difference through a table of class
moves. Here every pair of prospects (before, after) is held against the counts written out
from the contract's definitions, one field at a time.
"""

from hypothesis import given
from hypothesis import strategies as st

from operators.scorecard_facts import N_CHANNELS, REPLIED, FieldNames, ProspectFacts
from operators.scorecard_touches import TouchBook, shape

_facts = st.builds(
    lambda touches, replied, to_reply: ProspectFacts(
        touches=touches, flags=REPLIED if replied else 0, to_reply=to_reply
    ),
    st.none() | st.lists(st.integers(0, 3), min_size=N_CHANNELS, max_size=N_CHANNELS),
    st.booleans(),
    st.integers(0, 40),
)


def _counted(f: ProspectFacts) -> dict[str, int]:
    """What one prospect adds to each distinct count, by the definitions."""
    channels = sum(1 for n in f.touches or () if n > 0)
    replied = int(bool(f.flags & REPLIED))
    return {
        "prospects_touched": int(channels > 0),
        "prospects_replied": replied,
        "touches_to_reply": f.to_reply if replied else 0,
        "multi_touched": int(channels >= 2),
        "multi_replied": int(channels >= 2 and replied),
        "single_touched": int(channels == 1),
        "single_replied": int(channels == 1 and replied),
    }


@given(_facts, _facts)
def test_reshaped_counts_the_difference_the_definitions_give(
    before: ProspectFacts, after: ProspectFacts
) -> None:
    book = TouchBook(FieldNames(), ledger_days=45, ledger_max=64)
    book.reshaped(shape(before), shape(after))
    old, new = _counted(before), _counted(after)
    expected = {name: new[name] - old[name] for name in old if new[name] != old[name]}
    assert book.fields == expected  # nothing else, and no zero left behind


@given(_facts, _facts)
def test_equal_shapes_mean_equal_counts(a: ProspectFacts, b: ProspectFacts) -> None:
    assert (shape(a) == shape(b)) == (_counted(a) == _counted(b))
