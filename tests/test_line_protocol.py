"""InfluxDB line protocol ingest: the mapping and escaping rules, timestamps at every precision, malformed
lines named by number, and the write endpoints of a real gateway fed by InfluxData's own client, gzip,
InfluxDB 1's ``/write`` and tokens where InfluxDB clients send them."""

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from gateway.auth import mint_token
from gateway.line_protocol import PRECISIONS, LineError, _parse_each, _parse_plain, parse
from shared.channels import to_name
from tests.client import Client
from tests.servers import GatewayProcess

NOW = 1_800_000_000.0
SECRET = "test-secret-with-enough-bytes-for-hs256"


def test_measurement_and_tag_values_name_the_channel_and_fields_the_series() -> None:
    body = b'cpu,host=web1,cpu=cpu0 usage_user=1.5,usage_system=2i,busy=t,note="idle" 1700000000000000000\n'
    batch = parse(body, "ns", NOW)
    assert batch.points == {
        "data:cpu.cpu0.web1": [
            {"ts": 1_700_000_000.0, "values": {"usage_user": 1.5, "usage_system": 2.0, "busy": 1.0}}
        ]
    }


def test_escaping_rules() -> None:
    lines = [
        rb"disk\ io,path=/var/lib,dev=sd\,a used\ pct=3.5,f\=x=1 1",  # escaped space, comma and equals sign
        rb'log,app=a\ b bytes=10i,msg="say \"hi\", then\\ go" 2',  # a string field with escapes: left out
        b'only,app=x text="just a string" 3',
        b"# a comment line",
        b"",
    ]
    batch = parse(b"\n".join(lines), "s", NOW)
    assert batch.points == {
        "data:disk_io.sd_a._var_lib": [{"ts": 1.0, "values": {"used_pct": 3.5, "f_x": 1.0}}],
        "data:log.a_b": [{"ts": 2.0, "values": {"bytes": 10.0}}],
    }
    assert batch.skipped == 1, "the line with only a string field"


@pytest.mark.parametrize(
    ("precision", "stamp", "seconds"),
    [
        ("ns", 1_700_000_000_123_456_789, 1_700_000_000.123_456_789),
        ("n", 1_700_000_000_123_456_789, 1_700_000_000.123_456_789),
        ("us", 1_700_000_000_123_456, 1_700_000_000.123_456),
        ("u", 1_700_000_000_123_456, 1_700_000_000.123_456),
        ("ms", 1_700_000_000_123, 1_700_000_000.123),
        ("s", 1_700_000_000, 1_700_000_000.0),
        ("m", 28_333_333, 1_699_999_980.0),
        ("h", 472_222, 1_699_999_200.0),
    ],
)
def test_timestamps_at_every_precision(precision: str, stamp: int, seconds: float) -> None:
    [point] = parse(f"m v=1 {stamp}".encode(), precision, NOW).points["data:m"]
    assert point["ts"] == pytest.approx(seconds, abs=1e-6)


def test_a_line_without_a_timestamp_gets_the_gateways_clock() -> None:
    assert parse(b"m v=1", "ns", NOW).points["data:m"][0]["ts"] == NOW


@pytest.mark.parametrize(
    ("body", "line"),
    [
        (b"ok v=1\nbroken v=\nok v=2", 2),
        (b"ok v=1\n\nno_fields\n", 3),
        (b"m v=1 notatime", 1),
        (b"m,tag v=1", 1),
        (b'm v="unterminated', 1),
        (b"m v=1\nm v=1i2", 2),
    ],
)
def test_a_malformed_line_is_named_by_its_number(body: bytes, line: int) -> None:
    with pytest.raises(LineError) as raised:
        parse(body, "ns", NOW)
    assert raised.value.line == line and str(raised.value).startswith(f"line {line}: ")


