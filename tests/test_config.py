"""Bootstrap configuration: precedence, validation, messages that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightbox.common import config


def test_defaults_and_data_dir(tmp_path: Path) -> None:
    cfg = config.load(None, tmp_path, env={"HOME": str(tmp_path)})
    assert cfg["log.level"] == "info"
    assert cfg.database_url == f"sqlite+aiosqlite:///{tmp_path}/catalog.db"
    assert cfg.control_endpoint == f"ipc://{tmp_path}/run/control.sock"
    assert cfg.tcp_events is None


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[log]\nlevel = "warning"\nformat = "json"\n[events]\nbuffer = 500\n')
    env = {"HOME": str(tmp_path), "LIGHTBOX_LOG_LEVEL": "error"}
    cfg = config.load(f, tmp_path, env=env, overrides={"log.format": "text"})
    assert cfg["log.level"] == "error"  # env beats file
    assert cfg["log.format"] == "text"  # flags beat env and file
    assert cfg["events.buffer"] == 500
    assert cfg.origins["events.buffer"] == str(f)
    assert cfg.origins["log.level"] == "environment LIGHTBOX_LOG_LEVEL"


@pytest.mark.parametrize(("text", "key", "words"), [
    ('[log]\nlevel = 3\n', "log.level", "expected a string"),
    ('[log]\nlevel = "chatty"\n', "log.level", "one of debug"),
    ('[events]\nbuffer = 5\n', "events.buffer", "at least 100"),
    ('[control]\ntcp = "nohost"\n', "control.tcp", "HOST:PORT"),
    ('[database]\nurl = "oracle://x"\n', "database.url", "unsupported database URL"),
    ('[daemon]\nstop_timeout = "soon"\n', "daemon.stop_timeout", "expected a number"),
    ('log = 1\n', "log", "expected a [log] table"),
    ('[log\n', "", "not valid TOML"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(config.ConfigError) as info:
        config.load(f, tmp_path, env={})
    assert info.value.key == key
    assert words in str(info.value)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml", tmp_path, env={})
    # The default file is optional.
    config.load(None, tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "none")})


def test_tcp_events_default_port(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("")
    cfg = config.load(None, tmp_path, env={
        "LIGHTBOX_CONTROL_TCP": "0.0.0.0:7480", "LIGHTBOX_CONTROL_SERVER_KEY": "k",
        "LIGHTBOX_CONTROL_AUTHORIZED_KEYS": "k"})
    assert cfg.tcp_events == "0.0.0.0:7481"


def test_describe_lists_every_key() -> None:
    text = config.describe()
    for key in config.KEYS:
        assert f"# {key.name.split('.', 1)[1]} = " in text
        assert config.env_var(key) in text
