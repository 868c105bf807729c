"""Where the model the image trains at build time lives: model.skops beside src/ (/app/model.skops in the image).

Its own module so that model.py can name it without importing what training needs (pandas among others).
"""

from pathlib import Path

DEFAULT_MODEL_PATH = str(Path(__file__).resolve().parents[1] / "model.skops")
