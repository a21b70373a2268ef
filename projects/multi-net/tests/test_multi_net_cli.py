import json
import shutil

import pytest
import torch

from multi_net.bench import write_test_clip
from multi_net.cli import COMMANDS, main
from shared.testing import check_cli_help

CAPTIONS = [
    "a red square moves",
    "a blue square slides",
    "a green box travels",
    "a yellow block glides",
    "a purple tile drifts",
    "an orange square moves",
    "a white square slides",
    "a grey box travels",
]


def test_help_lists_the_subcommands(capsys):
    check_cli_help(main, COMMANDS, "multi_net.cli", "multi-net", capsys)


@pytest.fixture()
def tiny_msrvtt(tmp_path, real_data):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(8):  # generated clips WITH audio
        write_test_clip(
            videos / f"video{i}.mp4",
            seconds=1.5,
            fps=8,
            size=(96, 72),
            tone_hz=200 + 100 * i,
            seed=i,
        )
    for name in ("video740.mp4", "video1085.mp4"):  # real clips, no audio
        shutil.copy(real_data / "msrvtt" / "videos" / name, videos / name)
    (videos / "video999.mp4").write_bytes(b"")  # a broken file in the folder
    records = [
        {
            "video_id": f"video{i}",
            "captions": [CAPTIONS[i], CAPTIONS[i] + " quickly"],
            "category": i % 3,
        }
        for i in range(8)
    ]
    records += [
        {"video_id": "video740", "caption": "a real clip", "category": 1},
        {"video_id": "video1085", "caption": "another real clip", "category": 2},
    ]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(records))
    pairs = tmp_path / "MSRVTT_JSFUSION_test.csv"
    pairs.write_text(
        "key,vid_key,video_id,sentence\nret0,msr5,video5,an orange square moves\n"
        "ret1,msr6,video6,a white square slides\nret2,msr7,video7,a grey box travels\n"
        "ret3,msr740,video740,a real clip\n"
    )
    return videos, ann, pairs


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_evaluate_index_recommend(capsys, tiny_msrvtt, tmp_path):
    videos, ann, pairs = tiny_msrvtt
    common = [
        "--videos",
        str(videos),
        "--annotations",
        str(ann),
        str(pairs),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--num-frames",
        "4",
        "--device",
        "cpu",
        "--quiet",
    ]
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                *common,
                "--clip-model",
                "mn-tiny",
                "--no-pretrained",
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
        )
        == 0
    )
    summary = last_json(capsys)
    assert (
        summary["train_videos"] == 6
        and summary["skipped_videos"] == 0
        and summary["with_audio"] == 8
    )
    assert summary["test_test_videos"] == 4 and 0 <= summary["test_t2v_r1"] <= 100
    assert "test_v2v_category_p10" in summary
    assert (out / "figures" / "loss.png").is_file()
    ckpt = out / "checkpoints" / "best.pt"

    assert (
        main(["evaluate", "--checkpoint", str(ckpt), *common, "--out", str(tmp_path / "ev")]) == 0
    )
    ev = last_json(capsys)
    assert ev["t2v_r1"] == summary["test_t2v_r1"] and ev["v2t_r5"] == summary["test_v2t_r5"]

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
                "--annotations",
                str(ann),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--quiet",
            ]
        )
        == 0
    )
    built = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert built["videos"] == 10 and built["skipped"] == 1

    assert main(["recommend", "--index", str(index), "--video", "video3", "--k", "4"]) == 0
    rec = json.loads(capsys.readouterr().out)
    ids = [r["video_id"] for r in rec["results"]]
    assert len(ids) == 4 and "video3" not in ids
    assert (
        rec["results"][0]["score"] >= rec["results"][1]["score"] and "category" in rec["results"][0]
    )

    new = write_test_clip(tmp_path / "new.mp4", seconds=1.5, fps=8, size=(96, 72), tone_hz=333)
    assert main(["recommend", "--index", str(index), "--video", str(new), "--k", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3

    assert (
        main(["recommend", "--index", str(index), "--text", "a man is playing guitar", "--k", "5"])
        == 0
    )
    rec = json.loads(capsys.readouterr().out)
    assert rec["query"] == {"text": "a man is playing guitar"} and len(rec["results"]) == 5


def test_bad_inputs(capsys, tmp_path, tiny_msrvtt):
    videos, ann, pairs = tiny_msrvtt
    for argv, message in [
        (["recommend", "--index", str(tmp_path / "none.pt"), "--text", "x"], "no such file"),
        (["recommend", "--index", str(ann), "--text", "x"], "not a readable index"),
        (["recommend", "--index", "i.pt"], "exactly one of"),
        (["train", "--batch-size", "1"], "InfoNCE"),
        (
            ["train", "--videos", str(tmp_path / "nowhere"), "--annotations", str(ann)],
            "does not exist",
        ),
        (
            ["train", "--videos", str(videos), "--annotations", str(ann), "--clip-model", "nope"],
            "unknown open_clip",
        ),
        (
            [
                "train",
                "--videos",
                str(videos),
                "--annotations",
                str(ann),
                "--clip-model",
                "mn-tiny",
                "--clip-weights",
                str(tmp_path / "w.bin"),
            ],
            "no such file",
        ),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_end_to_end_fine_tuning_then_index(capsys, tiny_msrvtt, tmp_path):
    videos, ann, pairs = tiny_msrvtt
    cache = ["--cache-dir", str(tmp_path / "cache")]
    common = [
        "--videos",
        str(videos),
        "--annotations",
        str(ann),
        str(pairs),
        *cache,
        "--num-frames",
        "2",
    ]
    out = tmp_path / "e2e"
    argv = ["train", *common, "--clip-model", "mn-tiny", "--no-pretrained", "--no-freeze-encoders"]
    argv += [
        "--epochs",
        "2",
        "--batch-size",
        "3",
        "--encoder-lr",
        "1e-4",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main([*argv, "--device", "cpu"]) == 0
    summary = last_json(capsys)
    assert summary["encoders"] == "fine-tuned" and summary["test_test_videos"] == 4
    from shared.checkpoint import load_checkpoint

    state = load_checkpoint(out / "checkpoints" / "last.pt", project="multi-net")
    assert any(k.startswith("clip.visual") for k in state["model"]) and state["end_to_end"]
    # the CLIP towers moved: a frozen run with the same seed keeps the same random start
    frozen = tmp_path / "frozen"
    tiny = ["train", *common, "--clip-model", "mn-tiny", "--no-pretrained", "--quiet"]
    assert main([*tiny, "--epochs", "1", "--batch-size", "3", "--out", str(frozen)]) == 0
    capsys.readouterr()
    start = load_checkpoint(frozen / "checkpoints" / "last.pt", project="multi-net")["clip_state"]
    tuned = {k[5:]: v for k, v in state["model"].items() if k.startswith("clip.")}
    assert tuned.keys() == start.keys()
    moved = max(float((tuned[k].float() - start[k].float()).abs().max()) for k in start)
    assert 0 < moved < 0.01  # the same start, moved by a few small AdamW steps
    index = tmp_path / "i.pt"
    ckpt = str(out / "checkpoints" / "best.pt")
    assert (
        main(["index", "--checkpoint", ckpt, "--videos", str(videos), "--out", str(index), *cache])
        == 0
    )
    capsys.readouterr()
    assert main(["recommend", "--index", str(index), "--text", "a red square", "--k", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    assert (
        main(["evaluate", "--checkpoint", ckpt, *common, "--out", str(tmp_path / "ev"), "--quiet"])
        == 0
    )
    assert last_json(capsys)["t2v_r1"] == summary["test_t2v_r1"]


def test_resnet18_audio_encoder_from_local_weights(capsys, tiny_msrvtt, tmp_path):
    from torchvision.models import resnet18

    from shared.checkpoint import load_checkpoint

    videos, ann, pairs = tiny_msrvtt
    weights = tmp_path / "r18.pth"
    imagenet_like = resnet18(weights=None).state_dict()
    torch.save(imagenet_like, weights)
    common = ["--videos", str(videos), "--annotations", str(ann), str(pairs)]
    common += ["--cache-dir", str(tmp_path / "cache"), "--num-frames", "2"]
    out = tmp_path / "r18run"
    argv = ["train", *common, "--clip-model", "mn-tiny", "--no-pretrained", "--quiet"]
    argv += ["--audio-encoder", "resnet18", "--weights", str(weights), "--device", "cpu"]
    assert main([*argv, "--epochs", "1", "--batch-size", "3", "--out", str(out)]) == 0
    summary = last_json(capsys)
    state = load_checkpoint(out / "checkpoints" / "last.pt", project="multi-net")
    assert state["fusion_config"]["audio_encoder"] == "resnet18"
    # started from the file's weights (conv1's RGB filters averaged), moved by a few small steps
    conv1 = state["model"]["audio.net.conv1.weight"]
    start = imagenet_like["conv1.weight"].mean(1, keepdim=True)
    assert conv1.shape == (64, 1, 7, 7) and torch.allclose(conv1, start, atol=0.01)
    deep = state["model"]["audio.net.layer4.1.conv2.weight"]
    assert torch.allclose(deep, imagenet_like["layer4.1.conv2.weight"], atol=0.01)
    ckpt = str(out / "checkpoints" / "last.pt")
    evaluate = ["evaluate", "--checkpoint", ckpt, *common, "--out", str(tmp_path / "ev")]
    assert main([*evaluate, "--quiet"]) == 0
    assert last_json(capsys)["t2v_r1"] == summary["test_t2v_r1"]
    for extra, message in [
        (["--weights", str(weights)], "use it with --audio-encoder resnet18"),
        (["--audio-encoder", "resnet18", "--weights", str(tmp_path / "no.pth")], "no such file"),
    ]:
        bad = ["train", *common, "--clip-model", "mn-tiny", "--no-pretrained", *extra]
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    # no CLIP weights to be had (mn-tiny has no pretrained tag): one message names both files
    assert main(["train", *common, "--clip-model", "mn-tiny", "--audio-encoder", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "--clip-weights PATH" in err and "--weights PATH" in err and "Traceback" not in err
