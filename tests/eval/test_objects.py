"""Object scores from ground truth: the detector finds what the truth draws, and only that."""

import numpy as np
import pytest

from worldloom.envs import make
from worldloom.eval.objects import detect, false_objects, haze_objects, objects_from_state, score_objects


def _episode(seed: int = 3, steps: int = 12, n_balls: int = 4):
    """Frames (1, T, 64, 64, 3) and stacked state (1, T, ...) of an arena walk with a ball next to the agent."""
    env = make("arena", n_balls=n_balls)
    _, info = env.reset(seed=seed)
    st = info["state"]
    # Put ball 0 just right of the agent, slow, so it stays fully in view.
    balls = st["ball_pos"].copy()
    balls[0] = st["agent_pos"] + np.array([16.0, 3.0])
    vel = st["ball_vel"].copy()
    vel[0] = (0.5, 0.25)
    frames, states = [env.unwrapped.place(ball_pos=balls, ball_vel=vel)], [env.unwrapped.get_state()]
    for _ in range(steps - 1):
        obs, _, _, _, info = env.step(0)
        frames.append(obs)
        states.append(info["state"])
    stacked = {k: np.stack([np.asarray(s[k], np.float32) for s in states])[None] for k in states[0]}
    return env, np.stack(frames)[None], stacked


def test_state_reports_objects():
    _, _, st = _episode()
    kinds = [o.kind for o in objects_from_state(st)]
    assert kinds == ["agent", "ball", "landmark"]


def test_true_frames_score_full_and_painted_out_zero():
    env, frames, st = _episode()
    res = score_objects({"truth": frames[:, 1:]}, frames, st)
    ball = res["scores"]["truth"]["ball"]["seen"]
    assert ball["permanence_h1_8"] == 1.0
    assert res["scores"]["truth"]["landmark"]["seen"]["permanence_h1_8"] == 1.0
    assert res["false_objects"]["truth"] == 0.0
    # Paint ball 0 out: the same frames re-rendered with it far outside the view.
    painted = frames.copy()
    for t in range(1, frames.shape[1]):
        bp = st["ball_pos"][0, t].copy()
        bp[0, 0] = -1000.0
        painted[0, t] = env.unwrapped.place(agent_pos=st["agent_pos"][0, t], ball_pos=bp)
    det = detect({"painted": painted}, frames, objects_from_state(st))
    vis = det["visible"]["ball"][0, 1:, 0]
    assert vis.all()
    drawn = ~np.isnan(det["centroid"]["painted"]["ball"][0, 1:, 0, 0])
    assert drawn.sum() == 0


def test_noise_draws_no_object_and_a_blurred_ball_still_counts():
    """Uniform noise puts about half its pixels nearest any object's colour, centred on the box: it must not
    count as drawing it. A ball softened by a blur (what a regression model draws) still does."""
    _, frames, st = _episode()
    noise = np.random.default_rng(0).integers(0, 256, frames.shape, dtype=np.uint8)
    pad = np.pad(frames.astype(np.float32), ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    H, W = frames.shape[2:4]
    blurred = (sum(pad[:, :, dy : dy + H, dx : dx + W] for dy in range(3) for dx in range(3)) / 9).round().astype(np.uint8)
    det = detect({"noise": noise, "blurred": blurred}, frames, objects_from_state(st))
    for kind in ("ball", "landmark"):
        vis = det["visible"][kind]
        if not vis.any():
            continue
        assert np.isfinite(det["centroid"]["noise"][kind][..., 0])[vis].mean() == 0.0
    vis = det["visible"]["ball"]
    assert np.isfinite(det["centroid"]["blurred"]["ball"][..., 0])[vis].mean() >= 0.9
    # ... but the contrast says it is soft: the truth keeps all of its colour step, the blur loses some.
    res = score_objects({"truth": frames[:, 1:], "blurred": blurred[:, 1:]}, frames, st, horizons=(1, 2, 4, 8))
    sharp = res["scores"]["truth"]["ball"]["seen"]["contrast_median_h1_11"]
    soft = res["scores"]["blurred"]["ball"]["seen"]["contrast_median_h1_11"]
    assert sharp == 1.0 and 0.6 < soft < 0.95


def test_a_faint_shrunken_ball_in_the_right_place_is_not_drawn():
    """Nearest-colour counting alone takes a faint, shrunken remnant for the object: its inner 3/4 radius,
    60 % of the way from floor to ball, has over half the truth's pixel count nearer the ball's colour. It
    keeps ~1/3 of the colour step, below MIN_CONTRAST: not drawn. The whole ball at 70 % still is."""
    env, frames, st = _episode()
    floorless = frames.copy()
    for t in range(frames.shape[1]):  # the same frames with ball 0 out of the view: the floor it covers
        bp = st["ball_pos"][0, t].copy()
        bp[0, 0] = -1000.0
        floorless[0, t] = env.unwrapped.place(agent_pos=st["agent_pos"][0, t], ball_pos=bp)
    f, g = frames.astype(np.float32), floorless.astype(np.float32)
    soft = (0.7 * f + 0.3 * g).round().astype(np.uint8)
    remnant = floorless.copy()
    H, W = frames.shape[2:4]
    yy, xx = np.mgrid[:H, :W]
    r = float(st["ball_radius"][0, 0, 0])
    for t in range(frames.shape[1]):
        cx, cy = st["ball_pos_view"][0, t, 0]
        inner = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) <= 0.75 * r
        remnant[0, t][inner] = (0.6 * f[0, t] + 0.4 * g[0, t]).round().astype(np.uint8)[inner]
    det = detect({"soft": soft, "remnant": remnant}, frames, objects_from_state(st))
    assert det["visible"]["ball"][0, 1:, 0].all()
    assert np.isfinite(det["centroid"]["soft"]["ball"][0, 1:, 0, 0]).all()
    assert not np.isfinite(det["centroid"]["remnant"]["ball"][0, 1:, 0, 0]).any()


