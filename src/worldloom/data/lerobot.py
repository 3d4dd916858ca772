"""LeRobot v3 datasets in and out: robot video with continuous actions, without the ``lerobot`` package.

A LeRobot v3 dataset (``codebase_version`` "v3.0") is a directory of::

    meta/info.json                          fps, features (cameras, action, ...), path templates
    meta/episodes/chunk-*/file-*.parquet    one row per episode: length, its data file, its span in each camera's video
    data/chunk-*/file-*.parquet             one row per frame: index, episode_index, frame_index, timestamp, action, ...
    videos/<camera>/chunk-*/file-*.mp4      many episodes per file, each between from_timestamp and to_timestamp

:func:`import_lerobot` reads one camera and the action of chosen episodes into a worldloom dataset;
:func:`export_lerobot` writes a worldloom dataset as one (read with pyarrow and PyAV, the ``lerobot``
extra). Key choices:

- **Alignment.** LeRobot's ``action[t]`` is the command sent at observation ``t``, which leads to
  ``t + 1``; worldloom's ``axes[t]`` produced frame ``t`` from ``t - 1``. So ``axes[t] = action[t - 1]``
  and ``axes[0]`` is at rest; export shifts back (the last frame repeats its command).
- **Ranges** of the action axes (the model's normalisation) come from ``meta/stats.json`` min/max
  when present, else from every episode's actions in ``data/`` (the action column only, no video),
  so a held-out import of other episodes gets the same ranges and plays with the same model.
- **Frames by timestamp.** Each decoded video frame is placed at ``round((pts - from_timestamp) * fps)``
  within its episode, and an episode whose video does not cover every frame is an error naming the file.
- **Resampling.** ``every=k`` keeps every k-th frame (fps / k); ``target_fps`` any rate up to the
  dataset's, keeping at each output time ``j / target_fps`` the last frame shown by then (a 30 fps
  dataset at 20 fps keeps frames 0, 1, 3, 4, 6, ...). The axes of a kept frame are the mean of the
  commands between it and the kept frame before; a discrete id is the one sent at the kept frame before.
- Discrete actions travel as the int64 feature ``action.id`` (names = the ActionSpec's), alongside
  a float ``action`` for the axes, so a worldloom dataset of either kind exports and imports back.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..actions import ActionSpec
from ..config import atomic_write_json, read_json
from .format import Dataset, as_fps
from .writer import DatasetWriter

log = logging.getLogger(__name__)

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
ID_KEY = "action.id"


class LeRobotError(ValueError):
    """A LeRobot dataset is not what it should be; the message names the file or field at fault."""


def _need() -> tuple[Any, Any]:
    try:
        import av
        import pyarrow.parquet as pq
    except ImportError as e:
        raise LeRobotError(f"LeRobot datasets need pyarrow and PyAV: pip install 'worldloom[lerobot]' ({e})") from None
    return pq, av


def _info(src: Path) -> dict[str, Any]:
    f = src / "meta" / "info.json"
    try:
        info = read_json(f)
    except (FileNotFoundError, ValueError) as e:
        raise LeRobotError(f"{e} (not a LeRobot dataset?)") from None
    version = str(info.get("codebase_version", "")) if isinstance(info, dict) else ""
    if not version.startswith("v3"):
        raise LeRobotError(f"{f}: codebase_version {version or 'missing'!r}; only v3 datasets are read (convert older "
                           "ones with lerobot's v2.1 -> v3.0 converter)")
    for key in ("fps", "features", "data_path", "video_path"):
        if key not in info:
            raise LeRobotError(f"{f}: missing {key!r}")
    return info


def _axis_names(feature: dict[str, Any], n: int, key: str) -> list[str]:
    names = feature.get("names")
    if isinstance(names, dict) and len(names) == 1:  # e.g. {"motors": [...]}
        names = next(iter(names.values()))
    if isinstance(names, list) and len(names) == n and all(isinstance(x, str) for x in names) and len(set(names)) == n:
        return names
    return [f"{key}_{i}" for i in range(n)]


def _action_extremes(pq: Any, src: Path, template: str, key: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis min and max (n,) of ``key`` over every data file of the dataset (the action column only);
    the files are those ``template`` (info.json's ``data_path``) names, any chunk and file index."""
    pattern = re.sub(r"\{[^}]*\}", "*", template)
    files = sorted(src.glob(pattern))
    if not files:
        raise LeRobotError(f"{src}: no data files match meta/info.json's data_path {template!r}")
    lo, hi = np.full(n, np.inf), np.full(n, -np.inf)
    for f in files:
        col = pq.read_table(f, columns=[key]).column(key).to_pylist()
        a = np.asarray(col, np.float64)
        if a.ndim == 1 and len(a):
            a = a[:, None]
        if len(a) and (a.ndim != 2 or a.shape[1] != n):
            raise LeRobotError(f"{f}: {key!r} has shape {a.shape[1:]} per row, expected ({n},)")
        if len(a):
            lo, hi = np.minimum(lo, a.min(0)), np.maximum(hi, a.max(0))
    if not np.isfinite(lo).all():
        raise LeRobotError(f"{src}: the data files {pattern!r} hold no {key!r} rows to take axis ranges from")
    return lo, hi


