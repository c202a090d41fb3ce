"""What a chart in the browser holds after a message, as ``dashboard/static/pulse_chart.js`` applies it:
a full drawing replaces, an append (``base``) extends the rows of that version and drops the rows before
``keep_from``. One model for the tests that follow a chart's messages."""

from dashboard.chart import ChartData, ChartSeries


def apply_message(held: ChartData | None, sent: ChartData) -> ChartData:
    if "base" not in sent:
        return sent
    assert held is not None and held.get("version") == sent["base"], (
        "an append whose base the chart does not hold: every message must be applied, in order"
    )
    x = held["x"] + sent["x"]
    keep_from = sent.get("keep_from")
    first = 0 if keep_from is None else sum(1 for value in x if value < keep_from)

    def joined(old: ChartSeries, new: ChartSeries) -> ChartSeries:
        return ChartSeries(
            name=old["name"],
            color=old["color"],
            low=(old["low"] + new["low"])[first:],
            mid=(old["mid"] + new["mid"])[first:],
            high=(old["high"] + new["high"])[first:],
        )

    pairs = zip(held["series"], sent["series"], strict=True)
    result = ChartData(
        x=x[first:],
        series=[joined(old, new) for old, new in pairs],
        range=sent["range"],
        height=sent["height"],
    )
    result.update({key: value for key, value in sent.items() if key in ("version", "markers", "keep_from")})  # type: ignore[typeddict-item]
    return result