# Pieces of lines: the plain ones Telegraf writes, and odd ones that the C parser refuses or reads in a
# way JSON would not (-0, underflow, int64, field keys given twice or not series names).
_PLAIN = {
    "value": ["1", "1.5", "-2.25", "0", "-0.0", "1e5", "1E5", "1e-5", "2.5e-300", "12i", "-7i", "-0i",
              "123456789012345678i", "1234567890123456789", "true", "false"],
    "key": ["v", "w", "usage_user", "a.b", "a-b", "we", "ie"],
    "series": ["m", "cpu,host=a", "cpu,host=b,cpu=c0", "cpu,cpu=c0,host=b", "m\xc3\xa9,t=\xc3\xa9"],
    "time": ["", " 1700000000", " -5", " 9000000000000000000"],
    "end": ["", "\n"],
}  # fmt: skip
_ODD = {
    "value": ["-0", "1e-400", "1e400", "1.", ".5", "01", "1e+5", "01i", "1.5i", "1e5i", "truei", "falsei",
              "9223372036854775807i", "9223372036854775808i", "3u", "-3u", "t", "TRUE", "NaN", "inf", "1_0",
              "x", "", '"s"', "0." + "0" * 320 + "1", "1e-0300"],
    "key": ["", "x" * 70, "k:x"],
    "series": ["m,h=1,h=2", "m,t=", ",t=a", "disk\\ io", "m\xff", "#m"],
    "time": [" 012", " 1e5", " 1.5", " x", " 9223372036854775807"],
    "end": ["\n\n", " ", "\r\n"],
}  # fmt: skip


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """Plain bodies, and bodies with an odd piece here and there."""
    odd = draw(st.sampled_from([0.0, 0.0, 0.03, 0.1, 0.3]))

    def piece(kind: str) -> str:
        pieces = _ODD if draw(st.floats(0, 1)) < odd else _PLAIN
        return draw(st.sampled_from(pieces[kind]))

    lines = []
    for _ in range(draw(st.integers(1, 6))):
        fields = ",".join(f"{piece('key')}={piece('value')}" for _ in range(draw(st.integers(1, 4))))
        lines.append(f"{piece('series')} {fields}{piece('time')}")
    return ("\n".join(lines) + piece("end")).encode("latin-1")


@settings(max_examples=2000, deadline=None, database=None)
@given(_bodies(), st.sampled_from(sorted(PRECISIONS)))
def test_a_body_read_in_bulk_reads_as_line_by_line(body: bytes, precision: str) -> None:
    """The bulk reading of plain bodies gives the C parser's points (series order and the sign of zero
    included) or gives up; it never takes a body that the C parser refuses."""
    scale = PRECISIONS[precision]
    bulk = _parse_plain(body, scale, NOW)
    try:
        each = _parse_each(body, scale, NOW)
    except LineError:
        assert bulk is None
        return
    if bulk is not None:
        assert repr(bulk) == repr(each)


def test_telegraf_output_is_read_in_bulk() -> None:
    """Float and integer fields, tags and nanosecond timestamps, as Telegraf writes them, take the bulk
    path (the one that keeps up with the JSON batch endpoint)."""
    body = "".join(
        f"cpu,cpu=cpu{i % 4},host=web1 usage_user={i * 0.37:.4f},usage_system=2.5,n={i}i {1_700_000_000 + i}"
        "000000000\n"
        for i in range(100)
    ).encode()
    bulk = _parse_plain(body, PRECISIONS["ns"], NOW)
    assert bulk is not None and repr(bulk) == repr(_parse_each(body, PRECISIONS["ns"], NOW))
    assert list(bulk.points["data:cpu.cpu1.web1"][0]["values"]) == ["usage_user", "usage_system", "n"]


def test_a_line_that_is_not_utf8_is_named() -> None:
    with pytest.raises(LineError) as raised:
        parse(b"m v=1\nm\xff v=1", "ns", NOW)
    assert raised.value.line == 2


def test_long_names_keep_a_hash_so_they_stay_apart() -> None:
    a, b = to_name("x" * 70 + "a"), to_name("x" * 70 + "b")
    assert len(a) == len(b) == 64 and a != b and a.startswith("x" * 55 + "-")


@pytest.fixture
def open_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path).start()
    yield process
    process.stop()


def test_influxdata_client_writes_to_the_gateway_as_to_influxdb(open_gateway: GatewayProcess) -> None:
    with (
        Client(open_gateway.ws_url) as subscriber,
        InfluxDBClient(url=open_gateway.http_url, token="unused", org="any") as influx,
    ):
        subscriber.subscribe("data:weather.lab")
        points = [
            Point("weather")
            .tag("site", "lab")
            .field("temp", 21.5 + i)
            .field("rh", 40 + i)
            .time(1_700_000_000 + i, WritePrecision.S)
            for i in range(3)
        ]
        influx.write_api(write_options=SYNCHRONOUS).write(
            bucket="b", record=points, write_precision=WritePrecision.S
        )
        received = subscriber.pubs(3)
    assert [p["data"]["ts"] for p in received] == [1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0]
    assert [p["data"]["values"] for p in received] == [{"temp": 21.5 + i, "rh": 40.0 + i} for i in range(3)]


