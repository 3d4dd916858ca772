"""Does a model copy from its memory frames? One generated frame, teacher-forced, with and without them.

    .venv/bin/python tools/memory_copy_probe.py CHECKPOINT DATA [--episodes 60] [--ctx-noise 0,0.5] [--erase KIND]

For each episode and start s (from 16 on, every 8 frames) the DiT sees the 7 true frames before s as
its window (each noised to ``ctx-noise``, as a drifted rollout's window is) and generates frame s in
one step from pure noise under the true action. Its memory is, in turn:

- ``none``: no memory frame (the window alone);
- ``place``: the true frame before s - 1 whose camera view overlaps frame s - 1's most (what place memory
  retrieves with a perfect pose), placed at its true offset in tokens, clean;
- ``oracle``: the true frame s itself, clean, placed from frame s - 1's view as every memory frame is: the
  most a memory frame can tell;
- ``oracle-shifted``: the same frame placed one token off: does the model read the placement?

Prints, per context noise and memory, the PSNR of the decoded frame against the true frame s (pixels
of the agent's box left out), over the starts where ``place`` found a frame; for a ``mem_copy`` model
(models.mem_copy), also how far its copy gate opened on the cells the memory frame covers. A model that copies shows
``oracle`` far above ``none``; the gap that ``place`` closes is what retrieval by place can give it.

With ``--erase KIND`` (e.g. ``landmark``) the objects of that kind are painted out of the window's frames
(training/erase.py), as a rollout that lost them shows them, while frame s and the memory frames keep them.
It then also prints the share of those objects (in view in frame s) drawn in the generated frame
(eval/objects.detect) and the gate on their latent cells: does the model bring back from memory what its
window lost?

With ``--ghost KIND`` (e.g. ``ball``) it also prints, per arm, the share of generated frames with a blob of that
kind's colours where frame s has none (eval/haze.false_objects): does the model copy from memory an object that
has since moved? ``--min-age N`` makes ``place`` retrieve only frames at least N frames before s - 1 (default:
those that left the window), so their objects have had time to move, as at a revisit. For a ``mem_copy`` model it
also prints the ``place`` arm's gate on the cells where the placed frame shows such an object and frame s has none
(training/ghosts.ghost_cells, the cells ``memory_ghost_weight`` weighs): beside the gate on erased landmarks, whether
the gate tells what it must copy from what it must not.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--ctx-noise", default="0,0.5")
    ap.add_argument("--erase", default="", help="object kind painted out of the window's frames")
    ap.add_argument("--ghost", default="", help="object kind whose copies where frame s has none are counted")
    ap.add_argument("--min-age", type=int, default=0, help="place retrieves frames at least this many before s - 1")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    import torch

    import worldloom
    from worldloom.data.format import Dataset
    from worldloom.diffusion.schedules import add_noise, x0_from_v
    from worldloom.memory.base import Geometry
    from worldloom.eval.objects import detect, episode_objects
    from worldloom.models.dit import MemoryFrames
    from worldloom.eval.haze import false_objects
    from worldloom.training.erase import cell_masks, erase_episode
    from worldloom.training.ghosts import GhostMarks, ghost_cells, object_cells

    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = worldloom.load(a.checkpoint, precision="fp32")
    dit, vae = model.dit, model.vae
    window = int(model.config.get("sim", {}).get("window", 8))
    W = window - 1  # true frames before s in the window
    geo = Geometry(model.frame_size, dit.cfg.latent_size, dit.cfg.latent_size // dit.cfg.patch)
    tok = geo.token_px
    ds = Dataset.open(a.data)
    half = 9  # the arena's agent box (envs.registry.ARENA_AGENT_HALF), left out of the score
    size = model.frame_size
    keep = np.ones((size, size), bool)
    keep[size // 2 - half: size // 2 + half, size // 2 - half: size // 2 + half] = False
    arms = ("none", "place", "oracle", "oracle-shifted")
    scores: dict[str, dict[str, list[float]]] = {}
    gates: dict[str, dict[str, list[float]]] = {}
    kept: dict[str, dict[str, list[float]]] = {}  # with --erase: per arm, 1/0 per erased object in view at s
    on_obj: dict[str, dict[str, list[float]]] = {}  # with --erase: the gate on the erased objects' cells
    ghosts: dict[str, dict[str, list[float]]] = {}  # with --ghost: per arm, 1/0 per frame with a false object of the kind
    on_ghost: dict[str, list[float]] = {}  # with --ghost: the place arm's gate on the cells of balls that moved since
    noise_levels = [float(v) for v in a.ctx_noise.split(",")]
    with torch.no_grad():
        for e in range(min(a.episodes, len(ds))):
            ep = ds[e]
            frames = torch.from_numpy(np.array(ep.frames))
            z = vae.encode(frames).float()  # (T, C, h, w)
            zw, cells = z, None  # the window's latents: erased with --erase
            if a.erase:
                er, masks = erase_episode(frames.numpy(), ep.state, a.erase, f"{a.data}: episode {e}")
                zw, cells = vae.encode(torch.from_numpy(er)).float(), cell_masks(masks, dit.cfg.latent_size)
                o = episode_objects(ep.state, a.erase, f"{a.data}: episode {e}")
            if a.ghost:
                gcol = episode_objects(ep.state, a.ghost, f"{a.data}: episode {e}").color[0, 0][None]  # (1, n, 3)
                gc = object_cells(ep.state, a.ghost, len(frames), size, dit.cfg.latent_size, f"{a.data}: episode {e}")
            acts = torch.from_numpy(np.array(ep.actions)).long()
            cam = torch.tensor(np.array(ep.state["camera"]), dtype=torch.float64)  # (T, 2) px (x, y)
            for s in range(max(16, a.min_age + 2), len(frames), 8):
                q = s - 1
                ov = geo.view_overlap(cam[: min(q - W, q - a.min_age) + 1] - cam[q])  # candidates: frames that left the window
                c = int(torch.argmax(ov))
                if float(ov[c]) < 0.25:
                    continue
                clip = torch.cat([zw[s - W: s], z[s: s + 1]])[None]  # (1, window, C, h, w): W context frames, then s
                a_clip = acts[s - W: s + 1][None]
                for cn in noise_levels:
                    ctx_t = torch.full((1, window), cn)
                    ctx = add_noise(clip, torch.randn(clip.shape), ctx_t)
                    t = torch.ones((1, window))
                    x_t = torch.randn(clip.shape)
                    for arm in arms:
                        mem = None
                        if arm != "none":
                            if arm == "place":
                                mz, off = z[c], (cam[c] - cam[q]).flip(0) / tok  # (rows, cols) tokens
                            else:
                                mz = z[s]  # placed as every memory frame is, from frame s - 1's view
                                off = (cam[s] - cam[q]).flip(0) / tok + torch.tensor([0.0, float(arm == "oracle-shifted")],
                                                                                     dtype=torch.float64)
                            mem = MemoryFrames(mz[None, None], torch.zeros((1, 1)),
                                               torch.full((1, 1), float(window - 1 - window), dtype=torch.float64),
                                               off[None, None].double(), torch.ones((1, 1), dtype=torch.bool))
                        v = dit(x_t, t, a_clip, ctx=ctx, ctx_t=ctx_t, memory=mem)
                        x0 = x0_from_v(x_t, v.float(), t[..., None, None, None])[0, -1]  # (C, h, w)
                        img = vae.decode(x0[None])[0].numpy().astype(np.float64)
                        err = ((img - frames[s].numpy()) ** 2)[keep].mean()
                        if a.erase:
                            one = [type(o)(o.kind, o.pos_view[:, s: s + 1], o.radius[:, s: s + 1], o.color[:, s: s + 1])]
                            det = detect({"m": np.clip(np.rint(img), 0, 255).astype(np.uint8)[None, None]},
                                         frames[s].numpy()[None, None], one)
                            vis = det["visible"][a.erase][0, 0]
                            drawn = ~np.isnan(det["centroid"]["m"][a.erase][0, 0, :, 0])
                            kept.setdefault(f"{cn:g}", {}).setdefault(arm, []).extend((drawn[vis]).astype(float).tolist())
                            if dit.mem_copy is not None and mem is not None and cells[s].any():
                                g = dit.mem_copy.last_gate[0, -1, 0]  # (h, w)
                                on_obj.setdefault(f"{cn:g}", {}).setdefault(arm, []).append(float(g[cells[s]].mean()))
                        scores.setdefault(f"{cn:g}", {}).setdefault(arm, []).append(10 * np.log10(255 ** 2 / max(err, 1e-10)))
                        if a.ghost:
                            u8 = np.clip(np.rint(img), 0, 255).astype(np.uint8)[None, None]
                            ghosts.setdefault(f"{cn:g}", {}).setdefault(arm, []).append(
                                float(false_objects(u8, frames[s].numpy()[None, None], gcol)[0, 0]))
                            if dit.mem_copy is not None and arm == "place":  # the gate where the placed frame shows a moved ball
                                gcells = ghost_cells(GhostMarks(gc[c][None, None], gc[s][None]), off[None, None],
                                                     torch.ones((1, 1), dtype=torch.bool), dit.cfg.patch)[0]
                                if gcells.any():
                                    on_ghost.setdefault(f"{cn:g}", []).append(float(dit.mem_copy.last_gate[0, -1, 0][gcells].mean()))
                        if dit.mem_copy is not None and mem is not None:  # how far the copy gate opened where memory covers
                            g = dit.mem_copy.last_gate[0, -1]
                            cover = g > 0
                            gates.setdefault(f"{cn:g}", {}).setdefault(arm, []).append(float(g[cover].mean()) if cover.any() else 0.0)
    out = {cn: {arm: round(float(np.mean(v)), 2) for arm, v in d.items()} | {"starts": len(d["none"])}
           | {f"gate_{arm}": round(float(np.mean(v)), 3) for arm, v in gates.get(cn, {}).items()}
           | {f"kept_{arm}": round(100 * float(np.mean(v)), 1) for arm, v in kept.get(cn, {}).items() if v}
           | {f"gate_obj_{arm}": round(float(np.mean(v)), 3) for arm, v in on_obj.get(cn, {}).items()}
           | {f"ghost_{arm}": round(100 * float(np.mean(v)), 1) for arm, v in ghosts.get(cn, {}).items()}
           | ({"objects": len(kept[cn]["none"])} if cn in kept else {})
           | ({"gate_ghost_place": round(float(np.mean(on_ghost[cn])), 3), "ghost_starts": len(on_ghost[cn])} if on_ghost.get(cn) else {})
           for cn, d in scores.items()}
    if a.json:
        print(json.dumps(out))
        return
    print(f"{a.checkpoint} on {a.data}: PSNR dB of frame s, 1 step, window of {W} true frames at context noise")
    for cn, d in out.items():
        print(f"  context noise {cn} ({d['starts']} starts): " + ", ".join(f"{arm} {d[arm]:.2f}" for arm in arms)
              + "".join(f", copy gate ({arm}) {d['gate_' + arm]:.2f}" for arm in arms if "gate_" + arm in d))
        if a.erase:
            print(f"    {a.erase}s painted out of the window, {d.get('objects', 0)} in view at s, drawn: "
                  + ", ".join(f"{arm} {d['kept_' + arm]:.1f} %" for arm in arms if "kept_" + arm in d)
                  + "".join(f", gate on them ({arm}) {d['gate_obj_' + arm]:.2f}" for arm in arms if "gate_obj_" + arm in d))
        if a.ghost:
            print(f"    frames with a {a.ghost} where frame s has none: "
                  + ", ".join(f"{arm} {d['ghost_' + arm]:.1f} %" for arm in arms if "ghost_" + arm in d)
                  + (f"; place's gate on moved {a.ghost}s' cells {d['gate_ghost_place']:.2f} ({d['ghost_starts']} starts)"
                     if "gate_ghost_place" in d else ""))


if __name__ == "__main__":
    main()
