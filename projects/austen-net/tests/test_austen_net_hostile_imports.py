"""Hostile model folders for ``import`` and ``train --init-from``: each is a random GPT-2 or Llama
saved by transformers, then one file or field changed the way a damaged download or a crafted
folder would. Every one is one line, exit 2, nothing at ``--out``, and memory follows the weights
in the files, never what a config asks for."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from austen_net_hf import corpus_text

from austen_net.cli import main
from testkit import assert_clean_failure

pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")


def copy_of(folder, tmp_path, name):
    out = tmp_path / name
    shutil.copytree(folder, out)
    return out


def edit_config(folder, change: dict, drop: tuple = ()) -> None:
    path = folder / "config.json"
    config = {**json.loads(path.read_text()), **change}
    for key in drop:
        config.pop(key, None)
    path.write_text(json.dumps(config))


def edit_weights(folder, change) -> None:
    path = folder / "model.safetensors"
    weights = safetensors_torch.load_file(str(path))
    change(weights)
    path.unlink()
    safetensors_torch.save_file(weights, str(path))


def write_index(folder, weight_map) -> None:
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def refused(folder, tmp_path, capsys, message, *extra) -> None:
    out = tmp_path / f"{folder.name}.pt"
    argv = ["import", folder, "--out", out, *extra]
    assert_clean_failure(main, argv, capsys, message, root=tmp_path)
    assert not out.exists()


def q_proj(shape):
    def change(w):
        w["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(shape)

    return change


CONFIG_CASES = {
    # name: (source, change to config.json, words of the one-line refusal)
    "architectures-int": ("llama", {"architectures": 3}, "architectures 3 is not a list"),
    "architectures-list-of-int": ("llama", {"architectures": [1]}, "is not a list of class"),
    "epsilon-string": ("gpt2", {"layer_norm_epsilon": "abc"}, "layer_norm_epsilon 'abc'"),
    "epsilon-list": ("gpt2", {"layer_norm_epsilon": [1e-5]}, "layer_norm_epsilon [1e-05]"),
    "epsilon-nan": ("gpt2", {"layer_norm_epsilon": float("nan")}, "layer_norm_epsilon nan"),
    "rms-epsilon-zero": ("llama", {"rms_norm_eps": 0}, "rms_norm_eps 0 is not a number"),
    "rope-theta-string": ("llama", {"rope_theta": "abc"}, "rope_theta 'abc'"),
    "rope-parameters-theta-string": (
        "llama",
        {"rope_parameters": {"rope_type": "default", "rope_theta": "abc"}},
        "rope_theta 'abc'",
    ),
    "gpt2-three-heads-of-64": ("gpt2", {"n_head": 3}, "does not split into 3 heads"),
    "kv-heads-negative": ("llama", {"num_key_value_heads": -4}, "-4 key/value heads"),
    "tie-string": ("llama", {"tie_word_embeddings": "yes"}, "tie_word_embeddings 'yes'"),
    "activation-list": ("gpt2", {"activation_function": ["gelu"]}, "activation_function"),
    "vocab-262144-wide-4096": (
        "gpt2",
        {"n_embd": 4096, "vocab_size": 262144},
        "do not fit the model its settings describe",
    ),
    "terabytes": (
        "llama",
        {
            "hidden_size": 1 << 20,
            "vocab_size": 1 << 20,
            "intermediate_size": 1 << 20,
            "head_dim": None,
        },
        "do not fit the model its settings describe",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_hostile_config_fields(case, gpt2_folder, llama_folder, tmp_path, capsys):
    kind, change, message = CONFIG_CASES[case]
    folder = copy_of(gpt2_folder if kind == "gpt2" else llama_folder, tmp_path, case)
    edit_config(folder, change, drop=("rope_parameters",) if "rope_theta" in change else ())
    refused(folder, tmp_path, capsys, message)


WEIGHT_CASES = {
    "q-proj-3x5": (q_proj((3, 5)), "weights that do not fit its config.json"),
    "k-proj-1d": (
        lambda w: w.__setitem__("model.layers.1.self_attn.k_proj.weight", torch.zeros(32)),
        "weights that do not fit its config.json",
    ),
    "up-proj-wrong-width": (
        lambda w: w.__setitem__("model.layers.0.mlp.up_proj.weight", torch.zeros(90, 64)),
        "do not fit the model",
    ),
    "missing-norm": (
        lambda w: w.pop("model.norm.weight"),
        "the weights lack model.norm.weight",
    ),
    "nan-weights": (  # imported with exit 0 before: a NaN model generate crashed on
        lambda w: w["model.norm.weight"].fill_(float("nan")),
        "model.norm.weight holds NaN or infinite values",
    ),
}


@pytest.mark.parametrize("case", sorted(WEIGHT_CASES))
def test_hostile_weights(case, llama_folder, tmp_path, capsys):
    change, message = WEIGHT_CASES[case]
    folder = copy_of(llama_folder, tmp_path, case)
    edit_weights(folder, change)
    refused(folder, tmp_path, capsys, message)


@pytest.mark.parametrize(
    "weight_map,message",
    [
        (["model.safetensors"], "weight_map is not a mapping"),
        ("model.safetensors", "weight_map is not a mapping"),
        ({"model.norm.weight": 3}, "weight_map is not a mapping"),
        ({"model.norm.weight": "/etc/passwd"}, "is not a file inside the model folder"),
        ({"model.norm.weight": "../elsewhere.safetensors"}, "is not a file inside"),
    ],
)
def test_hostile_shard_index(weight_map, message, llama_folder, tmp_path, capsys):
    folder = copy_of(llama_folder, tmp_path, "indexed")
    write_index(folder, weight_map)
    refused(folder, tmp_path, capsys, message)


def test_a_sharded_folder_still_imports(llama_folder, tmp_path, capsys):
    folder = copy_of(llama_folder, tmp_path, "indexed")
    names = safetensors_torch.load_file(str(folder / "model.safetensors")).keys()
    write_index(folder, dict.fromkeys(names, "model.safetensors"))
    assert main(["import", str(folder), "--out", str(tmp_path / "ok.pt"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["architecture"] == "LlamaForCausalLM"


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "fifo", "folder", "deep"])
@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
def test_unbounded_or_blocking_json_files(name, target, llama_folder, tmp_path, capsys):
    """A config or index that is a device, a FIFO (a read would block forever), a folder or a
    document nested 100,000 deep is refused before or while it is read, within a size bound."""
    folder = copy_of(llama_folder, tmp_path, "hostile")
    path = folder / name
    path.unlink(missing_ok=True)
    if target.startswith("/dev/"):
        if not os.path.exists(target):
            pytest.skip(f"{target} is not on this machine")
        path.symlink_to(target)
        message = "not a regular file"
    elif target == "fifo":
        os.mkfifo(path)
        message = "not a regular file"
    elif target == "folder":
        path.mkdir()
        message = "is a folder, not a regular file"
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)
        message = "is not readable JSON (RecursionError)"
    refused(folder, tmp_path, capsys, message)


def test_a_json_file_over_the_bound_is_not_read(llama_folder, tmp_path, capsys):
    folder = copy_of(llama_folder, tmp_path, "big")
    with open(folder / "config.json", "ab") as fh:
        fh.truncate(17 << 20)  # sparse: 17 MB of zeros after the JSON
    refused(folder, tmp_path, capsys, "too big to be a JSON file")


def test_block_size_beyond_the_source_is_one_rule(gpt2_folder, tmp_path, capsys):
    """``import --block-size 4096`` on a 128-position GPT-2 is refused as ``train --init-from``
    refuses it, with the same words."""
    refused(gpt2_folder, tmp_path, capsys, "has a context of 128", "--block-size", "4096")
    text = tmp_path / "own.txt"
    text.write_text(corpus_text())
    argv = ["train", "--init-from", gpt2_folder, "--text", text, "--block-size", "4096"]
    assert_clean_failure(main, [*argv, "--out", tmp_path / "run"], capsys, "has a context of 128")
    assert not (tmp_path / "run").exists()


def test_init_from_shares_the_checks(llama_folder, tmp_path, capsys):
    folder = copy_of(llama_folder, tmp_path, "bad")
    edit_config(folder, {"num_key_value_heads": -4})
    text = tmp_path / "own.txt"
    text.write_text(corpus_text())
    argv = ["train", "--init-from", folder, "--text", text, "--out", tmp_path / "run"]
    assert_clean_failure(main, argv, capsys, "-4 key/value heads")
    assert not (tmp_path / "run").exists()


def test_init_from_a_pickle_is_one_line_without_torch_warnings(tmp_path, capfd):
    """A plain pickle (protocol 4) made torch print a 2-line UserWarning before the refusal."""
    import pickle

    pickled = tmp_path / "model.pt"
    pickled.write_bytes(pickle.dumps({"weights": [0.0, 1.0]}, protocol=4))
    text = tmp_path / "own.txt"
    text.write_text(corpus_text())
    argv = ["train", "--init-from", pickled, "--text", text, "--out", tmp_path / "run", "--quiet"]
    assert main([str(a) for a in argv]) == 2
    err = capfd.readouterr().err
    assert err.strip().splitlines() == [
        f"austen-net: error: {pickled} is not a readable PyTorch checkpoint (UnpicklingError)"
    ], err


def test_memory_follows_the_weights_not_the_config(gpt2_folder, tmp_path):
    """The folder is 0.6 MB; its config asks for 262,144 tokens 4,096 wide (4 GB of fp32). The
    refusal comes from shapes compared on the meta device: the process peaks well under 1.5 GB."""
    folder = copy_of(gpt2_folder, tmp_path, "huge")
    edit_config(folder, {"n_embd": 4096, "vocab_size": 262144})
    code = (
        "import resource, sys; from austen_net.cli import main;"
        "code = main(sys.argv[1:]);"
        "print('peak_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr);"
        "sys.exit(code)"
    )
    argv = ["import", str(folder), "--out", str(tmp_path / "out.pt")]
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "do not fit" in out.stderr
    peak_mb = int(out.stderr.split("peak_kb")[-1]) / 1024
    assert peak_mb < 1500, f"peak {peak_mb:.0f} MB"