def test_shifted_ball_is_found_with_its_error_or_flagged_false():
    env, frames, st = _episode(n_balls=1)
    vis0 = st["ball_pos_view"][0, :, 0]
    assert ((vis0 > 8) & (vis0 < 56)).all()

    def moved(dx: float, dy: float = 0.0) -> np.ndarray:
        out = frames.copy()
        for t in range(frames.shape[1]):
            bp = st["ball_pos"][0, t].copy()
            bp[0] += (dx, dy)
            out[0, t] = env.unwrapped.place(agent_pos=st["agent_pos"][0, t], ball_pos=bp)
        return out

    near, far = moved(3.0), moved(0.0, -14.0)
    res = score_objects({"near": near[:, 1:], "far": far[:, 1:]}, frames, st, horizons=(1, 2, 4, 8))
    near_ball = res["scores"]["near"]["ball"]["seen"]
    assert near_ball["permanence_h1_8"] == 1.0
    assert near_ball["position_error_median"]["8"] == pytest.approx(3.0, abs=0.6)
    assert near_ball["contrast_median_h1_11"] == pytest.approx(1.0, abs=0.02)  # moved, not softened
    assert res["scores"]["far"]["ball"]["seen"]["permanence_h1_8"] == 0.0  # 14 px away: not where the truth has it
    colors = np.concatenate([o.color[:, 0] for o in objects_from_state(st)], 1)
    assert false_objects(far[:, 1:], frames[:, 1:], colors).all()  # and it is a blob where the truth has none
    assert not false_objects(near[:, 1:], frames[:, 1:], colors).any()


def test_constant_velocity_oracle_and_motion_floor():
    _, frames, st = _episode()
    res = score_objects({"truth": frames[:, 1:]}, frames, st, horizons=(1, 2, 4, 8))
    # No collision in 12 steps: the oracle is exact for the slow ball.
    assert res["scores"]["cv_oracle"]["ball"]["seen"]["position_error_median"]["8"] == pytest.approx(0.0, abs=1e-3)
    m = res["ball_motion"]
    assert m["pairs"] > 0 and m["truth"]["x_floor"] == pytest.approx(1.0)


def test_no_objects_in_state_gives_none():
    frames = np.zeros((1, 3, 16, 16, 3), np.uint8)
    assert score_objects({"m": frames[:, 1:]}, frames, {"camera": np.zeros((1, 3, 2), np.float32)}) is None


def test_spans_reach_h1_16_and_motion_following_tells_truth_from_a_frozen_view():
    from worldloom.eval.object_report import object_metrics

    _, frames, st = _episode(steps=21)  # 20 generated frames: spans h1-8, h1-16, h1-20
    frozen = np.repeat(frames[:, :1], 20, axis=1)  # the context frame held: nothing moves
    res = score_objects({"truth": frames[:, 1:], "frozen": frozen}, frames, st)
    assert res["settings"]["spans"] == [8, 16, 20]
    follow = res["follow"]["ball"]
    # moves are read off the true frames' centroids, so the truth follows all of them; a frozen ball can seem
    # to move once (another ball passes within the detector's window of the true place)
    assert follow["truth"]["h1_16"] == 1.0 and follow["frozen"]["h1_16"] < 0.05
    m = object_metrics(res, "truth")
    assert m["ball_permanence_h1_16"] == 1.0 and m["ball_follow_h1_16"] == follow["truth"]["h1_16"]
    assert m["ball_follow_h1_8"] == 1.0 and m["ball_follow_h1_20"] == 1.0
    assert object_metrics(res, "frozen")["ball_follow_h1_16"] == follow["frozen"]["h1_16"]


