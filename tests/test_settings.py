"""Settings: every bad variable is refused with a ConfigError naming it; production needs a
SECRET_KEY; development generates one and keeps it (mode 0600); every variable is documented."""

from __future__ import annotations

import inspect
import re
import stat
from pathlib import Path

import pytest

from chatserver import settings as settings_module
from chatserver.settings import ConfigError, Settings, load_settings

GOOD_KEY = "k" * 40
SOURCE = inspect.getsource(settings_module)
OPERATIONS_DOC = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def variables(kind: str) -> list[str]:
    """The variables read through `_<kind>(env, "NAME", ...)` in settings.py."""
    return re.findall(rf'_{kind}\(\s*env,\s*"([A-Z0-9_]+)"', SOURCE)


def all_variables() -> set[str]:
    names = set(re.findall(r'env\.get\(\s*"([A-Z0-9_]+)"', SOURCE))
    for kind in ("int", "float", "bool", "url"):
        names.update(variables(kind))
    return names


def load(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"CHATSERVER_DATA_DIR": str(tmp_path / "data"), **env})


def refused(tmp_path: Path, **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, **{"SECRET_KEY": GOOD_KEY, **env})
    return str(info.value)


def test_the_source_scan_finds_the_variables() -> None:
    assert {"PORT", "DATABASE_URL", "SECRET_KEY", "LOG_FORMAT", "MAX_BODY_BYTES"} <= all_variables()
    assert "PORT" in variables("int")
    assert "AI_DEFAULT_ENABLED" in variables("bool")


def test_defaults(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert (s.host, s.port, s.production) == ("127.0.0.1", 8080, False)
    assert s.database_url is None and s.embedded_db
    assert (s.log_format, s.log_level) == ("text", "INFO")
    assert s.max_body_bytes == 1024 * 1024
    assert len(s.secret_key) >= 32


def test_values_are_parsed(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        HOST="0.0.0.0",
        PORT="9000",
        DATABASE_URL="postgresql://u@db:5432/chat",
        REDIS_URL="redis://cache:6379/0",
        LOG_FORMAT="JSON",
        LOG_LEVEL="debug",
        AI_DEFAULT_ENABLED="off",
        ALLOWED_ORIGINS="https://a.example/, https://b.example",
        SECRET_KEY=f"  {GOOD_KEY}  ",
    )
    assert (s.host, s.port) == ("0.0.0.0", 9000)
    assert s.database_url == "postgresql://u@db:5432/chat" and not s.embedded_db
    assert s.redis_url == "redis://cache:6379/0"
    assert (s.log_format, s.log_level) == ("json", "DEBUG")
    assert s.ai_default_enabled is False
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert s.secret_key == GOOD_KEY


def test_secrets_are_not_in_the_repr(tmp_path: Path) -> None:
    s = load(tmp_path, SECRET_KEY=GOOD_KEY, GROQ_API_KEY="gsk_secret_value")
    assert GOOD_KEY not in repr(s)
    assert "gsk_secret_value" not in repr(s)


# ---- every bad variable is named ---------------------------------------------------------


@pytest.mark.parametrize("name", variables("int"))
def test_every_integer_variable_refuses_garbage_and_names_itself(tmp_path: Path, name: str) -> None:
    assert name in refused(tmp_path, **{name: "lots"})
    assert name in refused(tmp_path, **{name: "1.5"})
    assert name in refused(tmp_path, **{name: str(10**12)})


@pytest.mark.parametrize("name", variables("float"))
def test_every_number_variable_refuses_garbage_and_names_itself(tmp_path: Path, name: str) -> None:
    assert name in refused(tmp_path, **{name: "fast"})
    assert name in refused(tmp_path, **{name: "-1e12"})


@pytest.mark.parametrize("name", variables("bool"))
def test_every_boolean_variable_refuses_garbage_and_names_itself(tmp_path: Path, name: str) -> None:
    assert name in refused(tmp_path, **{name: "maybe"})


@pytest.mark.parametrize("name", variables("url"))
def test_every_url_variable_refuses_a_wrong_scheme_and_names_itself(tmp_path: Path, name: str) -> None:
    assert name in refused(tmp_path, **{name: "ftp://example.com/x"})
    assert name in refused(tmp_path, **{name: "no-scheme-at-all"})


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CHATSERVER_ENV": "staging"}, "CHATSERVER_ENV"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DB_POOL_MIN": "20", "DB_POOL_MAX": "10"}, "DB_POOL_MIN"),
        ({"ALLOWED_ORIGINS": "example.com"}, "ALLOWED_ORIGINS"),
        ({"REDIS_PREFIX": "bad prefix!"}, "REDIS_PREFIX"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ({"PORT": "-1"}, "PORT"),
        ({"PORT": "65536"}, "PORT"),
        ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ],
)
def test_other_bad_values_are_refused_by_name(tmp_path: Path, env: dict[str, str], name: str) -> None:
    assert name in refused(tmp_path, **env)


