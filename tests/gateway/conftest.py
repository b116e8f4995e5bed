"""A gateway process per test module, on the session's Redis (database 15, flushed per test)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_DB, _with_db
from tests.gateway.harness import Gateway


@pytest.fixture(scope="module")
def gateway(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    process = Gateway(_with_db(redis_url, TEST_DB), tmp).start()
    try:
        yield process
    finally:
        process.stop()
