"""Recipes: one command runs every stage from nothing, and the card names each stage's command, data and time."""

import json

import pytest

from worldloom.recipes import arena, phys2d


def test_arena_recipe_smoke_and_one_stage_rerun(tmp_path):
    out, work = tmp_path / "ckpt", tmp_path / "work"
    base = ["--out", str(out), "--work", str(work), "--scale", "0.001", "--threads", "1"]
    arena.main(base)
    cfg = json.loads((out / "config.json").read_text())
    stages = cfg["rebuild"]["stages"]
    assert cfg["rebuild"]["order"] == ["collect", "tokenizer", "dynamics", "refine", "student"] == list(stages)
    assert stages["dynamics"]["command"].endswith("--only dynamics") and stages["student"]["data"]["teacher"] == str(work / "refine")
    # The refine stage trains on from the dynamics stage's weights with its own recipe: the student's teacher.
    assert stages["refine"]["data"]["init"] == str(work / "dynamics") and cfg["init"]["path"] == str(work / "dynamics")
    assert cfg["recipe"]["flow_pin"] == arena.REFINE.recipe.flow_pin > arena.DYN_RECIPE.flow_pin == 0
    logs = {p.name: p.read_bytes() for p in out.glob("train_log-*.jsonl")}  # both dynamics runs' curves travel
    assert logs["train_log-dynamics.jsonl"] == (work / "dynamics-run" / "log.jsonl").read_bytes()
    assert logs["train_log-dynamics-finetune.jsonl"] == (work / "refine-run" / "log.jsonl").read_bytes()
    assert all(s["seconds"] > 0 for s in stages.values()) and "temporal_decoder" not in cfg
    assert cfg["distill"]["recipe"]["object_weight"] == arena.OBJECT_WEIGHT and cfg["sim"]["steps"] == 1
    assert cfg["recipe"]["loss"] == arena.DYN_RECIPE.loss  # the training recipe stays what --config repeats
    card = (out / "README.md").read_text()
    assert card.count("## Recipe") == 1 and "--only tokenizer" in card
    # A stage interrupted before it finished has no record; --resume counts its earlier sittings' training time.
    record = json.loads((work / "recipe.json").read_text())
    del record["stages"]["dynamics"]
    (work / "recipe.json").write_text(json.dumps(record))
    state = json.loads((work / "dynamics-run" / "train_state.json").read_text())
    (work / "dynamics-run" / "train_state.json").write_text(json.dumps({**state, "elapsed_s": 1000.0}))
    arena.main(base + ["--resume", "--only", "dynamics"])
    assert 1000 < json.loads((work / "recipe.json").read_text())["stages"]["dynamics"]["seconds"] < 1000 + stages["dynamics"]["seconds"] + 120
    # With --decoder the student moves into the work dir and the decoder, trained on its rollouts, writes --out;
    # a stage rerun alone replaces its own record and keeps the others, and the card keeps one section.
    before = stages["tokenizer"]
    for stage in ("student", "decoder"):
        arena.main(base + ["--decoder", "--only", stage])
    cfg2 = json.loads((out / "config.json").read_text())
    stages2 = cfg2["rebuild"]["stages"]
    assert cfg2["rebuild"]["order"] == ["collect", "tokenizer", "dynamics", "refine", "student", "decoder"] == list(stages2)
    assert stages2["tokenizer"] == before and stages2["decoder"]["command"].endswith("--decoder --only decoder")
    assert stages2["decoder"]["data"]["world model"] == str(work / "student") and "temporal_decoder" in cfg2
    assert cfg2["rebuild"]["command"].endswith("--threads 1 --decoder")  # what rebuilds them all, not the last --only
    assert "temporal_decoder" not in json.loads((work / "student" / "config.json").read_text())
    assert (out / "README.md").read_text().count("## Recipe") == 1
    # --memory: its stages train on from the refine stage, one after the other, with a copy gate grown in; the
    # student learns from the last, plays with place_early memory and carries the odometry fit on the data.
    mem_out = tmp_path / "ckpt-memory"
    for stage in ("memory", "jitter", "student"):
        arena.main(["--out", str(mem_out)] + base[2:] + ["--memory", "--only", stage])
    cfg3 = json.loads((mem_out / "config.json").read_text())
    stages3 = cfg3["rebuild"]["stages"]
    assert stages3["memory"]["data"]["init"] == str(work / "refine") and stages3["jitter"]["data"]["init"] == str(work / "memory")
    assert stages3["student"]["data"]["teacher"] == str(work / "jitter") and stages3["student"]["command"].endswith("--memory --only student")
    assert cfg3["dynamics"]["mem_copy"] and cfg3["recipe"]["memory_jitter"] == 0.3 and cfg3["sim"]["memory"] == "place_early"
    assert cfg3["distill"]["recipe"]["teacher_memory"] and cfg3["odometry"]["source"] == "agent_pos"
    assert not json.loads((work / "memory" / "config.json").read_text())["recipe"]["memory_jitter"]
    mem_recipe = json.loads((work / "memory" / "config.json").read_text())["recipe"]  # landmarks painted out of windows
    assert mem_recipe["memory_erase"] == cfg3["recipe"]["memory_erase"] > 0 and mem_recipe["memory_erase_kind"] == "landmark"
    assert mem_recipe["memory_ghost_weight"] == arena.MEM_RECIPE.memory_ghost_weight
    mem_train = json.loads((work / "memory" / "config.json").read_text())["train"]  # the grown gate at its own lr
    assert (mem_train["lr_scale_prefix"], mem_train["lr_scale"]) == ("mem_copy.", arena.MEM_TRAIN.lr_scale) and mem_train["lr_scale"] > 1
    assert cfg3["rebuild"]["command"].endswith("--memory") and "--only" not in (mem_out / "README.md").read_text().split("## Recipe")[1].split("\n")[2]
    assert any("erased_share" in json.loads(line) for line in (work / "memory-run" / "log.jsonl").read_text().splitlines())


