"""Hydra's own launcher test suites, run on ``hydra/launcher=nets`` and ``nets_dask``.

As Hydra's joblib launcher plugin does in its tests: ``LauncherTestSuite`` and
``BatchedSweeperTestSuite`` run sweeps in this process (``hydra_sweep_runner``);
``IntegrationTestSuite`` writes its own task files and runs them as subprocesses. They
check Hydra's job semantics: per-job output dirs, ``.hydra/`` files, ``HydraConfig``
inside the job, return values, task names, the original working directory.

Kept lean (the suites start many processes): one worker per sweep; the in-process
suites record into one shared temporary store (MLflow grouping on, as users get it),
the integration suite runs with ``tracking=false`` (each test is a new launch dir).
The dask suite uses one LocalCluster worker on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (BatchedSweeperTestSuite,
                                                    IntegrationTestSuite, LauncherTestSuite)

from hydra_plugins.nets_launcher.nets_launcher import NetsDaskLauncher, NetsLauncher

STORE = Path(tempfile.mkdtemp(prefix="nets-suites-"))
LOCAL = ["hydra.launcher.n_jobs=1", f"hydra.launcher.uri={STORE}/mlruns",
         "hydra.launcher.experiment=suites"]
DASK = ["hydra.launcher.n_jobs=1", "hydra.launcher.tracking=false",
        "hydra.launcher.connect_timeout=60"]


@pytest.fixture(scope="session", autouse=True)
def _store():
    # Removed when the session ends, not the module: pytest-xdist (--dist loadscope)
    # may run this module's classes apart, with other modules between them, and this
    # process's store client would then hold a deleted file's connection open.
    yield
    shutil.rmtree(STORE, ignore_errors=True)


@pytest.fixture(autouse=True)
def _unspecified_version_base():
    """The suites expect Hydra's version base unset (jobs chdir into their output dir);
    a test file that composed with ``version_base="1.3"`` earlier in this process set it
    for good (the joblib launcher's suites would see the same)."""
    from hydra.core.singleton import Singleton
    from hydra.version import VersionBase

    Singleton._instances.pop(VersionBase, None)
    yield


def test_discovery():
    names = [x.__name__ for x in Plugins.instance().discover(Launcher)]
    assert NetsLauncher.__name__ in names and NetsDaskLauncher.__name__ in names


# (the suites extend the ``overrides`` list they get: each class gets its own copy)
@pytest.mark.parametrize("launcher_name, overrides", [("nets", list(LOCAL))])
class TestNetsLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize("launcher_name, overrides", [
    ("nets", [*LOCAL, "hydra/sweeper=basic", "hydra.sweeper.max_batch_size=2"])])
class TestNetsLauncherBatched(BatchedSweeperTestSuite):
    """As Hydra's own basic launcher runs this suite: batches of 2 from the basic sweeper."""


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [
    ({}, ["-m", "hydra/job_logging=hydra_debug", "hydra/job_logging=disabled",
          "hydra/launcher=nets", "hydra.launcher.n_jobs=1", "hydra.launcher.tracking=false"])])
class TestNetsLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.mark.parametrize("launcher_name, overrides", [("nets_dask", list(DASK))])
class TestNetsDaskLauncher(LauncherTestSuite):
    pass