# ---- the secret key ---------------------------------------------------------------------------


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load(tmp_path, CHATSERVER_ENV="production")
    assert not (tmp_path / "data" / "secret_key").exists(), "production must never fall back to a generated key"


def test_production_refuses_a_short_secret_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load(tmp_path, CHATSERVER_ENV="production", SECRET_KEY="x" * 31)


def test_production_with_a_key_uses_it(tmp_path: Path) -> None:
    s = load(tmp_path, CHATSERVER_ENV="production", SECRET_KEY=GOOD_KEY)
    assert s.production and s.secret_key == GOOD_KEY


def test_development_generates_a_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    first = load(tmp_path)
    key_file = tmp_path / "data" / "secret_key"
    assert key_file.read_text().strip() == first.secret_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32
    assert load(tmp_path).secret_key == first.secret_key, "restarts must keep the key (and every token)"
    assert [p.name for p in key_file.parent.iterdir()] == ["secret_key"], "no temporary file left behind"


def test_development_key_is_not_used_when_secret_key_is_set(tmp_path: Path) -> None:
    load(tmp_path)
    assert load(tmp_path, SECRET_KEY=GOOD_KEY).secret_key == GOOD_KEY


@pytest.mark.parametrize("content", ["", "\n", "tooshort"])
def test_an_unusable_key_file_is_refused_not_used(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "data" / "secret_key"
    key_file.parent.mkdir()
    key_file.write_text(content)
    with pytest.raises(ConfigError, match="SECRET_KEY") as info:
        load(tmp_path)
    assert str(key_file) in str(info.value)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"PORT=9100\nLOG_LEVEL=DEBUG\nSECRET_KEY={GOOD_KEY}\n")
    for name in all_variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOG_LEVEL", "ERROR")
    monkeypatch.setenv("CHATSERVER_DATA_DIR", str(tmp_path / "data"))
    s = load_settings()
    assert (s.port, s.log_level, s.secret_key) == (9100, "ERROR", GOOD_KEY)
    assert load_settings(read_dotenv=False).port == 8080


# ---- documentation ------------------------------------------------------------------------------


def test_every_variable_is_in_the_operations_guide() -> None:
    """docs/operations.md has a row for every variable settings.py reads."""
    doc = OPERATIONS_DOC.read_text()
    missing = sorted(name for name in all_variables() if f"`{name}`" not in doc)
    assert not missing, f"document these in docs/operations.md: {missing}"


def test_the_guide_documents_no_variable_that_does_not_exist() -> None:
    doc = OPERATIONS_DOC.read_text()
    table_rows = re.findall(r"^\| `([A-Z0-9_]+)` \|", doc, flags=re.MULTILINE)
    assert table_rows, "the configuration table is missing"
    assert sorted(set(table_rows) - all_variables()) == []
    assert len(table_rows) == len(set(table_rows)), "a variable is listed twice"
