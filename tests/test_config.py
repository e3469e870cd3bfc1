"""One precedence order: CLI flag > environment variable > config file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsrarec.config import Settings, load_settings
from mmsrarec.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"MMSRAREC_{name.upper()}", raising=False)
    monkeypatch.delenv("MMSRAREC_CONFIG", raising=False)
    return monkeypatch


def test_defaults(clean_env) -> None:
    settings = load_settings()
    assert settings.cache_dir == Path("~/.cache/mmsrarec").expanduser()
    assert settings.datasets_dir == settings.cache_dir / "data"
    assert settings.model == "smollm2-135m" and settings.seeds == [0, 1, 2]


def test_precedence_flag_over_env_over_file(clean_env, tmp_path: Path) -> None:
    config = tmp_path / "mm.toml"
    config.write_text('model = "from-file"\ndataset = "file-data"\nthreads = 3\n')
    assert load_settings(config).model == "from-file"
    clean_env.setenv("MMSRAREC_MODEL", "from-env")
    settings = load_settings(config)
    assert (settings.model, settings.dataset, settings.threads) == ("from-env", "file-data", 3)
    assert load_settings(config, model="from-flag", dataset=None).model == "from-flag"
    assert load_settings(config, dataset=None).dataset == "file-data"


def test_config_file_from_env_variable(clean_env, tmp_path: Path) -> None:
    config = tmp_path / "mm.toml"
    config.write_text("seeds = [7]\n")
    clean_env.setenv("MMSRAREC_CONFIG", str(config))
    assert load_settings().seeds == [7]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("modle = 'x'\n", "unknown key"),
        ("threads = [\n", "not valid TOML"),
        ("threads = 0\n", "setting `threads`"),
        ("seeds = []\n", "setting `seeds`"),
    ],
)
def test_bad_config_file_names_the_problem(clean_env, tmp_path, content, message) -> None:
    config = tmp_path / "mm.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_missing_config_file_and_bad_env(clean_env, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "none.toml")
    clean_env.setenv("MMSRAREC_THREADS", "many")
    with pytest.raises(ConfigError, match="threads"):
        load_settings()
