from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.postgres_server import PostgresServer
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer
from tests.servers import GatewayProcess, StartGateway, metric
from tests.waiting import eventually


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Modules marked `both_brokers` run every gateway test once per broker backend: one suite, two runs;
    # those also marked `redis_cluster` a third time, on a Redis Cluster.
    if "broker_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_brokers"):
        brokers = ["memory", "redis"]
        if metafunc.definition.get_closest_marker("redis_cluster"):
            brokers.append("cluster")
        metafunc.parametrize("broker_url", brokers, indirect=True)


@pytest.fixture
def broker_url(request: pytest.FixtureRequest) -> str:
    """``PULSE_BROKER_URL`` of the gateways a test starts: memory, a flushed private redis-server, or a
    flushed private Redis Cluster."""
    fixture = {"redis": "redis_url", "cluster": "redis_cluster_url"}.get(getattr(request, "param", "memory"))
    if fixture is not None:
        url: str = request.getfixturevalue(fixture)
        return url
    return "memory://"


@pytest.fixture
def gateway(tmp_path: Path, broker_url: str) -> Iterator[GatewayProcess]:
    """A real gateway (``python -m gateway``) on a free port with its own data dir, auth off."""
    process = GatewayProcess(tmp_path, env={"PULSE_BROKER_URL": broker_url}).start()
    yield process
    process.stop()


@pytest.fixture
def start_gateway(tmp_path: Path, broker_url: str) -> Iterator[StartGateway]:
    """Start gateways with custom settings: ``start_gateway(env={...})``; all are stopped afterwards."""
    started: list[GatewayProcess] = []

    def start(env: dict[str, str] | None = None) -> GatewayProcess:
        process = GatewayProcess(tmp_path, env={"PULSE_BROKER_URL": broker_url, **(env or {})}).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium under Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the session; tests that use it get it flushed (``redis_url``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One private Redis Cluster (3 masters, 3 replicas) for the session; tests that use it get it
    flushed (``redis_cluster_url``). A test that fails a master over leaves it healthy again."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    redis_cluster.wait_healthy()
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture
def two_workers(tmp_path: Path, redis_url: str) -> Iterator[GatewayProcess]:
    """``python -m gateway --workers 2`` on a private Redis, once both workers report to ``/metrics``."""
    env = {"PULSE_BROKER_URL": redis_url, "PULSE_WORKERS": "2", "PULSE_HISTORY_URL": "none://"}
    process = GatewayProcess(tmp_path, env=env).start()
    eventually(lambda: metric(process.http_url, "pulse_workers") == 2, timeout=20)
    yield process
    process.stop()


@pytest.fixture(params=["redis", "cluster"])
def shared_url(request: pytest.FixtureRequest) -> str:
    """A flushed private Redis, or Redis Cluster, for ``pair`` (a module may narrow it to one)."""
    url: str = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    return url


@pytest.fixture
def pair(tmp_path: Path, shared_url: str) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Two gateway processes sharing one Redis (or Cluster)."""
    env = {"PULSE_BROKER_URL": shared_url}
    a = GatewayProcess(tmp_path / "a", env=env)
    b = GatewayProcess(tmp_path / "b", env=env)
    for process in (a, b):
        process.workdir.mkdir()
        process.start()
    yield a, b
    for process in (a, b):
        process.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL cluster for the session (never the machine's own); tests that use it get a
    database of their own (``postgres_url``)."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new empty database on the private PostgreSQL, dropped after the test."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
