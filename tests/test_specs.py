"""Every config composes and validates; model numbers match their public config.json; bad specs fail
with errors naming the file, the field, the value and what is allowed."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from mantile.cli.job import spec_from_config
from mantile.costs.families import parameters
from mantile.specs import SpecError, conf_dir, ids, load_efficiency, load_hardware, load_model
from mantile.specs._load import build
from mantile.specs.model import ModelSpec

GROUPS = ("model", "hardware", "parallelism", "workload", "serving", "executor", "study", "experiment")


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in ids(g)])
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    cfg = _compose([f"{group}={option}"])
    choice = cfg.hydra.runtime.choices
    assert choice[group] == option
    spec, _ = spec_from_config(cfg, choice["model"], choice["hardware"], choice["serving"])
    assert spec.n_points >= 1


@pytest.mark.parametrize("generation", ids("efficiency"))
def test_every_efficiency_profile_loads(generation: str) -> None:
    eff = load_efficiency(generation)
    assert 0 < eff.gemm_efficiency <= 1 and eff.source


# Numbers copied by hand from each model's public config.json on huggingface.co (not from our files).
PUBLIC = {
    "tinyllama_1.1b": (2048, 22, 32, 4, 5632, 32000),
    "llama_3.1_8b": (4096, 32, 32, 8, 14336, 128256),
    "llama_3.3_70b": (8192, 80, 64, 8, 28672, 128256),
    "llama_3.1_405b": (16384, 126, 128, 8, 53248, 128256),
    "qwen2.5_32b": (5120, 64, 40, 8, 27648, 152064),
}


@pytest.mark.parametrize("model_id", sorted(PUBLIC))
def test_model_configs_match_public_config_json(model_id: str) -> None:
    m = load_model(model_id)
    got = (m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.num_key_value_heads,
           m.intermediate_size, m.vocab_size)
    assert got == PUBLIC[model_id]


def test_parameter_counts_match_published_sizes() -> None:
    # Llama 3.1 8B: 8.03e9 parameters (model card); 70B: 70.6e9; 405B: 405.9e9 (Meta model cards).
    assert parameters(load_model("llama_3.1_8b")).total == pytest.approx(8.03e9, rel=0.002)
    assert parameters(load_model("llama_3.3_70b")).total == pytest.approx(70.55e9, rel=0.005)
    assert parameters(load_model("llama_3.1_405b")).total == pytest.approx(405.85e9, rel=0.005)


def test_hardware_dense_peaks_are_not_the_sparse_datasheet_figures() -> None:
    # H100 SXM datasheet: 1979 TFLOPS bf16 "with sparsity" -> 989.4 dense; B200: 4.5 PF sparse -> 2250.
    assert load_hardware("nvidia_h100_80gb").device.peak_tflops["bf16"] == pytest.approx(989.4)
    assert load_hardware("nvidia_b200_180gb").device.peak_tflops["bf16"] == pytest.approx(2250)
    assert load_hardware("amd_mi300x").device.peak_tflops["bf16"] == pytest.approx(1307.4)
    assert "fp8" not in load_hardware("nvidia_a100_80gb").device.peak_tflops
    nvl72 = load_hardware("nvidia_nvl72_rack")
    assert nvl72.num_devices == 72 and nvl72.interconnect.scale_up.domain_size == 72


@pytest.mark.parametrize("hardware_id", ids("hardware"))
def test_every_hardware_figure_block_has_a_source(hardware_id: str) -> None:
    hw = load_hardware(hardware_id)
    assert hw.device.source and hw.interconnect.scale_up.source and hw.interconnect.scale_out.source


def test_bad_model_field_names_file_field_value_and_allowed() -> None:
    data = dict(OmegaConf.to_container(OmegaConf.load(conf_dir() / "model" / "llama_3.1_8b.yaml")))
    data["num_key_value_heads"] = 7
    with pytest.raises(SpecError) as e:
        build(ModelSpec, data, "conf/model/broken.yaml")
    msg = str(e.value)
    assert "conf/model/broken.yaml" in msg and "num_key_value_heads" in msg and "7" in msg and "32" in msg


def test_unknown_and_mistyped_keys_are_rejected() -> None:
    data = dict(OmegaConf.to_container(OmegaConf.load(conf_dir() / "model" / "llama_3.1_8b.yaml")))
    with pytest.raises(SpecError, match="hidden_sise.*valid keys"):
        build(ModelSpec, {**data, "hidden_sise": 1}, "x.yaml")
    with pytest.raises(SpecError, match="hidden_size.*an integer"):
        build(ModelSpec, {**data, "hidden_size": "big"}, "x.yaml")


def test_unknown_ids_list_the_valid_choices() -> None:
    with pytest.raises(SpecError, match="llama_3.1_8b"):
        load_model("llama_9")
    with pytest.raises(SpecError, match="nvidia_h100_80gb"):
        load_hardware("h100")


@pytest.mark.slow
def test_the_wheel_ships_the_config_tree(tmp_path) -> None:
    """A non-editable install finds conf/ inside the package (mantile/conf)."""
    import subprocess
    import sys
    import zipfile

    repo = conf_dir().parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(repo),
                    "-w", str(tmp_path)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("mantile-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for group in (*GROUPS, "efficiency"):
        for option in ids(group):
            assert f"mantile/conf/{group}/{option}.yaml" in names
    assert "mantile/conf/config.yaml" in names and "mantile/api/static/index.html" in names


def test_efficiency_override_applies_another_generations_constants() -> None:
    cfg = _compose(["hardware=nvidia_b200_180gb", "+efficiency=hopper", "serving=pytorch"])
    spec, _ = spec_from_config(cfg, "llama_3.3_70b", "nvidia_b200_180gb", "pytorch")
    assert spec.systems["nvidia_b200_180gb"].eff.name == "hopper"
    cfg = _compose(["hardware=nvidia_b200_180gb", "serving=pytorch"])
    spec, _ = spec_from_config(cfg, "llama_3.3_70b", "nvidia_b200_180gb", "pytorch")
    assert spec.systems["nvidia_b200_180gb"].eff.name == "blackwell"  # pytorch: the generation's own profile
    spec, _ = spec_from_config(_compose(["hardware=nvidia_b200_180gb", "serving=vllm"]), "llama_3.3_70b",
                               "nvidia_b200_180gb", "vllm")
    assert spec.systems["nvidia_b200_180gb"].eff.name == "blackwell+b200_sxm_vllm"  # the engine's kernel tables


@pytest.mark.parametrize("ep_efficiency,field", [({1: 0.5}, "ep_efficiency"), ({4: 1.5}, "ep_efficiency.4"),
                                                 ({4: 0.0}, "ep_efficiency.4")])
def test_ep_efficiency_names_the_bad_size_or_value(ep_efficiency: dict, field: str) -> None:
    from mantile.specs.hardware import GemmConstants

    with pytest.raises(SpecError, match=f"field '{field}'"):
        GemmConstants(gemm_efficiency=0.5, gemm_k_half=100.0, gemm_overhead_us=1.0, ep_efficiency=ep_efficiency)
