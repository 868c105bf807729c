"""plot's settings, from the environment: the shared ones, the refresh interval, the page, and both drift alarms."""

from __future__ import annotations

from dataclasses import dataclass

from error_stats import DriftSettings, load_drift_settings
from input_drift import InputDriftSettings, load_input_drift_settings

from pipeline.settings import Common, env_float, env_port, load_common, writable_folder


@dataclass(frozen=True)
class Settings:
    common: Common
    interval: float
    web_port: int
    stalled_after: float
    drift: DriftSettings
    inputs: InputDriftSettings


def load_settings() -> Settings:
    common = load_common()
    writable_folder("LOGS_DIR", common.logs_dir)
    return Settings(
        common=common,
        interval=env_float("PLOT_INTERVAL", 2.0, minimum=0.05),
        web_port=env_port("WEB_PORT", 8000),
        stalled_after=env_float("STALLED_AFTER", 15.0, minimum=1.0),
        drift=load_drift_settings(),
        inputs=load_input_drift_settings(),
    )