def _decode(av: Any, path: Path, start: float, n: int, fps: float,
            fit: Callable[[np.ndarray], np.ndarray]) -> list[np.ndarray | None]:
    """The n frames of one episode from ``path``, placed by timestamp from ``start`` (s), each passed
    through ``fit`` as it is decoded (so only the small frames are held, never a full-resolution episode)."""
    out: list[np.ndarray | None] = [None] * n
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            c.seek(max(0, int((start - 1.0) / stream.time_base)), stream=stream, backward=True)
            for fr in c.decode(stream):
                if fr.time is None:
                    continue
                i = int(round((fr.time - start) * fps))
                if i >= n:
                    break
                if i >= 0:
                    out[i] = fit(fr.to_ndarray(format="rgb24"))
    except (OSError, av.error.FFmpegError) as e:
        raise LeRobotError(f"{path}: cannot decode ({e})") from None
    return out


def import_lerobot(src: str | os.PathLike, out: str | os.PathLike, *, camera: str | None = None,
                   action_key: str = "action", episodes: list[int] | None = None, frame_size: int = 64,
                   fit: str = "pad", every: int = 1, target_fps: float | None = None, overwrite: bool = False) -> Path:
    """Read a local LeRobot v3 dataset into a worldloom dataset at ``out``; returns its path. ``every`` or
    ``target_fps`` (not both) resample it (module docstring)."""
    from ..envs.framing import resize_frame

    pq, av = _need()
    src = Path(src)
    info = _info(src)
    feats: dict[str, Any] = info["features"]
    cams = [k for k, f in feats.items() if isinstance(f, dict) and f.get("dtype") == "video"]
    if camera is None:
        if len(cams) != 1:
            raise LeRobotError(f"{src}/meta/info.json: {len(cams)} cameras {cams}; choose one with --camera")
        camera = cams[0]
    if camera not in cams:
        raise LeRobotError(f"{src}/meta/info.json: no video feature {camera!r}; cameras: {cams}")
    fa = feats.get(action_key)
    has_axes = isinstance(fa, dict) and str(fa.get("dtype", "")).startswith("float")
    if fa is not None and not has_axes:
        raise LeRobotError(f"{src}/meta/info.json: feature {action_key!r} is {fa.get('dtype')!r}, not a float vector")
    fid = feats.get(ID_KEY)
    if not has_axes and fid is None:
        raise LeRobotError(f"{src}/meta/info.json: no action feature {action_key!r} (features: {sorted(feats)})")
    if every < 1:
        raise LeRobotError(f"every must be >= 1, got {every}")
    fps = float(info["fps"])
    if target_fps is not None:
        if every != 1:
            raise LeRobotError("give every or target_fps, not both")
        if not (math.isfinite(target_fps) and 0 < target_fps <= fps):
            raise LeRobotError(f"target fps {target_fps} must be in (0, {fps:g}], {src}/meta/info.json's fps "
                               "(frames are kept or dropped, never made up)")
    out_fps = fps / every if target_fps is None else float(target_fps)

    ep_files = sorted((src / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not ep_files:
        raise LeRobotError(f"{src}/meta/episodes: no chunk-*/file-*.parquet episode index")
    rows = sorted((r for f in ep_files for r in pq.read_table(f).to_pylist()), key=lambda r: r["episode_index"])
    if episodes is not None:
        known = {r["episode_index"] for r in rows}
        missing = sorted(set(episodes) - known)
        if missing:
            raise LeRobotError(f"{src}: episodes {missing} not in meta/episodes (it has {len(known)})")
        rows = [r for r in rows if r["episode_index"] in set(episodes)]

    tables: dict[Path, Any] = {}
    eps: list[tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None]] = []
    for r in rows:
        e, n = int(r["episode_index"]), int(r["length"])
        dfile = src / info["data_path"].format(chunk_index=r["data/chunk_index"], file_index=r["data/file_index"])
        if dfile not in tables:
            if not dfile.is_file():
                raise LeRobotError(f"{dfile}: missing (episode {e})")
            t = pq.read_table(dfile).to_pydict()
            groups: dict[int, list[int]] = {}
            for i, x in enumerate(t["episode_index"]):  # one pass per file, not one per episode
                groups.setdefault(int(x), []).append(i)
            tables[dfile] = (t, groups)
        t, groups = tables[dfile]
        sel = sorted(groups.get(e, []), key=lambda i: t["frame_index"][i])
        if len(sel) != n:
            raise LeRobotError(f"{dfile}: episode {e} has {len(sel)} rows, meta/episodes says {n}")
        acts = np.asarray([t[action_key][i] for i in sel], np.float64).reshape(n, -1) if has_axes else None
        ids = np.asarray([t[ID_KEY][i] for i in sel], np.int64).reshape(n) if fid is not None else None
        vfile = src / info["video_path"].format(video_key=camera, chunk_index=r[f"videos/{camera}/chunk_index"],
                                                file_index=r[f"videos/{camera}/file_index"])
        if not vfile.is_file():
            raise LeRobotError(f"{vfile}: missing (episode {e}, camera {camera})")
        frames = _decode(av, vfile, float(r[f"videos/{camera}/from_timestamp"]), n, fps,
                         lambda f: resize_frame(f, frame_size, fit=fit))
        gaps = [i for i, f in enumerate(frames) if f is None]
        if gaps:
            raise LeRobotError(f"{vfile}: episode {e} has no video frame for frame_index {gaps[:5]} "
                               f"({len(gaps)} of {n} missing)")
        eps.append((e, np.stack(frames), acts, ids))  # type: ignore[arg-type]

    lo_hi: tuple[np.ndarray, np.ndarray] | None = None
    axis_names: list[str] = []
    if has_axes:
        A = eps[0][2].shape[1] if eps else int(fa["shape"][0])
        stats_f = src / "meta" / "stats.json"
        st = read_json(stats_f).get(action_key, {}) if stats_f.is_file() else {}
        if "min" in st and "max" in st:
            lo, hi, ranges_from = np.asarray(st["min"], np.float64), np.asarray(st["max"], np.float64), "meta/stats.json"
        else:  # every episode's actions, not only the imported ones: any subset imports with the same ranges
            lo, hi = _action_extremes(pq, src, info["data_path"], action_key, A)
            ranges_from = "all episodes in data/"
        pad = np.where(hi > lo, 0.0, 1e-3)  # a constant axis still needs a range
        lo_hi = (np.broadcast_to(lo, A) - pad, np.broadcast_to(hi, A) + pad)
        axis_names = _axis_names(fa, A, action_key)
    names = tuple(fid.get("names") or []) if fid is not None else ()
    if fid is not None and not names:
        names = tuple(f"action_{i}" for i in range(int(max(ids.max() for *_, ids in eps)) + 1))
    from ..envs.keys import axis_spec, derive_keys

    names = names or ("noop",)
    spec = ActionSpec(names=names, keys=derive_keys(names))  # arrows for up/down/left/right, and the like
    if lo_hi is not None:  # the axes, with play keys for the first two as a Box env's get
        spec = axis_spec(*lo_hi, names=axis_names, discrete=spec)
    axes = spec.axes

    kw = {"source": str(src), "camera": camera, "action_key": action_key, "every": every, "fit": fit}
    if target_fps is not None:
        kw["fps"] = as_fps(target_fps)
    if has_axes:
        kw["axis_ranges_from"] = ranges_from
    keeps = [kept_frames(len(f), fps, out_fps) for _, f, _, _ in eps]
    if all(len(k) < 2 for k in keeps):  # before anything is written
        raise LeRobotError(f"{src}: every episode keeps fewer than 2 frames at {out_fps:g} fps; choose a higher rate")
    with DatasetWriter(out, env=f"lerobot:{src.name}", env_kwargs=kw, frame_shape=(frame_size, frame_size, 3),
                       fps=as_fps(out_fps), action_spec=spec, policy={"name": "lerobot", "src": str(src)},
                       seed=0, overwrite=overwrite) as w:
        dropped: list[int] = []
        for (e, frames, acts, ids), keep in zip(eps, keeps):
            if len(keep) < 2:  # no transition left to learn from at this rate
                dropped.append(e)
                continue
            ax = None
            if acts is not None:  # axes[j] = mean of the commands sent between kept frames j-1 and j
                ax = np.stack([spec.rest_axes()] + [acts[keep[j - 1]: keep[j]].mean(0) for j in range(1, len(keep))])
                ax = np.clip(ax, [a.low for a in axes], [a.high for a in axes])
            a = np.zeros(len(keep), np.int64)
            if ids is not None:
                a[1:] = ids[keep[:-1]]  # the command at the kept frame before led here
            w.add_episode(frames[keep], a, seed=e, source=f"{src.name} episode {e}", axes=ax)
        if dropped:
            log.warning("%s: episode(s) %s keep fewer than 2 frames at %g fps; skipped", src, dropped, out_fps)
    return Path(out)


def kept_frames(n: int, fps: float, out_fps: float) -> np.ndarray:
    """Indices of the frames of an ``n``-frame episode at ``fps`` shown at ``out_fps`` (<= fps): at each
    output time ``j / out_fps`` the last frame shown by then (to a microsecond, so 2 fps of 4 keeps 0, 2, 4)."""
    step = fps / out_fps  # >= 1
    idx = np.floor(np.arange(int(np.floor((n - 1) / step + 1e-6)) + 1) * step + 1e-6).astype(np.int64)
    return np.unique(idx[idx < n])


def export_lerobot(data: str | os.PathLike, out: str | os.PathLike, *, camera: str = "observation.images.main",
                   codec: str = "libx264", crf: int = 10, task: str = "play") -> Path:
    """Write the worldloom dataset ``data`` as a LeRobot v3 dataset at ``out`` (one data, one video file)."""
    import pyarrow as pa

    pq, av = _need()
    ds = Dataset.open(data)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise LeRobotError(f"{out}: exists and is not empty")
    spec, fps = ds.action_spec, float(ds.fps)
    H, W, _ = ds.frame_shape
    vfile = out / VIDEO_PATH.format(video_key=camera, chunk_index=0, file_index=0)
    vfile.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[Any]] = {k: [] for k in ("index", "episode_index", "frame_index", "timestamp", "task_index")}
    if spec.n_axes:
        rows["action"] = []
    rows[ID_KEY] = []  # always, even for a single no-op: every export imports back
    eps, cursor, t0 = [], 0, 0.0
    with av.open(str(vfile), "w") as c:
        st = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options={"crf": str(crf)} if codec == "libx264" else {})
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        for e, ep in enumerate(ds):
            n = ep.len
            for i in range(n):
                c.mux(st.encode(av.VideoFrame.from_ndarray(np.asarray(ep.frames[i]), format="rgb24")))
            nxt = np.minimum(np.arange(n) + 1, n - 1)  # LeRobot's action[t] leads to frame t + 1
            rows["index"] += list(range(cursor, cursor + n))
            rows["episode_index"] += [e] * n
            rows["frame_index"] += list(range(n))
            rows["timestamp"] += [i / fps for i in range(n)]
            rows["task_index"] += [0] * n
            if spec.n_axes:
                rows["action"] += np.asarray(ep.axes)[nxt].astype(np.float32).tolist()
            rows[ID_KEY] += np.asarray(ep.actions)[nxt].tolist()
            eps.append({"episode_index": e, "tasks": [task], "length": n, "data/chunk_index": 0, "data/file_index": 0,
                        "dataset_from_index": cursor, "dataset_to_index": cursor + n,
                        f"videos/{camera}/chunk_index": 0, f"videos/{camera}/file_index": 0,
                        f"videos/{camera}/from_timestamp": t0, f"videos/{camera}/to_timestamp": t0 + n / fps,
                        "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            cursor, t0 = cursor + n, t0 + n / fps
        c.mux(st.encode())
    for rel, table in ((DATA_PATH.format(chunk_index=0, file_index=0), rows),
                       ("meta/episodes/chunk-000/file-000.parquet", {k: [r[k] for r in eps] for k in eps[0]}),
                       ("meta/tasks.parquet", {"task_index": [0], "task": [task]})):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(table), out / rel)
    feats: dict[str, Any] = {
        camera: {"dtype": "video", "shape": [3, H, W], "names": ["channels", "height", "width"],
                 "info": {"video.height": H, "video.width": W, "video.codec": codec, "video.pix_fmt": "yuv420p",
                          "video.fps": fps, "video.channels": 3, "has_audio": False}},
        **({"action": {"dtype": "float32", "shape": [spec.n_axes], "names": [a.name for a in spec.axes]}} if spec.n_axes else {}),
        ID_KEY: {"dtype": "int64", "shape": [1], "names": list(spec.names)},
        **{k: {"dtype": d, "shape": [1], "names": None} for k, d in
           (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"), ("index", "int64"), ("task_index", "int64"))},
    }
    atomic_write_json(out / "meta" / "info.json", {
        "codebase_version": "v3.0", "robot_type": None, "total_episodes": len(eps), "total_frames": cursor,
        "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
        "splits": {"train": f"0:{len(eps)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH, "features": feats,
        "source": {"worldloom_dataset": str(data), "env": ds.env}})
    if spec.n_axes:
        a = np.asarray(rows["action"], np.float64)
        atomic_write_json(out / "meta" / "stats.json", {"action": {
            "min": [x.low for x in spec.axes], "max": [x.high for x in spec.axes],  # the ranges, not the data's extremes
            "mean": a.mean(0).tolist(), "std": a.std(0).tolist(), "count": [len(a)]}})
    (out / "README.md").write_text(f"# {out.name}\n\nExported by worldloom from `{data}` ({ds.env}): {len(eps)} episodes, "
                                   f"{cursor} frames at {fps:g} fps, camera `{camera}`.\n\n" + json.dumps(spec.to_dict()) + "\n")
    return out
