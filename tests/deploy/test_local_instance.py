"""Issue 28 point 1: the local instance (root dagster.yaml) monitors runs as production does.

Without run monitoring, a run left STARTING by a process that ended (a second `dev` stopped)
stayed STARTING for good: the task's next tick was skipped and terminate was refused.
"""

from __future__ import annotations

import shutil

from dagster import DagsterInstance

from tests.deploy.conftest import ROOT_INSTANCE, load_yaml
from validibot_ops.paths import LOCAL_INSTANCE_YAML


def test_the_local_instance_has_productions_run_monitoring_and_retries():
    local, production = load_yaml(LOCAL_INSTANCE_YAML), load_yaml(ROOT_INSTANCE)
    assert local["run_monitoring"] == production["run_monitoring"]
    assert local["run_retries"]["enabled"] and local["run_retries"]["max_retries"] >= 1


def test_the_local_instance_loads_with_monitoring_on(tmp_path):
    shutil.copy(LOCAL_INSTANCE_YAML, tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_start_timeout_seconds == 180
        assert instance.run_retries_enabled
