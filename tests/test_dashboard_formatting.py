"""Numbers as panels write them: decimals, about four significant digits, the unit after."""

import math

import pytest

from dashboard.formatting import auto_decimals, format_number, format_value


@pytest.mark.parametrize(
    ("value", "decimals", "unit", "expected"),
    [
        (21.456, 1, "°C", "21.5 °C"),
        (1013.25, 0, "hPa", "1,013 hPa"),
        (45.0, 0, "%", "45%"),
        (45.0, 2, "%", "45.00%"),
        (12345.678, 2, None, "12,345.68"),
        (-0.04, 1, "°C", "0.0 °C"),
        (-3.5, 1, "ms", "-3.5 ms"),
        (1013.25, None, "hPa", "1,013 hPa"),
        (21.37, None, "°C", "21.37 °C"),
        (50.0, None, "%", "50%"),
        (0.51234, None, None, "0.5123"),
        (0.0, None, "V", "0 V"),
        (123456789.0, None, None, "123,456,789"),
        (1.234e-5, None, None, "1.234e-05"),
        (1e16, None, None, "1e+16"),
        (None, 2, "°C", "n/a"),
        (math.nan, None, "%", "n/a"),
        (math.inf, 1, None, "∞"),
        (-math.inf, None, "K", "-∞ K"),
        (7.0, 0, "", "7"),
        (90.0, 0, "°", "90°"),
    ],
)
def test_format_value(value: float | None, decimals: int | None, unit: str | None, expected: str) -> None:
    assert format_value(value, decimals, unit) == expected


def test_auto_decimals_keep_four_significant_digits() -> None:
    assert [auto_decimals(v) for v in (5000.0, 999.9, 21.0, 5.0, 0.5, 0.0012, 0.0, math.inf)] == [
        0,
        1,
        2,
        3,
        4,
        6,
        0,
        0,
    ]
    assert format_number(999.96) == "1,000"
