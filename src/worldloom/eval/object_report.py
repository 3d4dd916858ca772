"""The object scores of :func:`worldloom.eval.objects.score_objects` as a report: headline numbers, a table, markdown.

One place turns the scores into what the rollout eval prints, the HTML report's table and the headline
metrics that ``bench --mode matrix`` keeps per row, so the three never disagree.
"""

from __future__ import annotations

from typing import Any

from .objects import FOLLOW_SHARE

NAMES = {"model": "model", "copy_last": "copy last frame", "recon": "tokenizer reconstruction (ceiling)",
         "cv_oracle": "constant-velocity oracle (state)"}


def _columns_rows(obj: dict[str, Any], names: dict[str, str]) -> tuple[list[str], list[list[Any]]]:
    """One row per kind x scored frames: seen permanence per span, entered permanence, median errors."""
    sc, st = obj["scores"], obj["settings"]
    spans, hs = st["spans"], st["horizons"]
    err_hs = [h for h in hs if h in (8, 32) or h == hs[-1]]
    cols = ["kind", "frames"] + [f"seen h1-{u}" for u in spans] + [f"entered h1-{spans[-1]}"] + \
        [f"err px h={h}" for h in err_hs] + [f"contrast h1-{spans[-1]}", f"shape IoU h1-{spans[-1]}"]
    rows = []
    for kind in obj["kinds"]:
        for key, label in names.items():
            if key in sc:
                r = sc[key][kind]
                rows.append([kind, label] + [r["seen"][f"permanence_h1_{u}"] for u in spans] +
                            [r["entered"][f"permanence_h1_{spans[-1]}"]] +
                            [r["seen"]["position_error_median"].get(str(h)) for h in err_hs] +
                            [r["seen"].get(f"{what}_median_h1_{spans[-1]}", "") for what in ("contrast", "shape_iou")])
    return cols, rows


def object_table(obj: dict[str, Any], names: dict[str, str] | None = None) -> Any:
    """The permanence / position-error table of :func:`score_objects` as a report :class:`~worldloom.eval.suite.Table`."""
    from .suite import Table

    cols, rows = _columns_rows(obj, names or NAMES)
    return Table("Objects from ground truth: permanence (share drawn) and median position error (px)", cols, rows)


def object_metrics(obj: dict[str, Any], who: str = "model") -> dict[str, float | None]:
    """Headline numbers of ``who``'s frames: seen permanence and motion following per kind and span, error at
    h=8 / last, false share."""
    st, out = obj["settings"], {}
    for kind in obj["kinds"]:
        r = obj["scores"][who][kind]["seen"]
        for u in st["spans"]:
            out[f"{kind}_permanence_h1_{u}"] = r[f"permanence_h1_{u}"]
        for h in sorted({min(8, st["horizons"][-1]), st["horizons"][-1]}):
            out[f"{kind}_error_px_h{h}"] = r["position_error_median"].get(str(h))
        out[f"{kind}_contrast"] = r.get(f"contrast_median_h1_{st['spans'][-1]}")
        out[f"{kind}_shape_iou"] = r.get(f"shape_iou_median_h1_{st['spans'][-1]}")
    for kind, f in (obj.get("follow") or {}).items():
        for u in st["spans"]:
            out[f"{kind}_follow_h1_{u}"] = (f.get(who) or {}).get(f"h1_{u}")
    out["false_objects"] = obj["false_objects"].get(who)
    out["haze_objects"] = (obj.get("haze_objects") or {}).get(who)
    m = obj.get("ball_motion") or {}
    out["ball_velocity_x_floor"] = (m.get(who) or {}).get("x_floor")
    return out


def format_objects(obj: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """Markdown tables of :func:`score_objects`: permanence and position error per kind, false objects, ball motion."""
    names = names or NAMES
    st = obj["settings"]
    cols, rows = _columns_rows(obj, names)
    cell = lambda x, c: "n/a" if x is None else x if isinstance(x, str) else f"{x:.2f}" if "err" in c or "contrast" in c or "IoU" in c \
        else f"{x:.1%}"  # noqa: E731
    pct = lambda x: "n/a" if x is None else f"{x:.1%}"  # noqa: E731
    px = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    lines = [f"Objects from ground truth (seen: fully in view in the last context frame; drawn: found within "
             f"{st['slack_px']} px of the truth by nearest colour; error: drawn centroid vs true centroid, px; "
             f"contrast: median share of the truth's floor-to-object colour step the drawn objects keep, 1 = as sharp; "
             f"shape IoU: median overlap of the drawn object's pixels with the true ones, centroids aligned, 1 = same outline).", "",
             "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    lines += ["| " + " | ".join(cell(x, c) for x, c in zip(r, cols)) + " |" for r in rows]
    lines += ["", "False objects (share of generated frames): " +
              ", ".join(f"{names.get(k, k)} {v:.1%}" for k, v in obj["false_objects"].items()) + "."]
    if "haze_objects" in obj:
        lines += [f"Object haze (share of generated frames with an object's colour smeared on the floor, {obj['settings'].get('haze_share', 0.3):.0%} "
                  "of the way or more, where the truth has none): " + ", ".join(f"{names.get(k, k)} {v:.1%}" for k, v in obj["haze_objects"].items()) + "."]
    for kind, f in (obj.get("follow") or {}).items():
        lines.append(f"{kind.capitalize()} motion followed (of {f['moving_steps']} true moving steps; moved at least "
                     f"{FOLLOW_SHARE:.2f} of the true step along it): " + ", ".join(
                         f"{names.get(k, k)} " + " / ".join(pct(v[f'h1_{u}']) for u in st["spans"])
                         for k, v in f.items() if isinstance(v, dict)) + " (h1-" + " / h1-".join(map(str, st["spans"])) + ").")
    m = obj.get("ball_motion")
    if m:
        lines.append(f"Ball velocity error h1-{m['horizon']} (px/step; {m['pairs']} true pairs; floor = the true frames, "
                     f"{px(m['floor_px_per_step'])}): " + ", ".join(
                         f"{names.get(k, k)} {px(v['error_px_per_step'])} ({px(v['x_floor'])}x floor, tracked "
                         f"{pct(v['tracked_share'])})" for k, v in m.items() if isinstance(v, dict)) + ".")
    return "\n".join(lines) + "\n"


__all__ = ["NAMES", "format_objects", "object_metrics", "object_table"]
