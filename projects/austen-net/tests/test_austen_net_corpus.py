import re

import pytest

from austen_net.corpus import (
    WORKS,
    decode_bytes,
    find_local,
    load_corpus,
    read_work,
    split_corpus,
    strip_gutenberg,
)
from shared.errors import UserError

FIRST_SENTENCES = {
    1342: "It is a truth universally acknowledged, that a single man in possession of a good fortune",
    158: "Emma Woodhouse, handsome, clever, and rich, with a comfortable home",
    105: "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who",
    161: "The family of Dashwood had long been settled in Sussex.",
    141: "About thirty years ago Miss Maria Ward, of Huntingdon, with only seven thousand pounds",
    121: "No one who had ever seen Catherine Morland in her infancy would have supposed her born",
}


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture()
def works(real_data):
    return load_corpus(real_data / "austen", None, quiet=True)


def test_stripping_the_six_real_files(works, real_data):
    assert {w.work_id for w in works} == set(FIRST_SENTENCES)
    for work in works:
        lower = work.text.lower()
        assert "gutenberg" not in lower, work.title
        # Austen writes of a "special licence"; the Gutenberg licence's phrases must be gone
        for phrase in ("full license", "electronic work", "section 1.", "www.gutenberg", "ebook"):
            assert phrase not in lower, (work.title, phrase)
        assert "\r" not in work.text and not work.text.startswith("\ufeff")
        assert FIRST_SENTENCES[work.work_id] in squash(work.text), work.title


def test_no_line_is_ever_glued(works, real_data):
    paths = find_local(real_data / "austen")
    for work in works:
        original = decode_bytes(paths[work.work_id].read_bytes()).split("\n")
        original_lines = set(original)
        body = work.text.rstrip("\n").split("\n")
        assert all(line in original_lines for line in body), work.title
        assert len(body) > 0.95 * len(original) - 600  # only boilerplate lines went
    emma = next(w for w in works if w.work_id == 158).text
    assert not re.search(r"\b(wasalmost|hadbeen|ofthe|andthe)\b", emma)


def test_old_style_header_and_footer_and_cp1252(tmp_path):
    body = "CHAPTER I\r\n\r\nLady Susan Vernon to Mr. Vernon.\r\n\r\nMy dear brother, \u201cquoted\u201d.\r\n"
    raw = (
        "The Project Gutenberg EBook of Lady Susan, by Jane Austen\r\n\r\nThis eBook is for the use of "
        "anyone anywhere\r\n\r\n*** START OF THIS PROJECT GUTENBERG EBOOK LADY SUSAN ***\r\n\r\n"
        + body
        + "\r\n\r\nEnd of the Project Gutenberg EBook of Lady Susan, by Jane Austen\r\n\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK LADY SUSAN ***\r\n\r\nSection 1. General Terms "
        "of Use and Redistributing Project Gutenberg-tm electronic works\r\n"
    ).encode("cp1252")
    path = tmp_path / "pg946.txt"
    path.write_bytes(raw)
    work = read_work(path, 946)
    assert work.title == "Lady Susan"
    assert work.text.startswith("CHAPTER I\n\nLady Susan Vernon")
    assert "\u201cquoted\u201d" in work.text and "Gutenberg" not in work.text


def test_new_header_without_markers():
    text = "Title: Emma\n\nAuthor: Jane Austen\n\n\nCHAPTER I\n\nEmma Woodhouse, handsome.\n"
    assert strip_gutenberg(text) == "CHAPTER I\n\nEmma Woodhouse, handsome.\n"


def test_split_is_deterministic_per_work_at_paragraphs(works):
    split = split_corpus(works, 0.1)
    assert len(split.train) == len(split.val) == len(works)
    for work, train, val in zip(works, split.train, split.val, strict=True):
        assert train + val == work.text
        assert train.endswith("\n\n")
        assert 0.08 < len(val) / len(work.text) < 0.12
    assert split_corpus(works, 0.1) == split


def test_holdout_moves_whole_works(works):
    split = split_corpus(works, 0.1, holdout=(105,))
    persuasion = next(w for w in works if w.work_id == 105).text
    assert persuasion in split.val and all(persuasion[:5000] not in t for t in split.train)
    with pytest.raises(UserError, match="not in the corpus"):
        split_corpus(works, 0.1, holdout=(999,))


def test_bad_corpus_dirs(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        load_corpus(tmp_path / "missing", None)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="holds none of the Austen works"):
        load_corpus(tmp_path, None)
    (tmp_path / "pg158.txt").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UserError, match="not a text file"):
        load_corpus(tmp_path, None)
    (tmp_path / "pg158.txt").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_corpus(tmp_path, None)


def test_offline_download_is_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "austen_net.corpus.gutenberg_urls", lambda i: [f"http://127.0.0.1:9/pg{i}.txt"]
    )
    with pytest.raises(UserError, match="by hand"):
        load_corpus(None, tmp_path / "data", quiet=True)
    assert len(WORKS) == 8


def test_pinned_bodies_match_the_real_files(works):
    from austen_net.corpus import BODY_SHA256, body_sha256

    assert {w.work_id: body_sha256(w.text) for w in works} == BODY_SHA256


def test_a_download_of_another_edition_is_refused(real_data, tmp_path, monkeypatch):
    import shutil

    import austen_net.corpus as corpus

    sample = find_local(real_data / "austen")[105]

    def fake_fetch(urls, dest, sha256=None, quiet=False, hint=None):  # what a mirror would serve
        dest.parent.mkdir(parents=True, exist_ok=True)  # as fetch does
        shutil.copy(sample, dest)
        return dest

    monkeypatch.setattr(corpus, "fetch", fake_fetch)
    assert corpus.download_works(tmp_path / "good", [105], quiet=True)[105].is_file()

    def edited_fetch(urls, dest, sha256=None, quiet=False, hint=None):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(sample.read_bytes().replace(b"Kellynch", b"Kellinch"))
        return dest

    monkeypatch.setattr(corpus, "fetch", edited_fetch)
    with pytest.raises(UserError, match="not the pinned edition"):
        corpus.download_works(tmp_path / "bad", [105], quiet=True)
    assert not (tmp_path / "bad" / "austen" / "pg105.txt").exists()
