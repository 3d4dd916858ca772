"""Datasets: the on-disk episode format, collection from envs, and importers (docs/DATA.md).

- :mod:`~worldloom.data.format`: the layout and ``Dataset`` (read, validate, sample windows);
  :mod:`~worldloom.data.writer`: ``DatasetWriter`` (atomic, one episode at a time).
- :mod:`~worldloom.data.collect`: ``collect()`` episodes of an env into a dataset.
- :mod:`~worldloom.data.video_import`: ``import_videos()`` from videos plus action logs.
"""

from __future__ import annotations

# Imported eagerly on purpose: a lazy wrapper named `collect` would be replaced by the submodule
# `worldloom.data.collect` the moment that is imported. Env modules (pymunk) still load only when
# an env is made.
from worldloom.data.collect import collect, make_env
from worldloom.data.format import Dataset, DatasetError, Episode
from worldloom.data.writer import DatasetWriter
from worldloom.data.video_import import import_videos

__all__ = ["Dataset", "DatasetError", "DatasetWriter", "Episode", "collect", "import_videos", "make_env"]
