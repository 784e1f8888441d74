"""docker-compose.yml keeps its promises: one daemon, loopback ports, real commands, env."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.core.management import get_commands

from tests.deploy.conftest import (
    COMPOSE,
    DOCKERFILE,
    IMAGE_WORKDIR,
    LAUNCHER_INSTANCE,
    LAUNCHER_OVERLAY,
    ROOT,
    ROOT_INSTANCE,
    dockerfile_env,
    env_example,
    load_yaml,
)
from validibot.tasks.registry import get_tasks

VENV_BIN = Path(sys.executable).parent
DOCKER_SOCKET = "/var/run/docker.sock"
# Where the socket comes from on the host: .env's DOCKER_SOCKET, the usual path by default.
SOCKET_SOURCE = "${DOCKER_SOCKET:-/var/run/docker.sock}"
ONE_SHOT = "no"


def argv(command: Any) -> list[str]:
    """A compose command (list or string) as an argv list."""
    return list(command) if isinstance(command, list) else shlex.split(command)


def healthcheck_argv(service: dict[str, Any]) -> list[str] | None:
    """The exec-form healthcheck argv, or None for shell-form / no healthcheck."""
    test = service.get("healthcheck", {}).get("test")
    if isinstance(test, list) and test and test[0] == "CMD":
        return test[1:]
    return None


def app_argvs(app_services: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """Every command and exec-form healthcheck the app image runs, with its service name."""
    found = []
    for name, service in app_services.items():
        found.append((name, argv(service["command"])))
        check = healthcheck_argv(service)
        if check:
            found.append((f"{name} healthcheck", check))
    return found


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


def is_long_running(service: dict[str, Any]) -> bool:
    return service.get("restart") != ONE_SHOT


def daemon_services(services: dict[str, dict[str, Any]]) -> list[str]:
    return [
        n
        for n, s in services.items()
        if argv(s.get("command", []))[:2] == ["dagster-daemon", "run"]
    ]


def volume_targets(service: dict[str, Any]) -> list[str]:
    targets = []
    for volume in service.get("volumes", []):
        targets.append(volume["target"] if isinstance(volume, dict) else volume.split(":")[1])
    return targets


def socket_mounts(service: dict[str, Any]) -> list[Any]:
    return [
        v
        for v in service.get("volumes", [])
        if (v.get("target") if isinstance(v, dict) else v.split(":")[1]) == DOCKER_SOCKET
    ]


def volume_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes", []):
        sources.append(volume["source"] if isinstance(volume, dict) else volume.split(":")[0])
    return sources


# --- topology ---------------------------------------------------------------------------------


def test_exactly_one_dagster_daemon_and_it_cannot_be_scaled(services):
    daemons = daemon_services(services)
    assert len(daemons) == 1, f"daemon services: {daemons}"
    daemon = services[daemons[0]]
    assert daemon.get("container_name"), (
        "a fixed container_name makes --scale refuse to add a second"
    )
    assert daemon.get("deploy", {}).get("replicas", 1) == 1


def test_every_published_port_is_bound_to_loopback(services, overlay):
    for source in (services, overlay.get("services", {})):
        for name, service in source.items():
            for port in service.get("ports", []):
                host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
                assert host_ip == "127.0.0.1", f"{name} publishes {port!r} beyond loopback"


def test_only_the_docker_queue_worker_mounts_the_docker_socket(services):
    mounting = {n for n, s in services.items() if DOCKER_SOCKET in volume_targets(s)}
    assert mounting == {"worker-docker"}
    worker = services["worker-docker"]
    assert option_values(argv(worker["command"]), "--queue") == ["docker"]
    assert worker["environment"]["VALIDIBOT_DOCKER_URL"] == f"unix://{DOCKER_SOCKET}"


def test_the_launcher_overlay_gives_the_socket_only_to_daemon_and_webserver(overlay):
    mounting = {n for n, s in overlay["services"].items() if DOCKER_SOCKET in volume_targets(s)}
    assert mounting == {"dagster-daemon", "dagster-webserver"}


def test_the_socket_comes_from_docker_socket_and_must_exist(services, overlay):
    """Long syntax without create_host_path: a missing socket fails `up` instead of compose
    creating an empty directory there (the worker then had no engine and exited 0)."""
    holders = [services["worker-docker"]]
    holders += [overlay["services"][n] for n in ("dagster-daemon", "dagster-webserver")]
    for service in holders:
        (mount,) = socket_mounts(service)
        assert isinstance(mount, dict), f"short syntax creates a directory: {mount!r}"
        assert mount["type"] == "bind"
        assert mount["source"] == SOCKET_SOURCE
        assert not mount.get("bind", {}).get("create_host_path", False)
    assert env_example().get("DOCKER_SOCKET"), "DOCKER_SOCKET must be set in .env.example"


def test_the_docker_worker_fails_its_run_without_an_engine(services):
    environment = services["worker-docker"]["environment"]
    assert environment["VALIDIBOT_CONTAINERS_REQUIRE_ENGINE"] == "true"


def test_the_image_is_built_by_exactly_one_service(services, app_image):
    builders = [n for n, s in services.items() if "build" in s]
    assert builders == ["migrate"], f"every builder builds and exports the image: {builders}"
    assert services["migrate"]["image"] == app_image


def test_every_long_running_service_has_a_healthcheck(services):
    """docs/deploy.md promises `healthy` for every long-running service (workers included)."""
    for name, service in services.items():
        if is_long_running(service):
            assert "healthcheck" in service, f"{name} has no healthcheck"


def test_worker_healthchecks_ping_their_own_celery_node(services):
    for name, service in services.items():
        args = argv(service["command"])
        if args[:2] != ["validibot-ops", "worker"]:
            continue
        queues = option_values(args, "--queue")
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL", name
        assert "inspect ping" in test[1], name
        # validibot-ops worker names its node <queues joined by ->@<hostname>.
        assert f'--destination "{"-".join(queues)}@$$HOSTNAME"' in test[1] or (
            f'--destination "{"-".join(queues)}@$HOSTNAME"' in test[1]
        ), f"{name} pings another node: {test[1]}"


def test_workers_serve_every_queue_the_registry_routes_to(app_services):
    served = {
        queue
        for service in app_services.values()
        if argv(service["command"])[:2] == ["validibot-ops", "worker"]
        for queue in option_values(argv(service["command"]), "--queue")
    }
    assert {task.queue for task in get_tasks()} <= served
    assert served == {"default", "docker"}


def test_the_code_server_re_imports_its_code_on_a_reload(services):
    """An expired incident override drops out at the next load, which the override-expiry
    sensor asks for with a reload: only ``dagster code-server start`` re-imports then
    (``dagster api grpc`` keeps the old definitions). The compose test reloads for real."""
    assert argv(services["code-server"]["command"])[:3] == ["dagster", "code-server", "start"]


def test_code_server_and_workers_share_one_image_and_the_env_file(services, app_services):
    runs_project_code = {"code-server", "dagster-daemon", "dagster-webserver", "web"}
    runs_project_code |= {n for n in services if n.startswith("worker-")}
    assert runs_project_code <= set(app_services)
    for name, service in app_services.items():
        assert service.get("env_file") == ".env", name


def test_long_running_services_restart_unless_stopped(services):
    for name, service in services.items():
        assert service.get("restart") in {"unless-stopped", ONE_SHOT}, name


def test_dependencies_wait_for_health_or_completion(services):
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            condition = spec.get("condition")
            target = services[dependency]
            if is_long_running(target):
                assert condition == "service_healthy", f"{name} -> {dependency}"
                assert "healthcheck" in target, f"{dependency} has no healthcheck to wait for"
            else:
                assert condition == "service_completed_successfully", f"{name} -> {dependency}"


def test_redis_persists_with_appendonly(services):
    command = argv(services["redis"]["command"])
    assert option_values(command, "--appendonly") == ["yes"]
    assert services["redis"].get("volumes"), "appendonly without a volume loses the file"


def test_postgres_runs_in_utc(services):
    assert "timezone=UTC" in argv(services["postgres"]["command"])


# --- commands exist ---------------------------------------------------------------------------


def help_argv(args: list[str]) -> list[str] | None:
    """``<program> <subcommands...> --help`` for an app command, or None for ``python -c``."""
    if args[0] == "python":
        if args[1] == "-c":
            return None
        if args[1] == "manage.py":
            return [sys.executable, str(ROOT / "manage.py"), args[2], "--help"]
        return [sys.executable, *args[1:3], "--help"]
    program = VENV_BIN / args[0]
    assert program.exists(), f"{args[0]} is not installed by the project"
    subcommands = []
    for arg in args[1:]:
        if arg.startswith("-"):
            break
        subcommands.append(arg)
    return [str(program), *subcommands, "--help"]


def test_every_manage_py_command_exists(app_services):
    commands = get_commands()
    for name, args in app_argvs(app_services):
        if args[:2] == ["python", "manage.py"]:
            assert args[2] in commands, f"{name}: manage.py {args[2]} does not exist"


def test_every_python_module_is_importable_and_inline_code_compiles(app_services):
    for name, args in app_argvs(app_services):
        for module in option_values(args, "-m"):
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"
        for code in option_values(args, "-c") if args[0] == "python" else []:
            compile(code, f"<{name}>", "exec")


def test_every_referenced_file_exists_in_the_project(services, overlay, app_services):
    for name, args in app_argvs(app_services):
        for path in option_values(args, "-w"):
            assert (ROOT / path).is_file(), f"{name}: {path} missing (image WORKDIR is the root)"
    for source in (services, overlay["services"]):
        for name, service in source.items():
            for host_path in volume_sources(service):
                if host_path.startswith("./"):
                    assert (ROOT / host_path).exists(), f"{name} mounts missing {host_path}"


@pytest.mark.subprocess
def test_every_command_and_subcommand_answers_help(app_services):
    """Runs ``--help`` for each distinct program/subcommand, so a renamed CLI fails here."""
    helps = {tuple(h) for _, args in app_argvs(app_services) if (h := help_argv(args))}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_run_help, sorted(helps)))
    failures = [f"{' '.join(h)} -> {rc}: {err[-300:]}" for h, rc, err in results if rc != 0]
    assert not failures, "\n".join(failures)


def _run_help(command: tuple[str, ...]) -> tuple[tuple[str, ...], int, str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    return command, done.returncode, done.stderr


# --- environment ------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
_SETTINGS_ENV = re.compile(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")


def env_refs(node: Any) -> set[str]:
    """Names in ``{"env": NAME}`` nodes of a Dagster instance config."""
    if isinstance(node, dict):
        found = {node["env"]} if set(node) == {"env"} and isinstance(node["env"], str) else set()
        return found.union(*(env_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(env_refs(item) for item in node))
    return set()


def referenced_env_vars(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every variable the stack reads -> where it is read."""
    refs: dict[str, str] = {}
    for path in (COMPOSE, LAUNCHER_OVERLAY):
        refs |= dict.fromkeys(_INTERPOLATION.findall(path.read_text()), path.name)
    for name, service in services.items():
        if "build" in service or service.get("env_file"):
            refs |= dict.fromkeys(service.get("environment", {}), f"{name}.environment")
    for path in (ROOT_INSTANCE, LAUNCHER_INSTANCE):
        refs |= dict.fromkeys(env_refs(load_yaml(path)), path.name)
    for path in sorted((ROOT / "config" / "settings").glob("*.py")):
        refs |= dict.fromkeys(
            _SETTINGS_ENV.findall(path.read_text()), f"config/settings/{path.name}"
        )
    return refs


