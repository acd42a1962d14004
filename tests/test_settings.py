from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults_use_the_embedded_store_under_var(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = Settings()
    assert s.resolved_database_url == "sqlite:///var/hazmap.sqlite"
    assert s.port == 8050


def test_environment_overrides_toml(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    Path("hazmap.toml").write_text('port = 9001\nworld_scale = 0.5\n')
    monkeypatch.setenv("HAZMAP_PORT", "9002")
    s = Settings()
    assert s.port == 9002 and s.world_scale == 0.5


def test_unknown_or_bad_settings_are_refused(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    Path("hazmap.toml").write_text('prot = 9001\n')
    with pytest.raises(ValidationError, match="prot"):
        Settings()
    Path("hazmap.toml").write_text('port = "many"\n')
    with pytest.raises(ValidationError, match="port"):
        Settings()