def test_a_move_the_frames_do_not_show_is_not_a_move_to_follow():
    """Pong's paddle slides under the top wall: RAM moves it, the screen does not. Such a step is not scored
    (the true frames, scored as a model, would 'fail' it); the steps the frames show still are."""
    floor, green = np.array([144.0, 72.0, 17.0]), np.array([92.0, 186.0, 92.0])
    drawn_y = [14, 12, 10, 8, 6, 6, 6, 6]  # where the frames show the paddle's top; stuck from frame 5 on
    state_y = [14, 12, 10, 8, 6, 4.4, 2.8, 1.2]  # where RAM has it
    N, S = len(drawn_y), 32
    truth = np.tile(floor, (1, N, S, S, 1))
    for t, y in enumerate(drawn_y):
        truth[0, t, y : y + 6, 20:22] = green
    pos = np.array([[[21.0, y + 3.0] for y in state_y]], np.float32)
    state = {"agent_pos_view": pos, "agent_radius": np.full((1, N), 3.0, np.float32),
             "agent_color": np.tile(green.astype(np.float32), (1, N, 1))}
    truth = truth.round().astype(np.uint8)
    frozen = np.repeat(truth[:, :1], N - 1, axis=1)
    res = score_objects({"truth": truth[:, 1:], "frozen": frozen}, truth, state, horizons=(1, 2, 4))
    follow = res["follow"]["agent"]
    assert follow["moving_steps"] == 4  # frames 1-4 move 2 px on screen; 5-7 only in RAM
    assert follow["truth"]["h1_7"] == 1.0 and follow["frozen"]["h1_7"] == 0.0


def test_a_subpixel_ball_is_scored_by_the_colour_the_truth_shows_it_in():
    """Pong's ball at 64 px is 0.8 x 1.6 px: the truth only ever shows it blended with the floor, its peak pixel
    near the midpoint to the full colour. A copy with the tokenizer's few levels of noise must count as drawn
    in every frame (by the full colour's midpoint, noise decided it: about half), a quarter-strength or
    shifted one must not, and a ball too faint in the truth to tell from the floor is not scored."""
    floor, ball = np.array([144.0, 72.0, 17.0]), np.array([236.0, 236.0, 236.0])
    N, S = 24, 32
    rng = np.random.default_rng(0)
    truth = np.tile(floor, (1, N, S, S, 1))
    pos = np.zeros((1, N, 2), np.float32)
    for t in range(N):
        x, y = 6 + t, 10 + (t % 5)
        truth[0, t, y, x] = floor + 0.5 * (ball - floor)  # the peak pixel, at the midpoint
        truth[0, t, y + 1, x] = floor + 0.35 * (ball - floor)
        pos[0, t] = (x + 0.5, y + 1.0)
    state = {"ball_pos_view": pos, "ball_radius": np.full((1, N), 0.8, np.float32),
             "ball_color": np.tile(ball.astype(np.float32), (1, N, 1))}
    noisy = np.clip(truth + rng.normal(0, 3, truth.shape), 0, 255)
    weak = floor + 0.25 * (truth - floor)
    shifted = np.roll(truth, 3, axis=3)
    frames = {k: v.round().astype(np.uint8) for k, v in
              {"noisy": noisy, "weak": weak, "shifted": shifted, "painted": np.tile(floor, (1, N, S, S, 1))}.items()}
    det = detect(frames, truth.round().astype(np.uint8), objects_from_state(state))
    assert det["visible"]["ball"].all()
    drawn = {k: np.isfinite(det["centroid"][k]["ball"][..., 0]).mean() for k in frames}
    assert drawn == {"noisy": 1.0, "weak": 0.0, "shifted": 0.0, "painted": 0.0}
    # A fainter ball (0.3 of its step) 2 px from a paddle's blended edge: painted out, the edge is not the ball.
    green = np.array([92.0, 186.0, 92.0])
    t2 = np.tile(floor, (1, 1, S, S, 1))
    t2[0, 0, 10, 10] = floor + 0.3 * (ball - floor)
    t2[0, 0, 4:18, 13] = floor + 0.5 * (green - floor)  # the paddle's half-covered column
    t2[0, 0, 4:18, 14:16] = green
    st2 = {"ball_pos_view": np.array([[[10.5, 10.5]]], np.float32), "ball_radius": np.full((1, 1), 0.8, np.float32),
           "ball_color": ball[None, None].astype(np.float32), "agent_pos_view": np.array([[[14.5, 11.0]]], np.float32),
           "agent_radius": np.full((1, 1), 7.0, np.float32), "agent_color": green[None, None].astype(np.float32)}
    gone = t2.copy()
    gone[0, 0, 10, 10] = floor
    d2 = detect({"truth": t2.round().astype(np.uint8), "gone": gone.round().astype(np.uint8)}, t2.round().astype(np.uint8),
                objects_from_state(st2))
    assert d2["visible"]["ball"].all() and np.isfinite(d2["centroid"]["truth"]["ball"][..., 0]).all()
    assert not np.isfinite(d2["centroid"]["gone"]["ball"][..., 0]).any()
    # Below MIN_PEAK of its colour step the truth's own ball is indistinguishable from floor noise: not scored.
    dim = floor + 0.2 * (truth - floor)
    assert not detect({}, dim.round().astype(np.uint8), objects_from_state(state))["visible"]["ball"].any()


