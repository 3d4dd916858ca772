"""Atari objects from the emulator's RAM: the positions land where the fitted frame draws the objects, and the
eval's object scores (permanence, motion following) read them with no code of their own."""

import numpy as np
import pytest

from worldloom.envs.atari_state import OFF_VIEW, fit_geometry, game_of, read_state
from worldloom.envs.framing import resize_frame


def test_game_names_from_ids_as_users_spell_them():
    assert game_of("ALE/Pong-v5") == game_of("ale_py:ALE/Pong-v5") == game_of("PongNoFrameskip-v4") == "Pong"
    assert game_of("ALE/Breakout-v5") is None and game_of("CartPole-v1") is None and game_of("Pong") is None


@pytest.mark.parametrize("size,fit", [(64, "pad"), (128, "pad"), (64, "crop"), (50, "stretch"), (96, "crop")])
def test_fit_geometry_is_what_resize_frame_does(size: int, fit: str):
    f = np.zeros((210, 160, 3), np.uint8)
    f[100:116, 138:146] = 255  # an 8 x 16 block centred at (142, 108)
    o = resize_frame(f, size, fit=fit).astype(np.float64)[..., 0]
    yy, xx = np.mgrid[:size, :size] + 0.5
    w = o / o.sum()
    sx, sy, ox, oy = fit_geometry(210, 160, size, fit)
    assert abs((xx * w).sum() - (142 * sx + ox)) < 0.25 and abs((yy * w).sum() - (108 * sy + oy)) < 0.25  # PIL box: sub-px


def test_read_state_follows_the_object_convention_and_hides_the_ball_between_points():
    ram = np.zeros(128, np.uint8)
    ram[49], ram[54], ram[51], ram[50] = 120, 100, 90, 60
    st = read_state("Pong", ram, (1.0, 1.0, 0.0, 0.0))
    assert np.allclose(st["ball_pos_view"], [71.5, 87.3]) and np.allclose(st["agent_pos_view"], [141.5, 84.0])
    assert st["ball_radius"] == 2.0 and st["agent_radius"] == 8.0 and tuple(st["opponent_color"]) == (213, 130, 74)
    ram[54] = 0  # above the playing field: not drawn, so never in view
    assert (read_state("Pong", ram, (1.0, 1.0, 0.0, 0.0))["ball_pos_view"] == OFF_VIEW).all()


PONG_FLOOR = (144, 72, 17)  # the playing field's colour


def _pong(steps: int, size: int = 64, fit: str = "crop"):
    pytest.importorskip("ale_py", reason="needs ale-py (pip install ale-py, or the 'gym' extra)")
    from worldloom.data.collect import stack_state
    from worldloom.envs.gym import make_gym_env

    env = make_gym_env("ALE/Pong-v5", size, fit=fit, frameskip=4, repeat_action_probability=0.0)
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=3)
    frames, states = [obs], [info["state"]]
    for t in range(steps):  # the paddle held up, then down, in runs (RIGHT = up, LEFT = down in Pong)
        obs, _, _, _, info = env.step(2 if (t // 6) % 2 else 3 if rng.random() < 0.9 else 0)
        frames.append(obs)
        states.append(info["state"])
    env.close()
    return np.stack(frames)[None], {k: v[None] for k, v in stack_state(states, 0).items()}


def test_pong_objects_are_found_where_the_ram_puts_them_and_scored():
    from worldloom.eval.objects import detect, objects_from_state, score_objects

    frames, state = _pong(100)
    objs = objects_from_state(state)
    assert [o.kind for o in objs] == ["agent", "ball", "opponent"]
    vis = detect({"truth": frames}, frames, objs)["visible"]
    shown = {o.kind: o.pos_view[..., 0] > 0 for o in objs}
    assert vis["agent"].mean() > 0.6 and vis["ball"].sum() > 0.8 * shown["ball"].sum() > 20  # a 1 x 2 px ball
    # The detector finds each at its RAM position: the true frames score 100 %, the ball painted out 0 %.
    painted = frames.copy()
    for e, t, j in zip(*np.nonzero(vis["ball"])):
        x, y = state["ball_pos_view"][e, t]
        painted[e, t, max(int(y) - 3, 0) : int(y) + 4, max(int(x) - 3, 0) : int(x) + 4] = PONG_FLOOR
    cand = {"truth": frames[:, 1:], "painted": painted[:, 1:], "copy_last": np.repeat(frames[:, :1], 100, 1)}
    res = score_objects(cand, frames, state)
    seen = lambda who, kind: res["scores"][who][kind]["seen"]["permanence_h1_8"]  # noqa: E731
    assert seen("truth", "agent") == 1.0 and res["scores"]["truth"]["ball"]["entered"]["permanence_h1_100"] == 1.0
    assert res["scores"]["painted"]["ball"]["entered"]["permanence_h1_100"] == 0.0
    # The paddle moves with the keys: the true frames follow every moving step, a still view none.
    f = res["follow"]["agent"]
    assert f["moving_steps"] > 20 and f["truth"]["h1_100"] > 0.95 and f["copy_last"]["h1_100"] < 0.1  # RAM vs drawn: ~0.2 px
