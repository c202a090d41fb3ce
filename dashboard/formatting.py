"""Numbers as a panel writes them: fixed decimals or about four significant digits, then the unit.

Plain text: whoever puts it on a page escapes it (``dashboard.markup`` for Markdown, ``html.escape``).
"""

import math

SIGNIFICANT = 4
"""Digits a value keeps when its panel sets no ``decimals``: 1,013 hPa, 21.37 °C, 0.5123."""
NO_VALUE = "n/a"
_UNSPACED_UNITS = frozenset({"%", "‰", "°"})
"""Units written against the number (45%, 90°); every other unit after a space (21.4 °C, 1,013 hPa)."""


def auto_decimals(value: float) -> int:
    """Decimals that give ``value`` about ``SIGNIFICANT`` significant digits (none for large values)."""
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))


def format_number(value: float | None, decimals: int | None = None) -> str:
    """``value`` with thousands separators and ``decimals`` digits after the point; with None, about four
    significant digits and no trailing zeros (scientific notation for tiny or huge values)."""
    if value is None or math.isnan(value):
        return NO_VALUE
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if decimals is not None:
        text = f"{value:,.{decimals}f}"
    elif value != 0 and not 1e-4 <= abs(value) < 1e15:
        mantissa, exponent = f"{value:.{SIGNIFICANT - 1}e}".split("e")
        text = f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    else:
        text = f"{value:,.{auto_decimals(value)}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    # A negative value that rounds to zero is shown as zero, not "-0.0".
    if text.startswith("-") and not any(digit in "123456789" for digit in text.split("e")[0]):
        text = text[1:]
    return text


def format_value(value: float | None, decimals: int | None = None, unit: str | None = None) -> str:
    """``value`` as a panel shows it: ``format_number``, then ``unit`` (none when the value is missing)."""
    number = format_number(value, decimals)
    if not unit or number == NO_VALUE:
        return number
    return f"{number}{unit}" if unit in _UNSPACED_UNITS else f"{number} {unit}"
