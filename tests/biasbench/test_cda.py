"""Counterfactual data augmentation with the real WinoBias swap lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biasbench import augment, gendered_sentences, load_swap_list
from sfbow.evaluation import load_stsb


@pytest.fixture(scope="module")
def swaps(winobias_dir):
    return load_swap_list(winobias_dir / "generalized_swaps.txt", winobias_dir / "extra_gendered_words.txt")


def test_swaps_words_keep_case_and_resolve_her(swaps):
    assert swaps.swap("He told her the truth about his idea.") == "She told him the truth about her idea."
    assert swaps.swap("Her idea pleased the MEN and the Actress.") == "His idea pleased the WOMEN and the Actor."
    assert swaps.swap("A dog runs in the park.") == "A dog runs in the park."
    assert swaps.swap("The sheriff met them.") == "The sheriff met them."  # whole words only: not s-he-riff
    assert swaps.is_gendered("A woman is slicing a tomato.") and not swaps.is_gendered("A dog runs.")


def test_first_entry_wins_and_both_directions_exist(swaps):
    assert swaps.mapping["priest"] == "nun"  # generalized list first, then the extra list's priest -> priestess
    assert swaps.mapping["woman"] == "man" and swaps.mapping["man"] == "woman"
    assert "tailors" not in swaps.mapping  # its entry, "seamstress'", is not a word


def _bijective_words(swaps):
    return sorted(w for w, other in swaps.mapping.items() if swaps.mapping.get(other) == w and w not in ("her",)
                  and other != "her")


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_swapping_twice_gives_back_the_sentence(swaps, data):
    words = data.draw(st.lists(st.sampled_from(_bijective_words(swaps) + ["the", "walks", "a", "dog"]),
                               min_size=1, max_size=8))
    sentence = " ".join(words).capitalize() + "."
    assert swaps.swap(swaps.swap(sentence)) == sentence


def test_cda_of_gendered_stsb_train(swaps, stsb_dir):
    train = load_stsb(stsb_dir / "sts-train.csv")
    sentences = [*train.sentences1, *train.sentences2]
    gendered = gendered_sentences(sentences, swaps)
    assert 1000 < len(gendered) < len(sentences) and len(set(gendered)) == len(gendered)
    assert all(swaps.is_gendered(s) for s in gendered)
    augmented = augment(gendered[:50], swaps)
    assert len(augmented) == 100 and augmented[0] == gendered[0] and augmented[1] == swaps.swap(gendered[0])
    assert augmented[1] != augmented[0]


def test_malformed_swap_file_names_the_line(tmp_path):
    path = tmp_path / "swaps.txt"
    path.write_text("he\tshe\nking queen\n")
    with pytest.raises(ValueError, match=r"swaps\.txt:2: expected two single words separated by a tab"):
        load_swap_list(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_swap_list(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="at least one"):
        load_swap_list()


def test_a_byte_order_mark_does_not_cost_the_first_pair(winobias_dir, tmp_path):
    source = winobias_dir / "generalized_swaps.txt"
    plain = load_swap_list(source)
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    first = source.read_text(encoding="utf-8").split("\t")[0].strip().lower()
    assert load_swap_list(path).mapping == plain.mapping and first in plain.mapping