def test_a_recipe_without_a_decoder_refuses_the_flag(tmp_path):
    with pytest.raises(SystemExit, match="declares no temporal decoder stage"):
        phys2d.main(["--out", str(tmp_path / "o"), "--work", str(tmp_path / "w"), "--decoder"])
    assert not (tmp_path / "w").exists()


def test_the_shipped_arena_is_what_make_train_arena_runs():
    """The card, config.json and the Makefile agree: one command, and the configs the recipe declares today."""
    from pathlib import Path

    from worldloom.checkpoint import resolve
    from worldloom.config import from_dict, to_dict

    d = resolve("arena")
    cfg = json.loads((d / "config.json").read_text())
    cmd = cfg["rebuild"]["command"]
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert f"train-arena: $(STAMP)\n\t$(BIN)/{cmd}\n" in makefile
    assert f"`{cmd}`" in (d / "README.md").read_text() and cfg["rebuild"]["order"] == arena.STAGES.names(memory=True)
    # The training recipe saved is the last dynamics phase's (the jitter stage), which --config repeats.
    last = arena.MEMORY.stages[-1]
    for section, declared in (("vae", arena.VAE_CFG), ("dynamics", last.dynamics), ("recipe", last.recipe)):
        # as loading reads it: a field added since the checkpoint was written takes its default
        saved = to_dict(from_dict(type(declared), cfg[section], where=f"{d}/config.json:{section}"))
        assert saved == to_dict(declared), section
    assert cfg["train"]["steps"] == last.train.steps and cfg["init"]["trained_steps"] == arena.MEMORY.stages[0].train.steps
    assert (cfg["train"].get("lr_scale_prefix"), cfg["train"].get("lr_scale")) == (last.train.lr_scale_prefix, last.train.lr_scale)
    assert cfg["distill"]["train"]["steps"] == arena.STUDENT.train.steps
    assert to_dict(from_dict(type(arena.MEMORY.student), cfg["distill"]["recipe"])) == to_dict(arena.MEMORY.student)
    assert cfg["sim"]["memory"] == arena.MEMORY.student.memory  # it plays with the memory its student trained with
    assert cfg["env_kwargs"]["control"] == arena.ENV_KWARGS["control"] and cfg["sim"]["steps"] == arena.STAGES.sim_defaults["steps"]
