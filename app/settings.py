"""The one settings object: defaults <- optional hazmap.toml <- HAZMAP_* environment.

Created once by the CLI and passed down; no other module reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAZMAP_", toml_file="hazmap.toml", extra="forbid")

    var_dir: Path = Field(DEFAULT_VAR_DIR, description="working files: the embedded database, exports, caches")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; postgresql+psycopg://… for PostGIS, empty for the embedded SQLite file "
        "var_dir/hazmap.sqlite",
    )
    host: str = Field("127.0.0.1", description="address the web app listens on")
    port: int = Field(8050, description="port of the web app")
    tile_url: str = Field(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="basemap tile URL (WGS-84 / Web Mercator tiles: OSM, Tianditu with its key, an internal server)",
    )
    tile_attribution: str = Field("© OpenStreetMap contributors", description="basemap attribution")
    world_seed: int = Field(20211, description="seed of the demo world")
    world_scale: float = Field(1.0, description="fraction of Ningbo's real counts in the demo world")
    language: str = Field("zh", description="screen language: zh or en")
    jt808_in_serve: bool = Field(True, description="run the JT/T 808 gateway inside `hazmap serve` / `hazmap demo`")
    jt808_host: str = Field("127.0.0.1", description="JT/T 808 gateway listen address (0.0.0.0 for terminals on the network)")
    jt808_port: int = Field(7808, description="JT/T 808 gateway TCP port")
    jt808_stats_port: int = Field(7809, description="port of the gateway's feed-health JSON (GET /stats)")
    jt808_auth_secret: str = Field(
        "", description="secret the terminals' auth codes derive from; empty: a new one per start (terminals re-register)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'hazmap.sqlite').as_posix()}"
