"""The repository checker: every seeded mistake is reported with its model and field; clean repositories pass."""
from __future__ import annotations

import shutil

import pytest
from triton_seeds import SEEDS, broken_copy

from export.triton.check import Problem, check_repository

P = "tvreid_"


def _fields(problems) -> set[tuple[str, str]]:
    return {(p.model, p.field) for p in problems}


def _edit(repo, model, old, new):
    config = repo / model / "config.pbtxt"
    text = config.read_text()
    assert old in text, (model, old)
    config.write_text(text.replace(old, new, 1))


def test_the_four_seeded_mistakes_are_each_named(demo_repos, tmp_path):
    problems = check_repository(broken_copy(demo_repos["cpu"], tmp_path / "broken"))
    for seed in SEEDS:
        hits = [p for p in problems if p.model == seed.model and p.field == seed.field]
        assert hits and seed.term in str(hits[0]), (seed, [str(p) for p in problems])
    # the one knock-on: the ensemble's first step does not parse (no "used before produced" noise after it)
    assert _fields(problems) - {(s.model, s.field) for s in SEEDS} == {
        (P + "text_query", "ensemble_scheduling.step[0].model_name")}


def test_onnxruntime_models_are_checked_against_their_graph(demo_repos, tmp_path):
    repo = tmp_path / "gpu"
    shutil.copytree(demo_repos["gpu"], repo)
    _edit(repo, P + "video_encoder", 'name: "frames"', 'name: "pixels"')
    _edit(repo, P + "frame_encoder", "dims: 64\n", "dims: 65\n")
    problems = check_repository(repo)
    assert (P + "video_encoder", "input[pixels]") in _fields(problems)
    assert (P + "video_encoder", "input[frames]") in _fields(problems)  # the graph's input left undeclared
    assert (P + "frame_encoder", "input[frames].dims") in _fields(problems)


def test_files_names_and_platforms(demo_repos, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(demo_repos["gpu"], repo)
    (repo / (P + "frame_encoder") / "1" / "model.onnx").unlink()
    _edit(repo, P + "video_encoder", f'name: "{P}video_encoder"', 'name: "video"')
    _edit(repo, P + "text_encoder", 'platform: "onnxruntime_onnx"', 'platform: "onnx_runtime"')
    shutil.copytree(repo / (P + "tokenizer") / "1", repo / (P + "tokenizer") / "x")
    shutil.rmtree(repo / (P + "tokenizer") / "1")
    (repo / "empty").mkdir()
    fields = _fields(check_repository(repo))
    assert {(P + "frame_encoder", "1/model.onnx"), (P + "video_encoder", "name"), (P + "text_encoder", "platform"),
            (P + "tokenizer", "version"), ("empty", "config.pbtxt")} <= fields


def test_ensemble_wiring(demo_repos, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(demo_repos["cpu"], repo)
    query = P + "text_query"
    _edit(repo, query, "max_batch_size: 64", "max_batch_size: 128")
    _edit(repo, query, 'key: "embeddings"\n      value: "embeddings"', 'key: "embedding"\n      value: "embeddings"')
    _edit(repo, query, 'key: "truncated"\n      value: "truncated"', 'key: "truncated"\n      value: "eot_index"')
    _edit(repo, P + "tokenizer", 'name: "eot_index"\n  data_type: TYPE_INT32',
          'name: "eot_index"\n  data_type: TYPE_INT64')
    problems = check_repository(repo)
    fields = _fields(problems)
    assert (query, "max_batch_size") in fields
    assert (query, "ensemble_scheduling.step[1].output_map[embedding]") in fields  # not an output of the encoder
    assert (query, "output[embeddings]") in fields  # so nothing produces the ensemble output
    assert (query, "ensemble_scheduling.step[0].output_map[truncated]") in fields  # eot_index produced twice
    dtype = [p for p in problems if p.field == "ensemble_scheduling.step[1].input_map[eot_index]"]
    assert dtype and "TYPE_INT64" in dtype[0].message and "TYPE_INT32" in dtype[0].message


def test_unparsable_enum_names_its_field(tmp_path):
    model = tmp_path / "m"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "m"\nbackend: "python"\ninput [ { name: "a" data_type: TYPE_INT33 '
                                        "dims: [ 1 ] } ]\n")
    (model / "1" / "model.py").write_text("")
    assert _fields(check_repository(tmp_path)) == {("m", "data_type")}
    assert check_repository(tmp_path / "nothing") == [Problem(str(tmp_path / "nothing"), "repository",
                                                              "no such directory")]


@pytest.mark.parametrize("variant", ["gpu", "cpu"])
def test_clean_repositories_pass(demo_repos, variant):
    assert check_repository(demo_repos[variant]) == []
