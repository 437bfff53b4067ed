"""Config validation: every bad key fails fast and names itself."""

import copy

import pytest
import yaml

from mtrec.config import apply_overrides, load_config, parse_config
from mtrec.errors import ConfigError
from mtrec.quickstart import QUICKSTART_CONFIG, SHARED_BOTTOM_MODEL
from tests.conftest import REPO


def _raw(**changes):
    raw = copy.deepcopy(QUICKSTART_CONFIG)
    raw.update(changes)
    return raw


def test_quickstart_config_parses_with_defaults():
    config = parse_config(QUICKSTART_CONFIG)
    assert config.model.kind == "mmoe" and config.model.params["num_experts"] == 8
    assert config.training.steps_per_execution >= 1
    assert [t.name for t in config.tasks] == ["y0", "y1"]
    # The resolved config parses back to itself.
    assert parse_config(config.get_config()).get_config() == config.get_config()


def test_config_files_mirror_the_quickstart():
    assert yaml.safe_load((REPO / "configs/quickstart.yaml").read_text()) == QUICKSTART_CONFIG
    shared = yaml.safe_load((REPO / "configs/synthetic_shared_bottom.yaml").read_text())
    assert shared["model"] == SHARED_BOTTOM_MODEL


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    # Pipeline and recommendation configs wrap experiments in their own schemas.
    if path.name.startswith("pipeline_"):
        from mtrec.pipelines.config import load_pipeline_config
        load_pipeline_config(path)
    elif path.name.startswith("recommend_"):
        from mtrec.recommend.config import load_recommend_config
        load_recommend_config(path)
    else:
        load_config(path)


@pytest.mark.parametrize("change,pattern", [
    ({"trainig": {}}, r"Unknown config key 'trainig'.*Did you mean 'training'"),
    ({"model": {"kind": "mmoe", "num_expert": 4}}, r"'model.num_expert'.*Did you mean 'num_experts'"),
    ({"model": {"kind": "mmoe", "num_experts": "eight"}}, r"'model.num_experts' must be an integer"),
    ({"model": {"kind": "mmoee"}}, r"'model.kind'.*one of \['cgc', 'cross_stitch', 'mmoe', 'omoe', 'ple', 'shared_bottom', 'single_task', 'soft_sharing'\]"),
    ({"model": {"num_experts": 4}}, r"'model.kind'"),
    ({"model": {"kind": "cgc", "num_levels": 2}}, r"Unknown config key 'model.num_levels'"),
    ({"model": {"kind": "mmoe", "expert_kind": "dcnv2"}}, r"'model.expert_kind'.*\['mlp', 'dcn'\].*Did you mean 'dcn'"),
    ({"tasks": [{"name": "y0", "kind": "ranking"}]}, r"'tasks\[0\].kind'.*one of"),
    ({"training": {"epochs": "ten"}}, r"'training.epochs' must be an integer"),
    ({"training": {"epochs": 0}}, r"training.epochs must be >= 1"),
    ({"training": {"optimizer": "adamm"}}, r"'training.optimizer'.*Did you mean 'adam'"),
    ({"features": [{"name": "x*", "kind": "numeric"}, {"name": "x*", "kind": "numeric"}]}, r"twice|duplicate"),
    ({"features": [{"name": "y0", "kind": "numeric"}]}, r"tasks\[0\].label 'y0' is also declared as a feature"),
    ({"data": {"split": {"kind": "group"}}}, r"data.split.column"),
])
def test_bad_config_names_the_key(change, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_config(_raw(**change))


def test_overrides():
    raw = apply_overrides(QUICKSTART_CONFIG, ["training.epochs=3", "tasks.0.weight=2.5",
                                              "model.expert_units=[4, 4]", "data.synthetic.binarize=true"])
    config = parse_config(raw)
    assert config.training.epochs == 3 and config.tasks[0].weight == 2.5
    assert config.model.params["expert_units"] == [4, 4] and config.data.synthetic.binarize is True
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(QUICKSTART_CONFIG, ["training.epochs"])


def test_load_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
