import pytest

from tvreid_sdk.config import PreprocessCfg, SamplerCfg, TokenizerCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg, get_arch, list_models
from training.config import load_recipe


def test_json_round_trip_of_every_registered_arch():
    for name in list_models():
        arch = get_arch(name)
        assert ArchCfg.from_dict(arch.to_dict()) == arch


def test_dmca_grid_is_15_by_7():
    arch = get_arch("dmca-vit-b32")
    assert arch.vision.grid == (15, 7) and arch.vision.num_tokens == 106
    assert arch.preprocess.mean == (0.485, 0.456, 0.406)


def test_unknown_fields_and_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="unknown field"):
        SamplerCfg.from_dict({"name": "rss", "frames": 8})
    with pytest.raises(ConfigError, match="must be an integer"):
        SamplerCfg.from_dict({"num_frames": "eight"})
    with pytest.raises(ConfigError):
        PreprocessCfg.from_dict({"image_size": [4, 4]})
    assert TokenizerCfg.from_dict({"max_chars": "500"}).max_chars == 500


def test_recipes_inherit_and_overrides_coerce_yaml_strings():
    faithful = load_recipe("dmca_tvmars_vitb32")
    assert (faithful.optim.lr, faithful.optim.eps, faithful.data.batch_size, faithful.optim.epochs) == (1e-5, 1e-3, 32, 60)
    assert faithful.model.losses == "msc+vtc" and faithful.data.train_sampler == "rrs_train"
    tiny = load_recipe("synthetic_tiny", ["optim.lr=1e-3", "run.compile=true"])
    assert tiny.optim.lr == 1e-3 and isinstance(tiny.optim.lr, float) and tiny.run.compile is True
    assert tiny.optim.weight_decay == faithful.optim.weight_decay  # inherited through _base_
    with pytest.raises(ConfigError, match="section.key=value"):
        load_recipe("synthetic_tiny", ["optim.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_recipe("no_such_recipe")
