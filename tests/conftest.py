"""Shared test fixtures."""
import contextlib
import http.client
import os
import threading
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

from pavdit.engine import compat

# Every hypothesis test tries the same examples on every run and machine (no example database).
settings.register_profile('pavdit', derandomize=True, database=None, deadline=None)
settings.load_profile('pavdit')

# Tests build mmengine Runners in-process, as tools/train.py does after the same call.
compat.install()

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed():
    """Every global random source starts from the same state in every test."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield


@pytest.fixture
def single_thread():
    """One intra-op thread: on 2 shared cores, torch's thread pool costs far more than it brings
    for the hundreds of small ops of samplers and tiny models (measured ~10-100x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_tool(*args: str, cwd: Path = REPO_ROOT, timeout: float = 600, env: dict = None
             ) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root the way a user would; fail with its output."""
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(args)} exited {proc.returncode}\n'
                             f'--- stdout ---\n{proc.stdout[-4000:]}\n'
                             f'--- stderr ---\n{proc.stderr[-4000:]}')
    return proc


def http_request(server, method: str, path: str, body: bytes = None, headers: dict = None,
                 timeout: float = 30):
    """(status, headers, body) of one raw request to a served ``server`` (http.client sends the
    path as given, ``../`` included)."""
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@contextlib.contextmanager
def serving(server):
    """``server`` (a LocalHTTPServer, e.g. on port 0) answering from a thread while open."""
    with server as running:
        threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield running
        finally:
            running.shutdown()