def test_every_env_var_the_stack_reads_is_documented_in_env_example(services):
    documented = env_example()
    missing = {n: w for n, w in referenced_env_vars(services).items() if n not in documented}
    assert not missing, f"add to .env.example: {missing}"


def test_secrets_the_stack_requires_are_set_in_env_example():
    documented = env_example()
    for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "POSTGRES_PASSWORD", "DAGSTER_PG_PASSWORD"):
        assert documented.get(name), f"{name} must be an uncommented line in .env.example"


def test_launcher_env_vars_are_set_wherever_the_daemon_runs():
    """DockerRunLauncher fails a launch when an env_vars name is unset in the daemon's env."""
    launcher = load_yaml(LAUNCHER_INSTANCE)["run_launcher"]["config"]
    available = {name for name, is_set in env_example().items() if is_set} | dockerfile_env()
    available |= set(load_yaml(LAUNCHER_OVERLAY)["services"]["dagster-daemon"]["environment"])
    names = [entry for entry in launcher["env_vars"] if "=" not in entry]
    assert not [n for n in names if n not in available]
    # The run container loads the job itself: with the daemon's run mode, not its default.
    assert {"VALIDIBOT_RUN_MODE", "VALIDIBOT_EXECUTOR"} <= set(names)


# --- image ------------------------------------------------------------------------------------


def test_the_first_copy_brings_python_version():
    """Both `uv sync` runs must see .python-version, or the first may pick another Python."""
    lines = DOCKERFILE.read_text().splitlines()
    first_copy = next(line for line in lines if line.startswith("COPY"))
    assert ".python-version" in first_copy.split()
    assert (ROOT / ".python-version").is_file()


def test_dockerfile_installs_the_instance_config_and_puts_the_venv_on_path():
    text = DOCKERFILE.read_text()
    assert ROOT_INSTANCE.is_file()
    assert 'cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"' in text
    assert f"WORKDIR {IMAGE_WORKDIR}" in text
    assert "uv sync --frozen --no-dev" in text
    assert {"DAGSTER_HOME", "DJANGO_SETTINGS_MODULE", "PATH"} <= dockerfile_env()


@pytest.mark.parametrize("ignored", [".venv", ".env", ".git", "db.sqlite3"])
def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image(ignored):
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored in lines
