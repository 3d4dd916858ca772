"""Recipes: one command runs every stage from nothing, and the card names each stage's command, data and time."""

import json

from worldloom.recipes import arena


def test_arena_recipe_smoke_and_one_stage_rerun(tmp_path):
    out, work = tmp_path / "ckpt", tmp_path / "work"
    base = ["--out", str(out), "--work", str(work), "--scale", "0.001", "--threads", "1"]
    arena.main(base)
    cfg = json.loads((out / "config.json").read_text())
    stages = cfg["recipe"]["stages"]
    assert cfg["recipe"]["order"] == ["collect", "tokenizer", "dynamics", "student"] == list(stages)
    assert stages["dynamics"]["command"].endswith("--only dynamics") and stages["student"]["data"]["teacher"] == str(work / "dynamics")
    assert all(s["seconds"] > 0 for s in stages.values())
    assert cfg["distill"]["recipe"]["object_weight"] == arena.OBJECT_WEIGHT and cfg["sim"]["steps"] == 1
    card = (out / "README.md").read_text()
    assert card.count("## Recipe") == 1 and "--only tokenizer" in card
    # Rerun the last stage alone: its record is replaced, the others kept, the card still has one section.
    before = stages["tokenizer"]
    arena.main(base + ["--only", "student"])
    cfg2 = json.loads((out / "config.json").read_text())
    assert cfg2["recipe"]["stages"]["tokenizer"] == before and (out / "README.md").read_text().count("## Recipe") == 1