def test_a_cross_drawn_as_a_blob_is_drawn_but_loses_its_shape():
    """A landmark cross redrawn as a disc of its colour passes permanence (colour, place, contrast): the
    shape IoU is what tells the two apart. The truth scores 1, the blob about the cross's share of the disc."""
    from worldloom.envs.arena import _shape_mask

    H = W = 64
    size, col, floor = 14, np.array([40.0, 170.0, 160.0]), np.array([200.0, 200.0, 190.0])
    cross, disc = _shape_mask("cross", size), _shape_mask("disc", size)

    def frame(mask: np.ndarray) -> np.ndarray:
        f = np.broadcast_to(floor, (H, W, 3)).copy()
        f[25:25 + size, 25:25 + size][mask] = col
        return f.astype(np.uint8)

    truth = np.stack([frame(cross)] * 5)[None]  # (1, 5, H, W, 3)
    blob = np.stack([frame(disc)] * 4)[None]
    st = {"landmark_pos_view": np.full((1, 5, 1, 2), 25 + size / 2, np.float32),
          "landmark_radius": np.full((1, 5, 1), size / 2, np.float32),
          "landmark_color": np.broadcast_to(col.astype(np.float32), (1, 5, 1, 3)).copy()}
    res = score_objects({"truth": truth[:, 1:], "blob": blob}, truth, st, horizons=(1, 2, 4))
    t, b = res["scores"]["truth"]["landmark"]["seen"], res["scores"]["blob"]["landmark"]["seen"]
    assert t["permanence_h1_4"] == 1.0 and b["permanence_h1_4"] == 1.0  # both "drawn"
    assert t["shape_iou_median_h1_4"] == 1.0
    share = cross.sum() / disc.sum()
    assert b["shape_iou_median_h1_4"] == pytest.approx(share, abs=0.1) and b["shape_iou_median_h1_4"] < 0.7


def test_a_half_tone_streak_is_haze_not_a_false_object():
    """A streak of a landmark's colour blended 55 % into the floor, far from the landmark, is more than 40 RGB
    from that colour: no false object, but haze; so is a 20 % one. A 10 % tint, a 1 px line, a wall left out and
    the truth itself are none."""
    H = W = 64
    col, floor = np.array([40.0, 170.0, 160.0]), np.array([200.0, 200.0, 190.0])
    truth = np.broadcast_to(floor, (1, 3, H, W, 3)).copy()
    truth[:, :, 8:16, 8:16] = col  # the landmark, top left

    def streak(a: float, rows: slice = slice(40, 43)) -> np.ndarray:
        f = truth.copy()
        f[:, :, rows, 20:50] = (1 - a) * floor + a * col  # 90 px, far from the landmark
        return f.round().astype(np.uint8)

    colors = col[None, None].astype(np.float32)  # (E, k, 3)
    t = truth.round().astype(np.uint8)
    assert not false_objects(streak(0.55), t, colors).any() and haze_objects(streak(0.55), t, colors).all()
    assert haze_objects(streak(0.2), t, colors).all() and not false_objects(streak(0.2), t, colors).any()
    assert not haze_objects(streak(0.1), t, colors).any() and not haze_objects(t, t, colors).any()
    assert not haze_objects(streak(0.55, slice(40, 41)), t, colors).any()  # a 1 px line: a grid line's width
    walled = truth.copy()
    walled[:, :, 30:40, 20:60] = (255.0, 210.0, 200.0)  # a light wall in the truth, which the model leaves out:
    assert not haze_objects(t, walled.astype(np.uint8), colors).any()  # floor drawn there moves 0.34 towards col
    assert haze_objects(streak(1.0), t, colors).all() and false_objects(streak(1.0), t, colors).all()


