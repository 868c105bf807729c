"""Where the model the image trains at build time lives: model.skops beside src/ (/app/model.skops in the image), and
where any model's profile is kept: beside its file.

Its own module so that model.py can name it without importing what training needs (pandas among others).
"""

from pathlib import Path

DEFAULT_MODEL_PATH = str(Path(__file__).resolve().parents[1] / "model.skops")


def profile_path(model_path: str | Path) -> Path:
    """Where a model's profile goes: beside its file, ``.profile.json`` for its suffix (model.profile.json)."""
    path = Path(model_path)
    return path.with_name(f"{path.stem}.profile.json")
