"""Configuration: precedence of sources, errors that name key and source, generated secrets."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from gateway.config import SCHEMA, ConfigError, load

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_defaults_put_sqlite_and_secret_in_var_next_to_the_config(tmp_path: Path) -> None:
    config_file = write(tmp_path / "gw.toml", "")
    config = load(str(config_file), environ={})
    assert config.get("http", "listen") == "127.0.0.1:5232"
    assert config.get("smtp", "listen") == "127.0.0.1:2525"
    assert config.data_dir == tmp_path / "var"
    assert config.get("database", "url") == f"sqlite:///{tmp_path / 'var' / 'crm-gateway.sqlite3'}"
    secret = config.get("security", "secret_key")
    assert len(secret) >= 32
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
    # The generated key is kept: a second start reads the same one.
    assert load(str(config_file), environ={}).get("security", "secret_key") == secret


def test_file_overrides_defaults_and_environment_overrides_file(tmp_path: Path) -> None:
    config_file = write(tmp_path / "gw.toml", '[http]\nlisten = "0.0.0.0:8080"\n'
                        '[smtp]\nlisten = "0.0.0.0:25"\n')
    env = {"CRM_GATEWAY_SMTP_LISTEN": "127.0.0.1:2626"}
    config = load(str(config_file), environ=env)
    assert config.get("http", "listen") == "0.0.0.0:8080"
    assert config.get("smtp", "listen") == "127.0.0.1:2626"


def test_config_file_is_found_by_environment_then_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_env = write(tmp_path / "by-env.toml", '[http]\nlisten = "127.0.0.1:1111"\n')
    (tmp_path / "cwd").mkdir()
    write(tmp_path / "cwd" / "crm-gateway.toml", '[http]\nlisten = "127.0.0.1:2222"\n')
    monkeypatch.chdir(tmp_path / "cwd")
    assert load(None, environ={"CRM_GATEWAY_CONFIG": str(by_env)}).get(
        "http", "listen") == "127.0.0.1:1111"
    assert load(None, environ={}).get("http", "listen") == "127.0.0.1:2222"


@pytest.mark.parametrize(
    ("body", "env", "message"),
    [
        ('[http]\nlisten = "nowhere"\n', {},
         r"http\.listen from .*gw\.toml: 'nowhere' is not valid; expected HOST:PORT"),
        ("[http]\nthreads = 0\n", {}, r"http\.threads from .*: 0 is not valid; expected a posit"),
        ('[smtp]\nlogging_address = "not-an-address"\n', {},
         r"smtp\.logging_address from .*: 'not-an-address' .*expected an email address"),
        ('[http]\nlisten_on = "x"\n', {}, r"http\.listen_on in .*gw\.toml: unknown option"),
        ("", {"CRM_GATEWAY_HTTP_THREADS": "many"},
         r"http\.threads from environment CRM_GATEWAY_HTTP_THREADS: 'many' is not valid"),
        ("", {"CRM_GATEWAY_HTTP_LISTN": "x"}, r"CRM_GATEWAY_HTTP_LISTN .*: unknown option"),
        ("[http\n", {}, r"is not valid TOML"),
    ],
)
def test_bad_values_fail_with_one_line_naming_key_and_source(
    tmp_path: Path, body: str, env: dict[str, str], message: str
) -> None:
    config_file = write(tmp_path / "gw.toml", body)
    with pytest.raises(ConfigError) as caught:
        load(str(config_file), environ=env)
    assert re.search(message, str(caught.value)), str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "nope.toml"), environ={})


def test_example_config_documents_every_option_with_its_default() -> None:
    example = ROOT / "conf" / "gateway.toml"
    document = tomllib.loads(example.read_text())
    documented = {f"{section}.{key}": value
                  for section, table in document.items() for key, value in table.items()}
    assert set(documented) == {option.name for option in SCHEMA}
    for option in SCHEMA:
        default = option.default if not isinstance(option.default, tuple) else list(
            option.default)
        assert documented[option.name] == default, option.name
    # And the example itself loads cleanly.
    load(str(example), environ={}, create_data_dir=False)
