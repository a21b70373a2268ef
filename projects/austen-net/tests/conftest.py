import pytest
from austen_net_data import write_corpus

from testkit import isolated, real_data, session_roots  # noqa: F401  (fixtures)


@pytest.fixture()
def corpus(tmp_path):
    """Generated works in Gutenberg's format: every end-to-end test runs without real data."""
    return write_corpus(tmp_path / "corpus")


@pytest.fixture()
def real_corpus(real_data, tmp_path):  # noqa: F811
    """Two real novels, shortened (header and footer kept): the real files and the real stripping."""
    folder = tmp_path / "real_corpus"
    folder.mkdir()
    for name in ("105-persuasion.txt", "121-northanger-abbey.txt"):
        text = (real_data / "austen" / name).read_bytes()
        (folder / name).write_bytes(text[:60000] + text[-20000:])
    return folder


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    """A random GPT-2 (byte-level BPE) saved by transformers."""
    pytest.importorskip("transformers")
    from austen_net_hf import gpt2_folder as build

    return build(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    """A random Llama (grouped-query attention, rope_theta 1e5, untied head) saved by transformers."""
    pytest.importorskip("transformers")
    from austen_net_hf import llama_folder as build

    return build(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="module")
def llama3_folder(tmp_path_factory):
    """A random Llama 3.2-style model ("llama3" RoPE scaling, tied head) saved by transformers."""
    pytest.importorskip("transformers")
    from austen_net_hf import llama3_folder as build

    return build(tmp_path_factory.mktemp("llama3"))
