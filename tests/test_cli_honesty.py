"""The command line tells the truth, as a real ``crm-gateway`` subprocess.

Run where there is no database, a command says which file it looked for and how to point at
the right one, creates nothing and exits 2. Configuration and database errors, at start-up
of ``serve`` too, are one line and exit 2. A list option from the environment takes one
format, comma-separated, and says so. Output piped into ``head`` ends quietly.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import SCHEMA, load
from gateway.db import Store
from gateway.users import create_user

SCRIPT = str(Path(sys.executable).parent / "crm-gateway")
TIMEOUT = 120  # the machine running the suite is shared and busy


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_GATEWAY_")}
    env.update(settings)
    return env


def crm_gateway(folder: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], cwd=folder, env=clean_env(**settings),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def one_line(stderr: str) -> str:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    return stderr.rstrip("\n")


@pytest.mark.parametrize("command", [
    ["users", "list"], ["--json", "entries", "list"], ["activities", "list"],
    ["mail", "show", "alice"], ["inbound", "list"],
])
def test_a_command_where_there_is_no_database_says_where_it_looked_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    done = crm_gateway(tmp_path, *command)
    assert (done.returncode, done.stdout) == (2, "")
    line = one_line(done.stderr)
    assert line.startswith(f"crm-gateway: no database at {tmp_path}/var/crm-gateway.sqlite3; ")
    assert f"no crm-gateway.toml in {tmp_path}" in line
    assert "--config PATH" in line and "CRM_GATEWAY_DATABASE_URL" in line
    assert list(tmp_path.iterdir()) == []


def test_a_config_whose_database_is_missing_is_named_and_db_upgrade_creates_it(
    tmp_path: Path
) -> None:
    config = tmp_path / "site" / "gw.toml"
    config.parent.mkdir()
    config.write_text('[paths]\ndata_dir = "state"\n')
    done = crm_gateway(tmp_path, "--config", str(config), "users", "list")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"no database at {config.parent}/state/crm-gateway.sqlite3; " in line
    assert f"check database.url and paths.data_dir in {config}" in line
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["gw.toml", "site"]

    created = crm_gateway(tmp_path, "--config", str(config), "db", "upgrade")
    assert created.returncode == 0, created.stderr
    listed = crm_gateway(tmp_path, "--config", str(config), "--json", "users", "list")
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "[]\n", "")
    assert not (config.parent / "state" / "secret_key").exists(), "no key was needed"


def test_database_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    unreachable = "postgresql+psycopg://crm@127.0.0.1:9/crm"
    for command in (["users", "list"], ["serve", "--only", "http"], ["db", "upgrade"]):
        done = crm_gateway(tmp_path, *command, CRM_GATEWAY_DATABASE_URL=unreachable)
        assert done.returncode == 2, (command, done.stderr)
        line = one_line(done.stderr)
        assert line.startswith("crm-gateway: database: cannot use postgresql+psycopg://crm@"), line

    garbage = tmp_path / "not-a-database.sqlite3"
    garbage.write_bytes(b"this is not an SQLite file\n" * 100)
    for command in (["users", "list"], ["serve", "--only", "http"]):
        done = crm_gateway(tmp_path, *command, CRM_GATEWAY_DATABASE_URL=f"sqlite:///{garbage}")
        assert done.returncode == 2, (command, done.stderr)
        assert one_line(done.stderr).startswith("crm-gateway: database: "), done.stderr


def test_configuration_errors_at_start_up_are_one_line_and_exit_2(tmp_path: Path) -> None:
    for settings in ({"CRM_GATEWAY_HTTP_LISTEN": "nowhere"},
                     {"CRM_GATEWAY_HTTP_THREADS": "many"},
                     {"CRM_GATEWAY_NO_SUCH_OPTION": "1"}):
        done = crm_gateway(tmp_path, "serve", **settings)
        assert done.returncode == 2
        assert one_line(done.stderr).startswith("crm-gateway: configuration: ")
    assert list(tmp_path.iterdir()) == []


LIST_OPTIONS = [option for option in SCHEMA if option.is_list]


def test_every_list_option_documents_its_environment_format() -> None:
    example = (Path(__file__).parent.parent / "conf" / "gateway.toml").read_text()
    assert "comma-separated" in example.split("[database]")[0]
    for option in LIST_OPTIONS:
        assert option.example and "[" not in option.example, option.name
        parsed = load(None, environ={option.env: option.example}, create_data_dir=False)
        assert parsed.get(option.section, option.key) == tuple(option.example.split(","))


@pytest.mark.parametrize("option", LIST_OPTIONS, ids=[o.name for o in LIST_OPTIONS])
def test_a_list_from_the_environment_is_comma_separated_and_nothing_else(
    tmp_path: Path, option: object
) -> None:
    from gateway.config import Option

    assert isinstance(option, Option)
    spaced = option.example.replace(",", ", ")
    parsed = load(None, environ={option.env: spaced}, create_data_dir=False)
    assert parsed.get(option.section, option.key) == tuple(option.example.split(","))

    toml_style = "[" + ", ".join(f'"{item}"' for item in option.example.split(",")) + "]"
    done = crm_gateway(tmp_path, "users", "list", **{option.env: toml_style})
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"crm-gateway: configuration: {option.env} in the environment: {toml_style!r} is not "
        "valid; a list there is comma-separated, without brackets or quotes, e.g. "
        f"{option.env}={option.example}"
    )


def test_output_piped_into_head_ends_quietly(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    try:
        with store.transaction() as session:
            for n in range(1500):  # far more than a pipe holds
                create_user(session, f"user{n:04d}", f"user{n:04d}@acme.example",
                            name=f"User number {n}")
    finally:
        store.dispose()
    env = clean_env(CRM_GATEWAY_DATABASE_URL=database_url)
    for args in (["users", "list"], ["--json", "users", "list"]):
        shell = f"{shlex.quote(SCRIPT)} {' '.join(args)} | head -n 2"
        done = subprocess.run(["bash", "-c", f"set -o pipefail; {shell}"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
        assert done.stderr == ""
        assert done.stdout.count("\n") == 2
        assert done.returncode == 141  # as for any command that SIGPIPE ends

        with subprocess.Popen([SCRIPT, *args], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as reader:
            assert reader.stdout is not None and reader.stderr is not None
            reader.stdout.read(10)
            reader.stdout.close()
            assert reader.stderr.read() == b""
            assert reader.wait(TIMEOUT) == 141
