"""The one typed configuration.

Precedence, highest first: CLI flag > environment variable `MMSRAREC_<FIELD>` >
config file (TOML, `--config FILE` or `MMSRAREC_CONFIG`) > default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mmsrarec.errors import ConfigError

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


class ServerSettings(BaseModel):
    """Limits of the web app (`mmsrarec serve`). In a config file: a `[server]` table; in the
    environment: `MMSRAREC_SERVER='{"turn_workers": 4}'` (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(
        default=64 * 1024, ge=1, description="Largest request body, counted on the byte stream."
    )
    turn_workers: int = Field(
        default=2, ge=1, le=64, description="Chat turns of different threads run in parallel."
    )
    turn_queue: int = Field(
        default=16, ge=0, description="Turns that may wait for a worker; beyond: 503."
    )
    turn_timeout_s: float = Field(
        default=120.0, gt=0, description="A turn not answered by then gets 504 (it finishes)."
    )
    sessions_per_minute: float = Field(
        default=30.0, gt=0, description="Sessions one client address may create per minute."
    )
    session_burst: int = Field(
        default=20, ge=1, description="Sessions one client address may create at once."
    )
    api_workers: int = Field(
        default=4, ge=1, le=64, description="Recommendation API requests run in parallel."
    )
    api_queue: int = Field(
        default=64, ge=0, description="API requests that may wait for a worker; beyond: 503."
    )
    api_timeout_s: float = Field(
        default=30.0, gt=0, description="An API request not answered by then gets 504."
    )
    batch_max: int = Field(
        default=16,
        ge=1,
        description="Most requests whose ranker calls are scored in one batch while others "
        "wait (continuous batching; 1: none).",
    )
    batch_lanes: int = Field(
        default=2, ge=1, description="Batches scored at once (one per core is enough)."
    )
    sync_every_s: float = Field(
        default=2.0,
        gt=0,
        description="How often a server takes in items and model versions that other "
        "processes (replicas, the CLI, `train --from-store`) stored.",
    )
    background_keywords: bool = Field(
        default=True,
        description="Write the keywords the catalogue lacks on a worker thread while serving "
        "(all of them from the first start, with a progress bar); off: only `mmsrarec "
        "summarize` writes them, and the server never runs the LLM.",
    )
    retrain_every_minutes: float | None = Field(
        default=None,
        gt=0,
        description="Run `mmsrarec train --from-store` this often while serving (when "
        "feedback or items arrived); default: never.",
    )


class Settings(BaseSettings):
    """Run settings shared by every command. Each field is also `MMSRAREC_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="MMSRAREC_", extra="forbid", validate_default=True)

    cache_dir: Path = Field(
        default=Path("~/.cache/mmsrarec"),
        description="Converted model weights, keyword caches and other derived files.",
    )
    data_dir: Path | None = Field(
        default=None, description="Prepared datasets. Default: `<cache_dir>/data`."
    )
    run_dir: Path = Field(
        default=Path("runs"), description="Trained models, reports, traces of each run."
    )
    dataset: str = Field(default="ml-100k", description="Name of the prepared dataset to use.")
    model: str = Field(
        default="smollm2-135m",
        description="LLM preset (`smollm2-135m`, `gemma3-270m`), Hugging Face id or local path.",
    )
    embedding_model: str = Field(
        default="all-minilm-l6-v2",
        description="Sentence-embedding preset, Hugging Face id or local path.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server (`http://host:port`) for the similar-users index; "
        "default: an embedded store under the dataset dir.",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL (`postgresql://user@host:port/db`) for graph threads and web "
        "sessions, shared by replicas; default: SQLite files in the run dir.",
    )
    session_max_idle_hours: float = Field(
        default=720.0, gt=0, description="Web sessions unused this long are forgotten."
    )
    ray_address: str | None = Field(
        default=None,
        description="Shard evaluation and batch scoring over Ray actors: `local` starts Ray "
        "on this machine, `auto` joins the cluster of `ray start`, or `ray://host:port`; "
        "default: the plain local loop.",
    )
    ray_workers: int | None = Field(
        default=None,
        ge=1,
        description="Ray actors (each loads the model once). Default: the cluster's CPUs "
        "divided by `threads`.",
    )
    llm_server_url: str | None = Field(
        default=None,
        description="An OpenAI-compatible server (`http://host:port/v1`) for the summarizer, "
        "the preference sentence and the yes/no scorer; default: the model in-process.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Keys of the API's writes and per-user reads, comma-separated "
        "(`Authorization: Bearer KEY`); kept only as SHA-256 digests once read.",
    )
    api_key_sha256: list[str] = Field(
        default=[],
        description="SHA-256 digests (hex) of further API keys: a config file need not hold "
        "the keys themselves.",
    )
    seeds: list[int] = Field(default=[0, 1, 2], description="Seeds for training and evaluation.")
    threads: int = Field(default=2, ge=1, description="torch CPU threads.")
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="Where the LLM and the sentence encoder run: `auto` (the GPU when there "
        "is one), `cpu`, `cuda` or `cuda:N`.",
    )
    offline: bool = Field(default=True, description="Never contact a model hub.")
    server: ServerSettings = Field(
        default_factory=ServerSettings, description="Limits of the web app."
    )

    @field_validator("cache_dir", "data_dir", "run_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("give a `postgresql://user@host:port/dbname` URL")
        return value

    @field_validator("api_key_sha256")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError("give SHA-256 digests as 64 hex digits (`sha256sum` prints them)")
        return [digest.lower() for digest in value]

    @field_validator("seeds")
    @classmethod
    def _seeds_not_empty(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("give at least one seed")
        return value

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir if self.data_dir is not None else self.cache_dir / "data"

    @property
    def dataset_dir(self) -> Path:
        return self.datasets_dir / self.dataset

    @property
    def graph_db(self) -> Path:
        """SQLite checkpoint store of the graph's threads (and so of their traces)."""
        return self.run_dir / "graph.sqlite"

    @property
    def chat_db(self) -> Path:
        """SQLite store of the chat's conversations and the web sessions."""
        return self.run_dir / "chat.sqlite"

    @property
    def trace_key(self) -> Path:
        """HMAC key of exported traces (created once, mode 0600): only a trace exported
        with this data dir verifies against it."""
        return self.datasets_dir / "trace.key"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file `{path}` does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file `{path}` is not valid TOML: {exc}") from None
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"config file `{path}` has unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(Settings.model_fields)}"
        )
    return values


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, a config file, the environment and `overrides` (CLI flags).

    `None` overrides are ignored, so CLI options can pass their unset values straight through.
    """
    if config_file is None and os.environ.get("MMSRAREC_CONFIG"):
        config_file = Path(os.environ["MMSRAREC_CONFIG"])
    file_values = _read_config_file(config_file) if config_file else {}
    cli_values = {key: value for key, value in overrides.items() if value is not None}
    try:
        env_values = EnvSettingsSource(Settings)()
        return Settings(**{**file_values, **env_values, **cli_values})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"setting `{where}`: {first['msg']}") from None
    except ValueError as exc:  # an environment variable that is not valid JSON for a list field
        raise ConfigError(f"environment: {exc}") from None


def apply_offline_env(settings: Settings) -> None:
    """Set the hub-offline variables (only where the user has not set them)."""
    if settings.offline:
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
