"""Import a folder of videos with per-frame action logs as a worldloom dataset (``env: "video"``).

Input: ``<src>/<stem>.{mp4,webm,gif}`` each beside an action log ``<stem>.csv`` (header with an
``action`` column and a ``frame`` or a ``time`` column; extra columns ignored) or ``<stem>.jsonl``
(one ``{"frame": i, "action": a}`` or ``{"time": s, "action": a}`` object per line). ``a`` is an int
action id or, given ``action_names``, an action name. See docs/DATA.md.

Design choices:

- Same alignment as collected data: the action logged on frame ``i`` is the one that produced
  frame ``i`` from frame ``i-1``. Frames with no logged action get 0 (no-op); an action logged on
  frame 0 is dropped (nothing produced the first frame) with a warning.
- Strict logs: a frame index past the end of the video, a repeated frame, an unknown name, an id
  outside the ActionSpec or a malformed line is a :class:`DatasetError` naming the file and line;
  a silently shifted log would teach the model wrong actions.
- Action ids must be stable across imports (a held-out set must mean the same ids), so names are
  accepted only with an explicit ``action_names`` list (index 0 = no-op); without it, ids are
  ints and the spec is ``ActionSpec.discrete(max_id + 1)``.
- **Timestamped logs** (``time``, seconds from the video's start) are resampled to the dataset fps:
  frame ``i`` is the video at ``i / fps`` and its action is the one in effect just before (the last
  entry with ``time < i / fps``: an action is held until the next entry). A log entry past the
  video's end is an error (a log longer than its video).
- **All or nothing:** the dataset is written into a staging directory beside ``out`` and moved into
  place only when every video and log has passed (``writer.staged_dataset``): a log found longer than
  its video in the last file leaves no partial dataset, and an earlier one at ``out`` survives.
- **Crop, scale and resampling inside ffmpeg** (``crop``, ``scale`` with area filtering and ``fps``
  filters): a long full-resolution video is never decoded into Python frame by frame. The dataset fps
  is the videos' (they must agree) unless ``fps`` is given; with ``fps`` a video is resampled to it
  (frame logs must then be at that rate already: they name frames, not times).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from worldloom.actions import ActionSpec
from worldloom.data.format import DatasetError, as_fps
from worldloom.data.writer import DatasetWriter, staged_dataset

log = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".webm", ".gif")
LOG_EXTS = (".csv", ".jsonl")
_FFMPEG_EXTS = (".mp4", ".webm")

# (line number, frame index or time in seconds, raw action value) as read from a log, before ids are resolved.
RawEntry = tuple[int, int | float, int | str]


def _read_csv_log(path: Path) -> list[RawEntry]:
    entries: list[RawEntry] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header: list[str] | None = None
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [c.strip().lower() for c in row]
                key = "frame" if "frame" in header else "time"
                if key not in header or "action" not in header:
                    raise DatasetError(f"{path}:{line}: header must name an 'action' and a 'frame' or 'time' column, got {row}")
                fi, ai = header.index(key), header.index("action")
                continue
            if len(row) != len(header):
                raise DatasetError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}: {row}")
            entries.append((line, _index(row[fi].strip(), key, f"{path}:{line}"), row[ai].strip()))
    if header is None:
        raise DatasetError(f"{path}: empty log (expected a 'frame,action' or 'time,action' header)")
    return entries


def _index(v: Any, key: str, where: str) -> int | float:
    """A frame index (int) or a time (finite float >= 0, seconds) from one log field."""
    import math

    if key == "frame":
        try:
            if isinstance(v, bool) or (not isinstance(v, int) and not (isinstance(v, str) and v.lstrip("-").isdigit())):
                raise ValueError
            return int(v)
        except ValueError:
            raise DatasetError(f"{where}: frame {v!r} is not an int") from None
    try:
        t = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        t = math.nan
    if not math.isfinite(t) or t < 0:
        raise DatasetError(f"{where}: time {v!r} is not a number of seconds >= 0")
    return t


def _read_jsonl_log(path: Path) -> list[RawEntry]:
    entries: list[RawEntry] = []
    with open(path, encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{line}: not valid JSON ({e.msg})") from None
            key = "frame" if isinstance(obj, dict) and "frame" in obj else "time"
            if not isinstance(obj, dict) or key not in obj or "action" not in obj:
                raise DatasetError(f'{path}:{line}: expected an object {{"frame": i, "action": a}} or '
                                   f'{{"time": s, "action": a}}, got {text.strip()[:80]}')
            if entries and isinstance(entries[0][1], int) != (key == "frame"):
                raise DatasetError(f"{path}:{line}: mixes 'frame' and 'time' entries; use one per log")
            action = obj["action"]
            if isinstance(action, bool) or not isinstance(action, (int, str)):
                raise DatasetError(f"{path}:{line}: action {action!r} must be an int id or a name")
            entries.append((line, _index(obj[key], key, f"{path}:{line}"), action))
    return entries


def read_action_log(path: str | os.PathLike) -> list[RawEntry]:
    """Parse a ``.csv`` or ``.jsonl`` action log into ``(line, frame, action)`` entries."""
    path = Path(path)
    try:
        if path.suffix == ".csv":
            return _read_csv_log(path)
        if path.suffix == ".jsonl":
            return _read_jsonl_log(path)
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e})") from None
    raise DatasetError(f"{path}: unknown action log type (expected {', '.join(LOG_EXTS)})")


def _resolve(value: int | str, names: Sequence[str] | None) -> int:
    """An action id from a logged value; raises KeyError/ValueError with a readable message."""
    if isinstance(value, int):
        return value
    s = value.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    if names is None:
        raise ValueError(f"action {s!r} is a name; pass action_names=[...] (index 0 = no-op) to map names to ids")
    try:
        return list(names).index(s)
    except ValueError:
        raise ValueError(f"unknown action name {s!r}; known: {list(names)}") from None


def _checked_id(value: int | str, names: Sequence[str] | None, where: str) -> int:
    """A logged value as a valid action id, else a :class:`DatasetError` naming ``where`` (file:line)."""
    try:
        a = _resolve(value, names)
    except ValueError as e:
        raise DatasetError(f"{where}: {e}") from None
    if a < 0 or (names is not None and a >= len(names)):
        top = f"0..{len(names) - 1}" if names is not None else ">= 0"
        raise DatasetError(f"{where}: action id {a} out of range ({top})")
    return a


def _timed_actions(log_path: Path, entries: list[RawEntry], n_frames: int, fps: float, duration: float | None,
                   names: Sequence[str] | None) -> np.ndarray:
    """Actions per frame from a timestamped log: each entry holds until the next; frame i takes the one in
    effect just before ``i / fps``."""
    times, ids = [], []
    for line, t, value in sorted(entries, key=lambda e: e[1]):
        where = f"{log_path}:{line}"
        if duration is not None and t > duration + 1.0 / fps:
            raise DatasetError(f"{where}: time {t:g} s is past the end of the video ({duration:g} s); log longer than video?")
        a = _checked_id(value, names, where)
        times.append(float(t))
        ids.append(a)
    actions = np.zeros(n_frames, dtype=np.int64)
    if times:
        k = np.searchsorted(np.asarray(times), np.arange(n_frames) / fps, side="left") - 1  # last entry strictly before
        actions = np.where(k >= 0, np.asarray(ids, np.int64)[np.clip(k, 0, None)], 0)
    actions[0] = 0  # nothing produced the first frame
    return actions


def _actions_for(log_path: Path, entries: list[RawEntry], n_frames: int, names: Sequence[str] | None) -> np.ndarray:
    actions = np.zeros(n_frames, dtype=np.int64)
    seen: dict[int, int] = {}
    for line, frame, value in entries:
        frame = int(frame)
        where = f"{log_path}:{line}"
        if frame < 0:
            raise DatasetError(f"{where}: negative frame index {frame}")
        if frame >= n_frames:
            raise DatasetError(f"{where}: frame {frame} is past the end of the video ({n_frames} frames); log longer than video?")
        if frame in seen:
            raise DatasetError(f"{where}: frame {frame} already has an action (line {seen[frame]})")
        seen[frame] = line
        a = _checked_id(value, names, where)
        actions[frame] = a
    if actions[0] != 0:
        log.warning("%s: action %d logged on frame 0 dropped (nothing produced the first frame)", log_path, actions[0])
        actions[0] = 0
    return actions


def _read_video(path: Path, frame_size: int, fps: float | None = None) -> tuple[np.ndarray, float | None]:
    """A video centre-cropped, scaled (and, given ``fps``, resampled) by ffmpeg's own filters: uint8
    (T, frame_size, frame_size, 3), and the source duration in seconds (None if unknown)."""
    import imageio_ffmpeg

    s = int(frame_size)
    vf = f"crop='min(iw,ih)':'min(iw,ih)',scale={s}:{s}:flags=area" + (f",fps={fps:g}" if fps else "")
    frames: list[np.ndarray] = []
    duration = None
    try:
        # Without resampling every decoded frame passes once: a GIF's variable delays must not be padded to a constant rate.
        sync = [] if fps else ["-fps_mode", "passthrough"]
        gen: Iterator[Any] = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", vf, *sync])
        meta = next(gen)
        duration = float(meta["duration"]) if meta.get("duration") else None
        for raw in gen:
            frames.append(np.frombuffer(raw, np.uint8).reshape(s, s, 3))
    except Exception as e:  # ffmpeg raises anything from OSError to RuntimeError
        raise DatasetError(f"{path}: cannot decode video ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not frames:
        raise DatasetError(f"{path}: video has no frames")
    return np.stack(frames), duration


def _video_fps(path: Path) -> float | None:
    import imageio.v3 as iio

    try:
        if path.suffix.lower() in _FFMPEG_EXTS:
            fps = iio.immeta(path, plugin="FFMPEG").get("fps")
            return float(fps) if fps else None
        duration = iio.immeta(path).get("duration")  # GIF: ms per frame
        return 1000.0 / float(duration) if duration else None
    except Exception:  # no usable metadata: the caller asks for an explicit fps
        return None


def find_videos(src_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """``(video, log)`` pairs in ``src_dir``, sorted by file name; a video without a log is an error."""
    src = Path(src_dir)
    if not src.is_dir():
        raise DatasetError(f"{src}: source directory not found")
    pairs: list[tuple[Path, Path]] = []
    for video in sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTS):
        logs = [video.with_suffix(ext) for ext in LOG_EXTS if video.with_suffix(ext).is_file()]
        if not logs:
            raise DatasetError(f"{video}: no action log ({video.stem}.csv or {video.stem}.jsonl) beside it")
        if len(logs) > 1:
            raise DatasetError(f"{video}: both {logs[0].name} and {logs[1].name} exist; keep one action log")
        pairs.append((video, logs[0]))
    if not pairs:
        raise DatasetError(f"{src}: no videos ({', '.join('*' + e for e in VIDEO_EXTS)}) found")
    return pairs


def import_videos(
    src_dir: str | os.PathLike,
    out: str | os.PathLike,
    *,
    frame_size: int = 64,
    fps: float | None = None,
    action_names: Sequence[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Import every video in ``src_dir`` (with its action log) as one episode of a dataset at ``out``.

    Args:
        src_dir: folder of ``*.mp4`` / ``*.webm`` / ``*.gif`` with same-stem ``.csv`` / ``.jsonl`` logs.
        out: dataset directory to create (empty or absent unless ``overwrite``).
        frame_size: side of the square frames (centre crop, then resize).
        fps: dataset fps; default: read from the videos, which must agree. Given, every video is
            resampled to it (by ffmpeg) and timestamped logs are placed at its frame times.
        action_names: names of the actions, index = id, 0 = no-op; needed if logs use names.
            Without it the ActionSpec is ``ActionSpec.discrete(max logged id + 1)``.
        overwrite: replace an existing worldloom dataset at ``out``.

    Returns:
        The dataset path.
    """
    names = list(action_names) if action_names is not None else None
    pairs = find_videos(src_dir)
    # Parse and resolve all logs first: a bad line in the last log should fail before any decoding.
    parsed = [(video, log_path, read_action_log(log_path)) for video, log_path in pairs]
    if names is None:
        max_id = 0
        for _, log_path, entries in parsed:
            for line, _, value in entries:
                try:
                    max_id = max(max_id, _resolve(value, None))
                except ValueError as e:
                    raise DatasetError(f"{log_path}:{line}: {e}") from None
        spec = ActionSpec.discrete(max_id + 1)
    else:
        spec = ActionSpec(names=tuple(names))

    resample = fps is not None
    if fps is None:
        rates = [(v, _video_fps(v)) for v, _, _ in parsed]
        unknown = [v for v, r in rates if r is None]
        if unknown:
            raise DatasetError(f"{unknown[0]}: cannot read its frame rate; pass fps=")
        fps = as_fps(round(rates[0][1], 3))  # type: ignore[arg-type]  # 29.97 stays 29.97, 30.0 is 30
        for v, r in rates[1:]:
            if abs(r - fps) > 1e-3 * fps:  # type: ignore[operator]
                raise DatasetError(f"{v}: {r:.5g} fps differs from {rates[0][0].name}'s {fps} fps; pass fps= to override")
    else:
        fps = as_fps(fps)

    with staged_dataset(out, overwrite) as stage, DatasetWriter(
        stage,
        env="video",
        env_kwargs={},
        frame_shape=(frame_size, frame_size, 3),
        fps=fps,
        action_spec=spec,
        policy={"name": "video", "src_dir": str(Path(src_dir).resolve())},
        seed=0,
    ) as writer:
        for video, log_path, entries in parsed:
            timed = bool(entries) and isinstance(entries[0][1], float)
            frames, duration = _read_video(video, frame_size, fps if (resample or timed) else None)
            actions = (_timed_actions(log_path, entries, len(frames), fps, duration, names) if timed
                       else _actions_for(log_path, entries, len(frames), names))
            if len(frames) < 2:
                log.warning("%s: only %d frame; skipped (an episode needs a transition)", video, len(frames))
                continue
            writer.add_episode(frames, actions, None, seed=0, source=video.name)
    return Path(out)


__all__ = ["import_videos", "find_videos", "read_action_log", "VIDEO_EXTS", "LOG_EXTS"]
