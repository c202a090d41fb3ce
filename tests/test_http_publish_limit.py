"""HTTP publishing is rate limited per identity (token ``sub``, else client address): a flooding publisher
gets 429 with a truthful ``Retry-After`` while other identities keep publishing."""

import time

import httpx

from gateway.auth import mint_token
from tests.servers import GatewayProcess, StartGateway, metric

SECRET = "test-secret-with-enough-bytes-for-hs256"
BATCH = [{"values": {"v": float(n)}} for n in range(1000)]
SLOW = {"PULSE_HTTP_PUBLISH_RATE": "0.5", "PULSE_HTTP_PUBLISH_BURST": "1000"}
"""One batch of 1000 points empties the bucket; a point comes back every 2 s."""


def flood(
    http: httpx.Client, gateway: GatewayProcess, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Publish 1000-point batches until one is refused (at most 5); that answer."""
    for _ in range(5):
        response = http.post(f"{gateway.http_url}/api/publish/data:flood", json=BATCH, headers=headers)
        if response.status_code != 200:
            return response
    raise AssertionError("5 000 points at 0.5 points/s with a burst of 1 000 were all accepted")


def assert_limited(response: httpx.Response) -> int:
    """``response`` is the documented 429; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    assert response.json()["detail"].startswith("rate_limited: ")
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def test_a_flooding_address_gets_429_while_another_address_publishes(start_gateway: StartGateway) -> None:
    """Auth off: the identity is the client address; 127.0.0.1 floods into 429, 127.0.0.2 still publishes,
    and after Retry-After the flooder is let in again."""
    gateway = start_gateway(env=SLOW)
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client() as flooder, httpx.Client(transport=other) as bystander:
        retry_after = assert_limited(flood(flooder, gateway))
        published = bystander.post(f"{gateway.http_url}/api/publish/data:calm", json={"values": {"v": 1.0}})
        assert published.status_code == 200 and published.json() == {"offsets": [1]}
        assert_limited(flooder.post(f"{gateway.http_url}/api/publish/data:calm", json={"values": {"v": 2.0}}))
        time.sleep(retry_after)
        again = flooder.post(f"{gateway.http_url}/api/publish/data:calm", json={"values": {"v": 3.0}})
        assert again.status_code == 200 and again.json() == {"offsets": [2]}, "nothing refused was published"
    assert metric(gateway.http_url, "pulse_http_publish_limited_total") == 2


def test_with_auth_the_limit_is_per_token_sub(start_gateway: StartGateway) -> None:
    """Auth on: the identity is the token's sub, so a second user on the same address is not held back."""
    gateway = start_gateway(env={**SLOW, "PULSE_SECRET": SECRET})

    def bearer(sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(SECRET, sub, ttl=60, publish=['data:*'])}"}

    with httpx.Client() as http:
        assert_limited(flood(http, gateway, bearer("alice")))
        bob = http.post(f"{gateway.http_url}/api/publish/data:flood", json=BATCH, headers=bearer("bob"))
        assert bob.status_code == 200 and len(bob.json()["offsets"]) == 1000


def test_rate_zero_turns_the_limit_off(start_gateway: StartGateway) -> None:
    """PULSE_HTTP_PUBLISH_RATE=0: no identity is ever refused, whatever the burst."""
    gateway = start_gateway(env={"PULSE_HTTP_PUBLISH_RATE": "0", "PULSE_HTTP_PUBLISH_BURST": "1"})
    with httpx.Client() as http:
        for _ in range(3):
            response = http.post(f"{gateway.http_url}/api/publish/data:flood", json=BATCH)
            assert response.status_code == 200
