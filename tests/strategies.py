"""Hypothesis strategies and settings shared by the property tests: valid names, channels and JSON."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from shared.channels import NAME_PATTERN, Namespace

# Random inputs on every run, like a fuzzer, but no example database: a failure prints its example, and
# nothing is replayed from (or written to) a previous run's state.
FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def texts(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Any text a UTF-8 frame can carry: everything but lone surrogates."""
    return st.text(st.characters(exclude_categories=["Cs"]), min_size=min_size, max_size=max_size)


NAMES = st.from_regex(NAME_PATTERN, fullmatch=True)
CHANNELS = st.builds("{}:{}".format, st.sampled_from([ns.value for ns in Namespace]), NAMES)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FINITE | texts(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(max_size=8), inner, max_size=4),
    max_leaves=8,
)
JSON_OBJECTS = st.dictionaries(texts(max_size=8), JSON_VALUES, max_size=5)
