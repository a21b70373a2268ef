import json
import shutil

import pytest
import torch
from multi_net_data import plain_clips

from multi_net.bench import write_test_clip
from multi_net.cli import COMMANDS, main
from shared.checkpoint import load_checkpoint
from testkit import cli_help

TINY = ["--clip-model", "mn-tiny", "--no-pretrained", "--device", "cpu", "--quiet"]


def test_help_lists_the_subcommands_without_importing_torch(capsys):
    shown = cli_help(main, COMMANDS, "multi_net.cli", capsys)
    assert all(name in shown.text for name in COMMANDS)
    assert shown.module_status == 0 and "usage: multi-net" in shown.module_text
    assert shown.heavy_imports == {}  # no --help imports torch, matplotlib or gradio


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture()
def clips(tmp_path):
    """24 generated clips with audio (+ one empty file); 3 of them are the test pairs."""
    return plain_clips(tmp_path / "plain", n=24)


def data_args(clips, tmp_path, frames="4"):
    videos, ann, pairs = clips
    return [
        "--videos",
        str(videos),
        "--annotations",
        str(ann),
        str(pairs),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--num-frames",
        frames,
    ]


def test_train_evaluate_index_recommend(capsys, clips, tmp_path):
    out = tmp_path / "run"
    argv = [
        "train",
        *data_args(clips, tmp_path),
        *TINY,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--vv-weight",
        "0.5",
        "--out",
        str(out),
        "--train-split",
        "all",
    ]
    assert main(argv) == 0
    s = last_json(capsys)
    # 24 captioned clips: 3 test, 10% of the other 21 (2) for validation, 19 to train
    assert s["train_videos"] == 19 and s["val_videos"] == 2 and s["test_videos"] == 3
    assert s["skipped_videos"] == 0 and s["with_audio"] == 24  # the empty file has no caption
    for key in ("val_t2v_r1", "test_t2v_r1", "test_t2v_r1_no_audio", "test_v2t_r5"):
        assert key in s
    assert (out / "figures" / "loss.png").is_file()
    ckpt = out / "checkpoints" / "best.pt"

    argv = [
        "evaluate",
        "--checkpoint",
        str(ckpt),
        *data_args(clips, tmp_path),
        "--quiet",
        "--out",
        str(tmp_path / "ev"),
    ]
    assert main(argv) == 0
    ev = last_json(capsys)
    assert ev["t2v_r1"] == s["test_t2v_r1"] and ev["v2t_r5"] == s["test_v2t_r5"]
    # no data flags: the checkpoint's run says where its data came from (no MSR-VTT download)
    argv = ["evaluate", "--checkpoint", str(ckpt), "--cache-dir", str(tmp_path / "cache")]
    assert main([*argv, "--out", str(tmp_path / "ev2")]) == 0
    out_err = capsys.readouterr()
    assert "using the run's own data" in out_err.err
    videos, ann, pairs = clips  # the annotation files as typed, never a list's repr
    assert f"--annotations {ann} {pairs}" in out_err.err and "PosixPath" not in out_err.err
    again = json.loads(out_err.out.strip().splitlines()[-1])
    assert again["t2v_r1"] == ev["t2v_r1"] and again["v2t_r5"] == ev["v2t_r5"]

    videos, ann, _ = clips
    index = tmp_path / "index.pt"
    assert (
        main(
            [
                "index",
                "--checkpoint",
                str(ckpt),
                "--videos",
                str(videos),
                "--out",
                str(index),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--quiet",
            ]
        )
        == 0
    )
    built = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert built["videos"] == 24 and built["skipped"] == 1

    assert main(["recommend", "--index", str(index), "--video", "video3", "--k", "4"]) == 0
    rec = json.loads(capsys.readouterr().out)
    ids = [r["video_id"] for r in rec["results"]]
    assert len(ids) == 4 and "video3" not in ids
    assert rec["results"][0]["score"] >= rec["results"][1]["score"]
    # indexed without --annotations: the training run's own give captions and category names
    assert rec["results"][0]["category"] in ("music", "people", "gaming")
    assert rec["results"][0]["caption"]

    new = write_test_clip(tmp_path / "new.mp4", seconds=1.5, fps=8, size=(96, 72), tone_hz=333)
    assert main(["recommend", "--index", str(index), "--video", str(new), "--k", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    assert main(["recommend", "--index", str(index), "--text", "a red square", "--k", "5"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["query"] == {"text": "a red square"} and len(rec["results"]) == 5


def test_test_pairs_never_choose_the_checkpoint(capsys, clips, tmp_path, monkeypatch):
    """Every evaluation during training sees validation videos only; the test videos are scored
    once, after best.pt is chosen."""
    import multi_net.train as train_module

    real = train_module.evaluate_pairs
    seen = []

    def spy(model, feats, pairs, *args, **kwargs):
        seen.append({v for v, _ in pairs})
        return real(model, feats, pairs, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_pairs", spy)
    argv = [
        "train",
        *data_args(clips, tmp_path),
        *TINY,
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "r"),
        "--train-split",
        "all",
    ]
    assert main(argv) == 0
    test_ids = {"video21", "video22", "video23"}
    during, chosen_val, final_test = seen[:-2], seen[-2], seen[-1]
    assert len(during) == 3 and all(ids and not ids & test_ids for ids in during)
    assert chosen_val == during[0] and final_test == test_ids


def test_resumed_run_equals_the_straight_run(capsys, clips, tmp_path):
    base = [
        "train",
        *data_args(clips, tmp_path),
        *TINY,
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--train-split",
        "all",
    ]
    assert main([*base, "--out", str(tmp_path / "straight")]) == 0
    assert main([*base, "--out", str(tmp_path / "cut"), "--max-minutes", "0.00001"]) == 0
    assert main([*base, "--out", str(tmp_path / "cut"), "--resume", "latest"]) == 0
    capsys.readouterr()
    a = load_checkpoint(tmp_path / "straight/checkpoints/last.pt", project="multi-net")
    b = load_checkpoint(tmp_path / "cut/checkpoints/last.pt", project="multi-net")
    assert a["step"] == b["step"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_a_small_folder_trains_and_says_what_it_could_not_measure(capsys, tmp_path):
    videos, ann, _ = plain_clips(tmp_path / "few", n=5, broken=False)
    argv = [
        "train",
        "--videos",
        str(videos),
        "--annotations",
        str(ann),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--num-frames",
        "2",
        *TINY,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr()
    s = json.loads(out.out.strip().splitlines()[-1])
    assert s["train_videos"] == 4 and s["val_videos"] == 0 and "test_t2v_r1" not in s
    assert "fewer than 2 test videos" in out.err and "fewer than 2 validation videos" in out.err
    assert (tmp_path / "r" / "checkpoints" / "last.pt").is_file()


def test_end_to_end_fine_tuning_then_index(capsys, clips, tmp_path):
    common = data_args(clips, tmp_path, frames="2")
    out = tmp_path / "e2e"
    argv = [
        "train",
        *common,
        *TINY,
        "--no-freeze-encoders",
        "--epochs",
        "2",
        "--batch-size",
        "3",
        "--encoder-lr",
        "1e-4",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    s = last_json(capsys)
    assert s["encoders"] == "fine-tuned" and s["test_videos"] == 3
    state = load_checkpoint(out / "checkpoints" / "last.pt", project="multi-net")
    assert any(k.startswith("clip.visual") for k in state["model"]) and state["end_to_end"]
    # the CLIP towers moved: a frozen run with the same seed keeps the same random start
    frozen = tmp_path / "frozen"
    assert (
        main(["train", *common, *TINY, "--epochs", "1", "--batch-size", "3", "--out", str(frozen)])
        == 0
    )
    capsys.readouterr()
    start = load_checkpoint(frozen / "checkpoints" / "last.pt", project="multi-net")["clip_state"]
    tuned = {k[5:]: v for k, v in state["model"].items() if k.startswith("clip.")}
    assert tuned.keys() == start.keys()
    moved = max(float((tuned[k].float() - start[k].float()).abs().max()) for k in start)
    assert 0 < moved < 0.01  # the same start, moved by a few small AdamW steps
    videos = clips[0]
    index = tmp_path / "i.pt"
    ckpt = str(out / "checkpoints" / "best.pt")
    assert (
        main(
            [
                "index",
                "--checkpoint",
                ckpt,
                "--videos",
                str(videos),
                "--out",
                str(index),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--quiet",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["recommend", "--index", str(index), "--text", "a red square", "--k", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    assert (
        main(["evaluate", "--checkpoint", ckpt, *common, "--out", str(tmp_path / "ev"), "--quiet"])
        == 0
    )
    assert last_json(capsys)["t2v_r1"] == s["test_t2v_r1"]


def test_resnet18_audio_encoder_from_local_weights(capsys, clips, tmp_path):
    from torchvision.models import resnet18

    weights = tmp_path / "r18.pth"
    imagenet_like = resnet18(weights=None).state_dict()
    torch.save(imagenet_like, weights)
    common = data_args(clips, tmp_path, frames="2")
    out = tmp_path / "r18run"
    argv = [
        "train",
        *common,
        *TINY,
        "--audio-encoder",
        "resnet18",
        "--weights",
        str(weights),
        "--epochs",
        "1",
        "--batch-size",
        "3",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    s = last_json(capsys)
    state = load_checkpoint(out / "checkpoints" / "last.pt", project="multi-net")
    assert state["fusion_config"]["audio_encoder"] == "resnet18"
    # started from the file's weights (conv1's RGB filters averaged), moved by a few small steps
    conv1 = state["model"]["audio.net.conv1.weight"]
    start = imagenet_like["conv1.weight"].mean(1, keepdim=True)
    assert conv1.shape == (64, 1, 7, 7) and torch.allclose(conv1, start, atol=0.01)
    deep = state["model"]["audio.net.layer4.1.conv2.weight"]
    assert torch.allclose(deep, imagenet_like["layer4.1.conv2.weight"], atol=0.01)
    ckpt = str(out / "checkpoints" / "last.pt")
    assert (
        main(["evaluate", "--checkpoint", ckpt, *common, "--out", str(tmp_path / "ev"), "--quiet"])
        == 0
    )
    assert last_json(capsys)["t2v_r1"] == s["test_t2v_r1"]


@pytest.fixture()
def real_msrvtt(tmp_path, real_data, clips):
    """The generated clips plus two real MSR-VTT clips (no audio track), captioned."""
    videos, ann, pairs = clips
    for name in ("video740.mp4", "video1085.mp4"):
        shutil.copy(real_data / "msrvtt" / "videos" / name, videos / name)
    records = json.loads(ann.read_text())
    records += [
        {"video_id": "video740", "caption": "a real clip", "category": 1},
        {"video_id": "video1085", "caption": "another real clip", "category": 2},
    ]
    ann.write_text(json.dumps(records))
    return videos, ann, pairs


def test_real_clips_without_audio_train_beside_generated_ones(capsys, real_msrvtt, tmp_path):
    argv = [
        "train",
        *data_args(real_msrvtt, tmp_path, frames="2"),
        *TINY,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--out",
        str(tmp_path / "r"),
        "--train-split",
        "all",
    ]
    assert main(argv) == 0
    s = last_json(capsys)
    assert s["with_audio"] == 24 and s["train_videos"] == 21 and s["test_videos"] == 3


def test_test_pairs_never_reach_the_choice_of_best(capsys, clips, tmp_path, monkeypatch):
    """Every evaluation during training sees validation pairs only; the test pairs are scored
    once, after training, when best.pt is already chosen."""
    import multi_net.train as train_module

    seen = []
    real = train_module.evaluate_pairs

    def recording(model, feats, pairs, *args, **kwargs):
        seen.append({v for v, _ in pairs})
        return real(model, feats, pairs, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_pairs", recording)
    argv = ["train", *data_args(clips, tmp_path), *TINY, "--epochs", "3", "--batch-size", "4"]
    assert main([*argv, "--train-split", "all", "--out", str(tmp_path / "run")]) == 0
    s = last_json(capsys)
    _, _, pairs = clips
    test_ids = {line.split(",")[2] for line in pairs.read_text().splitlines()[1:]}
    assert s["test_videos"] == len(test_ids) == 3 and s["val_videos"] == 2
    touched = [i for i, ids in enumerate(seen) if ids & test_ids]
    assert touched == [len(seen) - 1], seen  # the last evaluation, and only that one
    assert seen[-1] == test_ids
    val_ids = seen[0]
    assert len(val_ids) == 2 and all(ids == val_ids for ids in seen[:-1])
    assert len(seen) == 3 + 1 + 1  # one per epoch, the chosen model's validation, the test


def test_synth_without_out_writes_under_the_data_root(capsys, tmp_path):
    """Nothing lands in the current folder (a checkout): the data root holds the benchmark."""
    assert main(["data", "synth", "--small", "--videos", "48", "--quiet"]) == 0
    assert len(json.loads((tmp_path / "data" / "synth" / "annotations.json").read_text())) == 48
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
