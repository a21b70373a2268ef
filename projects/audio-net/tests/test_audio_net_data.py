import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from audio_net_data import SR, make_gtzan, tone

from audio_net.audio import AudioError, read_audio
from audio_net.dataset import check_split, cv_folds, find_gtzan, split_clips, split_from_files
from audio_net.features import FeatureParams, LogMel, load_features, n_windows, windows_of
from shared.errors import UserError


def test_both_layouts(tmp_path):
    for layout in ("kaggle", "original"):
        clips = find_gtzan(make_gtzan(tmp_path / layout, layout), download=False)
        assert len(clips) == 30 and {c.label_id for c in clips} == set(range(10))
        assert clips[0].path.suffix == (".wav" if layout == "kaggle" else ".au")


def test_real_clips_are_found(real_data):
    clips = find_gtzan(real_data / "gtzan", download=False)
    assert len(clips) == 50 and sum(c.label_id == 0 for c in clips) == 5


def test_reading_mixes_resamples_and_refuses_bad_files(tmp_path):
    sf.write(tmp_path / "stereo44.wav", tone(2.0, sr=44100, channels=2), 44100)
    wave = read_audio(tmp_path / "stereo44.wav")
    assert wave.ndim == 1 and abs(len(wave) - 2 * SR) <= 1
    sf.write(tmp_path / "x.flac", tone(1.5), SR)
    assert len(read_audio(tmp_path / "x.flac")) == int(1.5 * SR)
    (tmp_path / "zero.wav").write_bytes(b"")
    good = (tmp_path / "stereo44.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(good[:30])
    (tmp_path / "garbage.wav").write_bytes(b"RIFF" + b"\x00" * 100)
    sf.write(tmp_path / "short.wav", tone(0.3), SR)
    for name, reason in [
        ("zero.wav", "decode"),
        ("truncated.wav", "decode"),
        ("garbage.wav", "decode"),
        ("short.wav", "shorter than"),
        ("missing.wav", "no such file"),
    ]:
        with pytest.raises(AudioError, match=reason):
            read_audio(tmp_path / name)


def test_windowing_any_length():
    p = FeatureParams()
    assert (p.window_frames, p.hop_frames) == (130, 65)
    for seconds in (1.0, 3.0, 4.4, 17.3, 30.0):
        frames = int(seconds * SR) // p.hop_length + 1
        spec = torch.randn(p.n_mels, frames + 200)
        wins = windows_of(spec, frames, p)
        assert wins.shape == (n_windows(frames, p), p.n_mels, 130)
        # every frame of the clip is in some window; padding only after the clip's end
        assert torch.equal(wins[0][:, : min(130, frames)], spec[:, : min(130, frames)])
    assert n_windows(int(30 * SR) // 512 + 1, p) == 19


def test_logmel_matches_torchaudio_with_the_right_sample_rate():
    import torchaudio

    p = FeatureParams()
    wave = torch.from_numpy(tone(2.0, 1000.0)) + 0.01 * torch.randn(2 * SR)
    ours = LogMel(p)(wave[None])[0]
    ref = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=p.n_fft, hop_length=p.hop_length, n_mels=p.n_mels
    )(wave)
    ref = 10 * torch.log10(ref.clamp_min(1e-10))
    ref = torch.maximum(ref, ref.max() - p.top_db)
    assert torch.allclose(ours, ref, atol=1e-3)
    # the 1 kHz tone lands in the mel band a 22,050 Hz filterbank puts it in
    mel_of_1k = 2595 * np.log10(1 + 1000 / 700)
    edges = np.linspace(0, 2595 * np.log10(1 + (SR / 2) / 700), p.n_mels + 2)
    assert abs(int(ours.mean(1).argmax()) - int(np.searchsorted(edges, mel_of_1k)) + 1) <= 1


def test_cache_is_reused_and_invalidated(tmp_path):
    clips = find_gtzan(make_gtzan(tmp_path / "d", per_genre=1), download=False)
    cache = tmp_path / "cache"
    cpu = torch.device("cpu")
    a, cached = load_features(clips, FeatureParams(), cache, cpu, quiet=True)
    assert not cached and len(a.names) == 10 and len(a.windows) == 10 * 2
    b, cached = load_features(clips, FeatureParams(), cache, cpu, quiet=True)
    assert cached and torch.equal(a.windows, b.windows)
    c, cached = load_features(clips, FeatureParams(n_mels=64), cache, cpu, quiet=True)
    assert not cached and c.windows.shape[1] == 64
    sf.write(clips[0].path, tone(6.0, 999), SR)  # a changed file invalidates too
    d, cached = load_features(clips, FeatureParams(), cache, cpu, quiet=True)
    assert not cached and len(d.windows) == 21


def test_bad_files_are_skipped_and_counted(tmp_path, capsys):
    root = make_gtzan(tmp_path / "d", per_genre=2)
    jazz = root / "genres_original" / "jazz"
    (jazz / "jazz.00054.wav").write_bytes(b"RIFF\x00\x00corrupt")  # as in Kaggle's copy
    (jazz / "jazz.00055.wav").write_bytes(b"")
    clips = find_gtzan(root, download=False)
    feats, _ = load_features(clips, FeatureParams(), None, torch.device("cpu"), quiet=True)
    assert len(feats.names) == 20 and len(feats.skipped) == 2
    assert "skipped 2 unusable" in capsys.readouterr().err


def test_small_sets_get_a_validation_and_a_test_clip_per_genre(tmp_path):
    clips = find_gtzan(make_gtzan(tmp_path / "d", per_genre=5, seconds=1.5), download=False)
    split = split_clips(clips, seed=0)  # 10% of 5 clips rounds to 0: at least 1 each instead
    for part, n in (("train", 3), ("val", 1), ("test", 1)):
        assert [sum(c.label_id == g for c in split[part]) for g in range(10)] == [n] * 10
    check_split(split)
    two = [c for c in clips if c.label_id == 0][:2]
    with pytest.raises(UserError, match="at least 2 labels"):
        check_split(split_clips([c for c in clips if c.label_id == 0], seed=0))
    with pytest.raises(UserError, match="too few clips of blues, classical for a train/vali"):
        check_split(split_clips(two + [c for c in clips if c.label_id == 1][:2], seed=0))


def test_cv_folds_cover_every_clip_once(tmp_path):
    clips = find_gtzan(make_gtzan(tmp_path / "d", per_genre=5, seconds=1.5), download=False)
    folds = cv_folds(clips, 5, seed=3)
    names = [c.name for fold in folds for c in fold]
    assert sorted(names) == sorted(c.name for c in clips)
    assert all(sorted(c.label_id for c in fold) == list(range(10)) for fold in folds)
    assert folds == cv_folds(clips, 5, seed=3) and folds != cv_folds(clips, 5, seed=4)
    with pytest.raises(
        UserError, match="needs at least 6 clips of every label; too few of blues, classical"
    ):
        cv_folds(clips, 6, seed=0)


def test_text_named_mp3_is_called_what_it_is(tmp_path):
    (tmp_path / "song.mp3").write_text("this is not audio")
    with pytest.raises(AudioError, match="not a recognised audio file"):
        read_audio(tmp_path / "song.mp3")


def test_split_by_clip_never_shares_clips(real_data):
    clips = find_gtzan(real_data / "gtzan", download=False)
    split = split_clips(clips, seed=0, val=0.2, test=0.2)
    names = [set(c.name for c in part) for part in split.values()]
    assert sum(map(len, names)) == 50 and not (
        names[0] & names[1] or names[0] & names[2] or names[1] & names[2]
    )
    assert [sum(c.label_id == g for c in split["test"]) for g in range(10)] == [
        1
    ] * 10  # stratified
    assert split == split_clips(clips, seed=0, val=0.2, test=0.2)


def test_split_files(tmp_path, real_data):
    clips = find_gtzan(real_data / "gtzan", download=False)
    (tmp_path / "train_filtered.txt").write_text(
        "\n".join(f"{c.path.parent.name}/{c.path.name}" for c in clips[:30])
    )
    (tmp_path / "valid_filtered.txt").write_text("\n".join(c.name for c in clips[30:40]))
    (tmp_path / "test_filtered.txt").write_text("\n".join(c.name for c in clips[40:]))
    split = split_from_files(clips, sorted(tmp_path.glob("*.txt")))
    assert [len(split[k]) for k in ("train", "val", "test")] == [30, 10, 10]
    (tmp_path / "test_filtered.txt").write_text(clips[0].name)
    with pytest.raises(UserError, match="both"):
        split_from_files(clips, sorted(tmp_path.glob("*.txt")))


def test_offline_download_message(tmp_path, monkeypatch):
    monkeypatch.setattr("audio_net.dataset.ARCHIVE_URLS", ["http://127.0.0.1:9/genres.tar.gz"])
    with pytest.raises(UserError, match="by hand"):
        find_gtzan(None, download=True, quiet=True)
    with pytest.raises(UserError, match="data download"):
        find_gtzan(None, download=False)
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_artist_split_is_the_fault_filtered_partition(tmp_path, capsys):
    """``--split artist``: each clip goes where GTZAN's fault-filtered lists put it, a clip in no
    list (faulty) is left out, and data that is not GTZAN's is refused in one line."""
    from torchaudio.datasets import gtzan

    from audio_net.dataset import artist_split, check_split, find_gtzan

    base = tmp_path / "gtzan" / "genres_original"
    expected = {"train": set(), "val": set(), "test": set()}
    for genre in ("disco", "jazz", "pop"):  # each with clips in no list (rock and blues have none)
        (base / genre).mkdir(parents=True)
        for part, names in (
            ("train", gtzan.filtered_train),
            ("val", gtzan.filtered_valid),
            ("test", gtzan.filtered_test),
        ):
            for name in [n for n in names if n.startswith(genre + ".")][:2]:
                sf.write(base / genre / f"{name}.wav", np.zeros(SR, np.float32) + 0.1, SR)
                expected[part].add(name)
        listed = set(gtzan.filtered_train) | set(gtzan.filtered_valid) | set(gtzan.filtered_test)
        faulty = next(f"{genre}.{i:05d}" for i in range(100) if f"{genre}.{i:05d}" not in listed)
        sf.write(base / genre / f"{faulty}.wav", np.zeros(SR, np.float32) + 0.1, SR)
    clips = find_gtzan(tmp_path / "gtzan", download=False, quiet=True)
    split = artist_split(clips)
    assert {k: {c.name for c in v} for k, v in split.items()} == expected
    check_split(split)
    assert "3 clips in no list" in capsys.readouterr().err
    from audio_net.cli import main
    from testkit import assert_clean_failure

    own = tmp_path / "own"
    for label in ("dog", "cat"):
        (own / label).mkdir(parents=True)
        for i in range(3):
            sf.write(own / label / f"{i}.wav", np.zeros(SR, np.float32) + 0.1, SR)
    argv = ["train", "--data-dir", own, "--split", "artist", "--no-pretrained", "--quiet"]
    assert_clean_failure(main, argv, capsys, "none of these clips is a GTZAN clip")