def test_a_wall_the_model_leaves_out_is_not_haze_even_where_walls_fill_the_frame():
    """Where walls cover most of the true frame, its median is the wall: the floor a model draws there moves
    towards a light object's colour (the agent's white). Given the world's wall colour, wall pixels are never
    floor, and a blurred wall edge (a floor/wall mix) is not haze either. Without it, the wall left out is one
    wide move, which the model's local drift takes away."""
    H = W = 64
    floor, wall, white = np.array([170.0, 160.0, 160.0]), np.array([38.0, 38.0, 46.0]), np.array([235.0, 235.0, 228.0])
    truth = np.broadcast_to(floor, (1, 2, H, W, 3)).copy()
    truth[:, :, :, :40] = wall  # 62 % of the frame
    truth[:, :, 30:34, 50:54] = white  # the object, far from where the model errs
    gen = np.broadcast_to(floor, truth.shape).copy()
    gen[:, :, 30:34, 50:54] = white
    gen[:, :, :, 38:44] = 0.5 * floor + 0.5 * wall  # and a blurred edge
    t, g, colors = truth.astype(np.uint8), gen.round().astype(np.uint8), white[None, None].astype(np.float32)
    assert not haze_objects(g, t, colors).any()
    assert not haze_objects(g, t, colors, structure=wall.astype(np.float32)).any()


def test_haze_is_a_smear_on_the_models_own_floor_not_a_floor_drawn_in_another_wash():
    """A floor drawn a quarter of the way towards an object's colour over the whole frame (a colour wash that
    drifted) is not haze: the tint is measured against the model's floor nearby. A 25 % streak on top of that
    wash is. Given the wall colour, a faint streak far off the floor-to-wall line is still haze (a wall line
    that took every faint tint missed it), while a blurred wall edge the model draws beside the true wall is not."""
    H = W = 64
    col, floor, wall = np.array([255.0, 140.0, 0.0]), np.array([144.0, 154.0, 137.0]), np.array([40.0, 40.0, 48.0])
    truth = np.broadcast_to(floor, (1, 2, H, W, 3)).copy()
    truth[:, :, 8:16, 8:16] = col  # the object, top left
    colors = col[None, None].astype(np.float32)
    washed = truth.copy()
    washed[:, :, 20:, :] = floor + 0.25 * (col - floor)  # the lower two thirds, in another wash
    t = truth.round().astype(np.uint8)
    assert not haze_objects(washed.round().astype(np.uint8), t, colors).any()
    streaked = washed.copy()
    streaked[:, :, 40:44, 20:44] = floor + 0.5 * (col - floor)  # 25 % past the wash it sits on
    assert haze_objects(streaked.round().astype(np.uint8), t, colors).all()
    faint = truth.copy()
    faint[:, :, 40:44, 20:44] = floor + 0.2 * (col - floor)  # 36 RGB from the floor, under a third of the wall step
    walls = wall.astype(np.float32)
    assert haze_objects(faint.round().astype(np.uint8), t, colors, structure=walls).all()
    walled_t, edge = truth.copy(), truth.copy()
    walled_t[:, :, :, 48:] = wall
    edge[:, :, :, 48:] = wall
    edge[:, :, :, 44:48] = 0.6 * floor + 0.4 * wall  # the wall's edge drawn blurred over the floor beside it
    assert not haze_objects(edge.round().astype(np.uint8), walled_t.round().astype(np.uint8), colors, structure=walls).any()


def test_episode_objects_picks_one_kind_and_names_what_is_missing():
    from worldloom.eval.objects import episode_objects

    T = 3
    state = {"ball_pos_view": np.zeros((T, 2, 2)), "ball_radius": np.full((T, 2), 5.0), "ball_color": np.zeros((T, 2, 3)),
             "agent_pos_view": np.zeros((T, 2)), "agent_radius": np.full(T, 5.0), "agent_color": np.zeros((T, 3))}
    balls = episode_objects(state, "ball")
    assert balls.kind == "ball" and balls.pos_view.shape == (1, T, 2, 2) and balls.radius.shape == (1, T, 2)
    assert episode_objects(state, "agent").pos_view.shape == (1, T, 1, 2)  # one object of a kind is lifted to n = 1
    with pytest.raises(ValueError, match=r"ep 4.*'landmark'.*kinds present: agent, ball"):
        episode_objects(state, "landmark", "ep 4")