def test_gzip_bodies_and_influxdb_1_write(open_gateway: GatewayProcess) -> None:
    lines = "\n".join(f"net,if=eth0 rx={i}i {1_700_000_000_000 + i}" for i in range(2500)).encode()
    response = httpx.post(
        f"{open_gateway.http_url}/api/v2/write?bucket=b&precision=ms",
        content=gzip.compress(lines),
        headers={"Content-Encoding": "gzip"},
    )
    assert response.status_code == 204, response.text
    v1 = httpx.post(
        f"{open_gateway.http_url}/write?db=x&precision=s", content=b"net,if=eth0 rx=9i 1700000100"
    )
    assert v1.status_code == 204, v1.text
    history = httpx.get(f"{open_gateway.http_url}/api/channels/data:net.eth0/history?limit=3").json()
    assert [p["offset"] for p in history["publications"]] == [2499, 2500, 2501]
    assert history["publications"][-1]["data"] == {"ts": 1_700_000_100.0, "values": {"rx": 9.0}}


def test_a_malformed_line_rejects_the_whole_request(open_gateway: GatewayProcess) -> None:
    body = b"good v=1\ngood v=2\ngood v==3\n"
    response = httpx.post(f"{open_gateway.http_url}/api/v2/write", content=body)
    assert response.status_code == 400
    assert response.json()["line"] == 3 and response.json()["code"] == "invalid"
    assert "line 3" in response.json()["message"]
    listed = httpx.get(f"{open_gateway.http_url}/api/channels").json()["channels"]
    assert [c["name"] for c in listed] == [], "nothing from the rejected request was published"
    bomb = gzip.compress(b"m v=1\n" * 2_000_000)  # 12 MB inflated, over the 4 MiB body limit
    refused = httpx.post(
        f"{open_gateway.http_url}/api/v2/write", content=bomb, headers={"Content-Encoding": "gzip"}
    )
    assert refused.status_code == 413
    assert (
        httpx.post(f"{open_gateway.http_url}/api/v2/write?precision=minutes", content=b"m v=1").status_code
        == 400
    )
    assert httpx.get(f"{open_gateway.http_url}/healthz").status_code == 200


def test_tokens_where_influxdb_clients_send_them(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, env={"PULSE_SECRET": SECRET}).start()
    try:
        allowed = mint_token(SECRET, "telegraf", ttl=60, publish=["data:room.*"])
        url = f"{gateway.http_url}/api/v2/write"
        assert httpx.post(url, content=b"room,r=a t=1").status_code == 401
        assert (
            httpx.post(url, content=b"room,r=a t=1", headers={"Authorization": "Token nope"}).status_code
            == 401
        )
        assert (
            httpx.post(
                url, content=b"room,r=a t=1", headers={"Authorization": f"Token {allowed}"}
            ).status_code
            == 204
        )
        forbidden = httpx.post(
            url, content=b"room,r=a t=1\nother t=2", headers={"Authorization": f"Token {allowed}"}
        )
        assert forbidden.status_code == 403 and "data:other" in forbidden.json()["message"]
        v1 = f"{gateway.http_url}/write?db=x"
        assert httpx.post(v1, params={"u": "x", "p": allowed}, content=b"room,r=b t=1").status_code == 204
        assert httpx.post(v1, auth=("x", allowed), content=b"room,r=c t=1").status_code == 204
        with InfluxDBClient(url=gateway.http_url, token=allowed, org="any") as influx:
            influx.write_api(write_options=SYNCHRONOUS).write(bucket="b", record="room,r=d t=4")
            with pytest.raises(ApiException) as refused:
                influx.write_api(write_options=SYNCHRONOUS).write(bucket="b", record="elsewhere t=4")
            assert refused.value.status == 403
        names = {
            c["name"]
            for c in httpx.get(
                f"{gateway.http_url}/api/channels", headers={"Authorization": f"Bearer {allowed}"}
            ).json()["channels"]
        }
        assert names >= {"data:room.a", "data:room.b", "data:room.c", "data:room.d"}
    finally:
        gateway.stop()
