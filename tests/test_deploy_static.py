"""The deployment files, checked without Docker: docker-compose.yml parses and every process it
starts runs a command and an application that exist in this project; the Dockerfile builds the
image the compose file expects; nginx forwards WebSocket upgrades on every WebSocket route."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from django.urls import resolve

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, arguments = full.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def command_words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def manage_commands() -> list[tuple[str, list[str]]]:
    """(service, argv after manage.py) for every service that runs manage.py."""
    found = []
    for name, service in SERVICES.items():
        words = command_words(service.get("command", []))
        if "manage.py" in words:
            found.append((name, words[words.index("manage.py") + 1 :]))
    return found


def nginx_location(prefix: str) -> str:
    match = re.search(r"location\s+" + re.escape(prefix) + r"\s*\{(.*?)\}", NGINX, re.DOTALL)
    assert match, f"nginx.conf has no `location {prefix}` block"
    return match.group(1)


# -- docker-compose.yml ----------------------------------------------------------------------------


def web_services() -> dict[str, list[str]]:
    """The compose services that run a web process (`manage.py serve`): name -> its arguments."""
    return {name: args[1:] for name, args in manage_commands() if args[0] == "serve"}


def serve_options(arguments: list[str]) -> dict:
    """`manage.py serve` arguments as the command parses them (SystemExit on a bad flag)."""
    from django.core.management import load_command_class

    command = load_command_class("realtime", "serve")
    return vars(command.create_parser("manage.py", "serve").parse_args(arguments))


def test_compose_runs_one_scalable_service_of_draining_web_processes():
    from django.conf import settings

    web = web_services()
    assert list(web) == ["web"], f"expected one web service to scale, got {sorted(web)}"
    options = serve_options(web["web"])
    assert options["application"] is None  # settings.ASGI_APPLICATION
    assert settings.ASGI_APPLICATION == "config.asgi.application"
    assert options["host"] == "0.0.0.0" and options["port"] == 8000
    assert options["proxy_headers"] and options["no_worker"] and options["no_services"]
    assert COMPOSE["x-app"]["stop_grace_period"] == "30s"
    service = SERVICES["web"]
    # Two by default, one per core; SWITCHBOARD_WEB_REPLICAS (or --scale web=N) changes it.
    assert service["deploy"]["replicas"] == "${SWITCHBOARD_WEB_REPLICAS:-2}"
    # `--scale` refuses a fixed container name, and replicas cannot share a published host port.
    assert "container_name" not in service and "ports" not in service
    assert service["expose"] == ["8000"]
    assert SERVICES["nginx"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    example = (ROOT / "deploy" / "env.example").read_text()
    assert re.search(r"^SWITCHBOARD_WEB_REPLICAS=2$", example, re.MULTILINE)


def test_compose_has_worker_gateway_redis_and_postgres_with_volumes():
    commands = {name: args[0] for name, args in manage_commands()}
    assert "runworker" in commands.values()
    assert "aprs_gateway" in commands.values()
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    named_volumes = set(COMPOSE["volumes"])
    for service in ("redis", "postgres"):
        mounted = {volume.split(":")[0] for volume in SERVICES[service]["volumes"]}
        assert mounted & named_volumes, f"{service} keeps its data in no named volume"


@pytest.mark.parametrize(("service", "argv"), manage_commands())
def test_every_manage_py_command_in_compose_exists(service, argv):
    assert argv[0] in get_commands(), f"{service} runs `manage.py {argv[0]}`, which does not exist"


def test_compose_worker_serves_channels_the_application_routes():
    from config.asgi import application
    from realtime.worker import channel_route_names

    routed = set(channel_route_names(application))
    workers = [args for _, args in manage_commands() if args[0] == "runworker"]
    assert workers, "no runworker service"
    for args in workers:
        channels = [arg for arg in args[1:] if not arg.startswith("-")]
        assert channels, "runworker without channel names serves nothing"
        assert set(channels) <= routed, f"{channels} not all in the routed channels {routed}"


def test_compose_app_services_run_in_production_mode_with_required_secret():
    for name, service in SERVICES.items():
        if service.get("image", "").startswith("switchboard"):
            environment = service["environment"]
            assert environment["DJANGO_DEBUG"] == "0", name
            assert environment["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?"), name
            assert environment["DATABASE_URL"].startswith("postgresql://"), name
            assert environment["REDIS_URL"].startswith("redis://"), name


# -- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_uses_slim_python_311_and_a_non_root_user():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}


def test_dockerfile_installs_dependencies_before_copying_the_source():
    instructions = dockerfile_instructions()
    copies = [i for i, (keyword, _) in enumerate(instructions) if keyword == "COPY"]
    install = next(
        i for i, (k, a) in enumerate(instructions) if k == "RUN" and "pip install -r" in a
    )
    assert instructions[copies[0]][1].split()[0] == "requirements.txt"
    assert copies[0] < install < copies[1], "dependencies are not in their own layer"


def test_dockerfile_collects_static_files_with_a_build_only_secret():
    runs = [arguments for keyword, arguments in dockerfile_instructions() if keyword == "RUN"]
    collect = next(run for run in runs if "collectstatic" in run)
    assert "DJANGO_SECRET_KEY=" in collect and "DJANGO_DEBUG=0" in collect
    environment = " ".join(a for k, a in dockerfile_instructions() if k in {"ENV", "ARG"})
    assert "SECRET_KEY" not in environment, "the build key must not persist into the image"


def test_dockerfile_cmd_serves_the_real_application_with_draining_daphne():
    cmd = json.loads(next(a for k, a in dockerfile_instructions() if k == "CMD"))
    assert cmd[:3] == ["python", "manage.py", "serve"]
    options = serve_options(cmd[3:])
    assert options["host"] == "0.0.0.0" and options["port"] == 8000
    assert options["proxy_headers"] and options["websocket_connect_timeout"] == 30


def test_dockerfile_healthcheck_hits_the_healthz_endpoint():
    healthcheck = next(a for k, a in dockerfile_instructions() if k == "HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:8000(/\w+)", healthcheck)
    assert url, healthcheck
    from config import health

    assert resolve(url.group(1)).func is health.healthz


# -- nginx ---------------------------------------------------------------------------------------


def test_nginx_upgrades_websockets_for_every_location():
    assert re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade;", NGINX)
    assert re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade;", NGINX)
    assert re.search(r"map\s+\$http_upgrade\s+\$connection_upgrade", NGINX)
    assert "proxy_http_version 1.1;" in NGINX


def test_nginx_ws_location_covers_every_websocket_route():
    import aprs_news.routing
    import chat.routing
    import notifications.routing

    patterns = [
        str(route.pattern)
        for module in (chat.routing, notifications.routing, aprs_news.routing)
        for route in module.websocket_urlpatterns
    ]
    assert patterns, "no WebSocket routes found"
    for pattern in patterns:
        assert pattern.lstrip("^/").startswith("ws/"), f"{pattern} is outside nginx's /ws/"


def test_nginx_balances_over_every_replica_of_the_compose_web_service():
    """One `server web:8000` line: nginx resolves it to every replica's address (Docker's DNS);
    tests/test_nginx_proxy.py runs the config with that line as one line per process."""
    upstream = re.search(r"upstream\s+\w+\s*\{(.*?)\}", NGINX, re.DOTALL).group(1)
    lines = [line.strip() for line in upstream.splitlines() if not line.strip().startswith("#")]
    servers = [line for line in lines if line.startswith("server ")]
    assert servers == ["server web:8000 max_fails=3 fail_timeout=10s;"]
    assert list(web_services()) == ["web"]
    # Connection counts and failures shared by nginx's workers, so least_conn sees them all.
    assert "least_conn;" in lines and re.search(r"^zone \w+ \d+k;$", "\n".join(lines), re.M)
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in SERVICES["nginx"]["volumes"]


def test_nginx_keeps_metrics_private():
    block = nginx_location("= /metrics")
    assert "deny all;" in block


def test_nginx_locations_inherit_the_proxy_headers():
    """A proxy_set_header inside a location drops every server-level one there (Host and the
    X-Forwarded-* headers), which is how the shipped config once answered every page with 400."""
    for block in re.findall(r"location\s+[^{]*\{(.*?)\}", NGINX, re.DOTALL):
        assert "proxy_set_header" not in block, block


def test_nginx_config_runs_on_debian_12_nginx_and_sets_the_client_address_itself():
    assert not re.search(r"^\s*http2\s+on;", NGINX, re.MULTILINE), "`http2 on;` needs nginx 1.25.1"
    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;", NGINX)
    assert "$proxy_add_x_forwarded_for" not in NGINX


def test_compose_redis_has_a_password_that_redis_url_carries_and_the_layer_encrypts():
    redis = SERVICES["redis"]
    command = " ".join(command_words(redis["command"]))
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    assert "--appendonly yes" in command
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")
    for name, service in SERVICES.items():
        if service.get("image", "").startswith("switchboard"):
            environment = service["environment"]
            assert environment["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?"), name
            keys = environment["SWITCHBOARD_LAYER_ENCRYPTION_KEYS"]
            assert keys.startswith("${SWITCHBOARD_LAYER_ENCRYPTION_KEYS:?"), name
            assert environment["DJANGO_EMAIL_URL"].startswith("${DJANGO_EMAIL_URL:?"), name


def test_env_example_names_every_required_compose_variable():
    compose = "\n".join(
        line
        for line in (ROOT / "docker-compose.yml").read_text().splitlines()
        if not line.lstrip().startswith("#")
    )
    required = set(re.findall(r"\$\{(\w+):\?", compose))
    example = (ROOT / "deploy" / "env.example").read_text()
    named = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert required <= named, f"missing from deploy/env.example: {sorted(required - named)}"


def test_deployment_files_point_at_the_deployment_page_that_exists():
    for name in ("Dockerfile", "docker-compose.yml"):
        pointers = re.findall(r"docs/[\w/.-]+\.md", (ROOT / name).read_text())
        assert pointers, f"{name} points at no documentation"
        for pointer in pointers:
            assert (ROOT / pointer).is_file(), f"{name} points at {pointer}, which does not exist"


def test_nginx_lets_attachment_uploads_through_and_serves_no_files_itself():
    """Uploads may be as large as the setting allows on their URL alone; downloads always reach
    the access-checked view (an nginx `root` or `alias` for media would bypass it)."""
    from django.conf import settings

    block = nginx_location("~ ^/rooms/[^/]+/attachments/$")
    megabytes = int(re.search(r"client_max_body_size\s+(\d+)m;", block).group(1))
    needed = settings.CHAT_ATTACHMENT_MAX_BYTES + settings.CHAT_ATTACHMENT_FORM_OVERHEAD
    assert megabytes * 1024 * 1024 >= needed
    assert "proxy_pass http://switchboard;" in block
    assert not re.search(r"^\s*(root|alias)\s", NGINX, re.MULTILINE)


def test_compose_web_processes_share_one_media_volume():
    for name in web_services():
        assert "media:/app/var/media" in SERVICES[name]["volumes"], name
    assert "media" in COMPOSE["volumes"]
