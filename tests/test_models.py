"""The model catalog (`models/*.yaml`) and the reading of Hugging Face config.json files.

Every estimate starts from a parameter count, so each catalog entry is checked against the count its publisher
states, and the counting itself against two cases worked out by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from planner.errors import PlannerError
from planner.specs.catalog import ModelEntry, load_catalog, load_hf_model
from planner.specs.model import active_params, model_from_hf_config, total_params

ROOT = Path(__file__).resolve().parents[1]
MODEL_FILES = sorted((ROOT / "models").glob("*.yaml"))

REQUIRED_IDS = {
    "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b", "llama-3.1-70b",
    "llama-3.1-405b", "llama-3.3-70b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-14b",
    "qwen2.5-32b", "qwen2.5-72b", "qwen3-8b", "qwen3-14b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b",
    "opt-125m", "opt-13b", "opt-66b", "opt-175b",
}  # fmt: skip


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(ROOT)


def _entry(model_id: str) -> ModelEntry:
    return ModelEntry.model_validate(yaml.safe_load((ROOT / "models" / f"{model_id}.yaml").read_text()))


# --- the catalog files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_file_validates_and_is_named_by_its_id(path: Path) -> None:
    entry = ModelEntry.model_validate(yaml.safe_load(path.read_text()))
    assert entry.id == path.stem
    entry.to_spec()  # the config is one the reader accepts


def test_catalog_loads_every_file_and_has_the_required_models(catalog) -> None:
    assert set(catalog.models) == {p.stem for p in MODEL_FILES}
    assert set(catalog.models) >= REQUIRED_IDS


def test_aliases_are_unique_across_the_catalog(catalog) -> None:
    owner: dict[str, str] = {}
    for model in catalog.models.values():
        for name in (model.id, *model.aliases):
            key = _normalise(name)
            assert owner.setdefault(key, model.id) == model.id, f"'{name}' names {owner[key]} and {model.id}"


@pytest.mark.parametrize(
    ("name", "model_id"),
    [
        ("llama-70b", "llama-3.1-70b"),
        ("llama-8b", "llama-3.1-8b"),
        ("llama-405b", "llama-3.1-405b"),
        ("Llama2-7B", "llama-2-7b"),
        ("Llama-2-7b-chat", "llama-2-7b"),
        ("Meta-Llama-3-8B", "llama-3-8b"),
        ("Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("mistral-7b-v0.1", "mistral-7b"),
        ("Mixtral-8x7B-Instruct", "mixtral-8x7b"),
        ("opt13b", "opt-13b"),
        # names used in the published-measurements data set
        ("Llama 3.1 8B", "llama-3.1-8b"),
        ("Llama-2-70B", "llama-2-70b"),
        ("Meta-Llama-3.1-8B-FP8", "llama-3.1-8b"),
        ("Meta-Llama-3.1-70B-Instruct-FP8", "llama-3.1-70b"),
        ("Qwen2.5-7B-Instruct", "qwen2.5-7b"),
        ("Qwen2.5-72B-Instruct", "qwen2.5-72b"),
        ("Qwen2.5_14B_Instruct", "qwen2.5-14b"),
    ],
)
def test_names_resolve(catalog, name: str, model_id: str) -> None:
    assert catalog.model(name).id == model_id


# --- parameter counts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_total_params_match_the_published_count_within_1_percent(catalog, path: Path) -> None:
    model = catalog.models[path.stem]
    assert model.published_params_b is not None
    counted_b = total_params(model) / 1e9
    assert counted_b == pytest.approx(model.published_params_b, rel=0.01), (
        f"{model.id}: counted {counted_b:.3f}B, published {model.published_params_b}B"
    )


def test_opt_125m_count_by_hand(catalog) -> None:
    """OPT-125m: h 768, 12 layers, FFN 3072, vocab 50272, 2048 positions, LayerNorm, biases, tied head.

    embeddings  50272*768 + (2048+2)*768        = 38,608,896 + 1,574,400 = 40,183,296
    attention   4*768*768 + 4*768 (q,k,v,o bias) = 2,359,296 + 3,072      =  2,362,368
    MLP         2*768*3072 + 3072 + 768          = 4,718,592 + 3,840      =  4,722,432
    norms       2 LayerNorms * 2*768                                      =      3,072
    per layer   2,362,368 + 4,722,432 + 3,072                             =  7,087,872
    total       40,183,296 + 12*7,087,872 + 1,536 (final LayerNorm)       = 125,239,296
    (the same as the Hugging Face OPTForCausalLM count; the LM head is tied, so adds nothing)
    """
    assert total_params(catalog.models["opt-125m"]) == 125_239_296


def test_tiny_llama_count_by_hand() -> None:
    """Llama, h 64, 2 layers, 4 heads (d 16), 2 kv heads, intermediate 128, vocab 100, untied.

    attention   q 64*64 + k 64*32 + v 64*32 + o 64*64 = 4,096 + 2,048 + 2,048 + 4,096 = 12,288
    MLP         3 * 64*128                                                         = 24,576
    norms       2 RMSNorms * 64                                                    =    128
    per layer   12,288 + 24,576 + 128                                              = 36,992
    total       embedding 100*64 + 2*36,992 + final norm 64 + LM head 100*64
                = 6,400 + 73,984 + 64 + 6,400                                      = 86,848
    """
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 100,
        "tie_word_embeddings": False,
    }
    spec = model_from_hf_config(config, id="tiny")
    assert (spec.head_dim, spec.kv_size) == (16, 32)
    assert total_params(spec) == 86_848
    tied = model_from_hf_config({**config, "tie_word_embeddings": True}, id="tiny-tied")
    assert total_params(tied) == 80_448  # 86,848 less the 6,400 of the LM head


def test_qwen3_moe_active_params(catalog) -> None:
    model = catalog.models["qwen3-30b-a3b"]
    assert (model.num_experts, model.num_experts_per_tok, model.intermediate_size) == (128, 8, 768)
    assert active_params(model) / 1e9 == pytest.approx(3.3, rel=0.03)  # model card: 3.3B activated


def test_mixtral_active_params(catalog) -> None:
    model = catalog.models["mixtral-8x7b"]
    assert (model.num_experts, model.num_experts_per_tok) == (8, 2)
    assert active_params(model) / 1e9 == pytest.approx(12.9, rel=0.01)  # Mistral AI: 12.9B active


def test_dense_models_have_active_equal_to_total(catalog) -> None:
    for model in catalog.models.values():
        if not model.is_moe:
            assert active_params(model) == total_params(model), model.id


def test_qwen3_head_dim_is_read_from_the_config(catalog) -> None:
    # Qwen3-32B: 64 heads of 128 = 8192 query width, wider than hidden 5120
    model = catalog.models["qwen3-32b"]
    assert (model.head_dim, model.q_size, model.hidden_size) == (128, 8192, 5120)


# --- config.json files on disk -----------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", ["llama-3.1-8b", "qwen3-30b-a3b", "opt-125m", "mixtral-8x7b"])
def test_config_json_loads_like_the_catalog_entry(catalog, tmp_path: Path, model_id: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_entry(model_id).config))
    expected = catalog.models[model_id]
    for loaded in (load_hf_model(path), catalog.model(str(path)), catalog.model(str(tmp_path))):
        assert total_params(loaded) == total_params(expected)
        assert active_params(loaded) == active_params(expected)
        assert loaded.head_dim == expected.head_dim
        assert loaded.num_key_value_heads == expected.num_key_value_heads
        assert loaded.max_position_embeddings == expected.max_position_embeddings


def test_opt_config_json_without_tie_key_is_tied(tmp_path: Path) -> None:
    config = {k: v for k, v in _entry("opt-125m").config.items() if k != "tie_word_embeddings"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert total_params(load_hf_model(path)) == 125_239_296


def test_deepseek_v3_is_refused_naming_mla(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "model_type": "deepseek_v3",
                "hidden_size": 7168,
                "num_hidden_layers": 61,
                "num_attention_heads": 128,
                "kv_lora_rank": 512,
                "vocab_size": 129280,
            }
        )
    )
    with pytest.raises(PlannerError, match="multi-head latent attention"):
        load_hf_model(path)


def test_malformed_json_is_a_planner_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "hidden_size": 64,')
    with pytest.raises(PlannerError, match="malformed JSON"):
        load_hf_model(path)


def test_unknown_name_lists_close_names(catalog) -> None:
    with pytest.raises(PlannerError, match=re.escape("unknown model 'llama-3.1-7b'")) as err:
        catalog.model("llama-3.1-7b")
    assert "llama-3.1-8b" in str(err.value)
