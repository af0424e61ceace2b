"""Encoding task examples: [CLS]/[SEP] framing, pairs cut longest first, labels on each word's first subword."""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers

from gristmill.train.encoding import IGNORE_INDEX, cut_summary, cut_warning, encode_examples, encode_sequences
from gristmill.train.tasks import SequenceExample, TaskSpec, TokenExample


def wordpiece() -> Tokenizer:
    """A small hand-made WordPiece vocabulary with the gristmill special-token ids."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "new", "york", "is", "big", "un", "##believ", "##able",
             "a", "b", "c", "d", "e", "f", "g", "##s", "city", "paris"]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def test_encode_single_and_pair_with_truncation():
    tok = wordpiece()
    [(ids, types)] = encode_sequences(tok, ["new york is big"], max_length=64)
    assert ids == [2, 5, 6, 7, 8, 3] and types == [0] * 6
    [(ids, types)] = encode_sequences(tok, ["a b c d e f g"], max_length=5)
    assert ids == [2, 12, 13, 14, 3]
    [(ids, types)] = encode_sequences(tok, ["a b c d e f"], max_length=9, pairs=["paris city"])
    # Longest first: the long first text loses tokens until 9 - 3 fit; the short pair is kept.
    assert ids == [2, 12, 13, 14, 15, 3, 21, 20, 3]
    assert types == [0] * 6 + [1] * 3


def test_token_labels_go_to_first_subword_only(tmp_path):
    tok = wordpiece()
    spec = TaskSpec(type="token", labels=["B-LOC", "I-LOC", "O"], max_length=64)
    ex = TokenExample(tokens=("new", "york", "is", "unbelievable"), tags=("B-LOC", "I-LOC", "O", "O"))
    [enc] = encode_examples(tok, [ex], spec)
    # [CLS] new york is un ##believ ##able [SEP]
    assert enc.input_ids == [2, 5, 6, 7, 9, 10, 11, 3]
    assert enc.labels == [IGNORE_INDEX, 0, 1, 2, 2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    assert enc.word_positions == [1, 2, 3, 4]


def test_token_words_cut_by_max_length_are_marked():
    tok = wordpiece()
    spec = TaskSpec(type="token", labels=["O", "X"], max_length=5)
    ex = TokenExample(tokens=("a", "b", "c", "d", "e"), tags=("O", "X", "O", "X", "O"))
    [enc] = encode_examples(tok, [ex], spec)
    assert enc.input_ids == [2, 12, 13, 14, 3]
    assert enc.word_positions == [1, 2, 3, -1, -1]
    assert enc.labels == [IGNORE_INDEX, 0, 1, 0, IGNORE_INDEX]
    assert enc.cut_tokens == 2  # d and e, counted like a sequence task's cut tokens


def test_cut_tokens_are_counted_per_example_and_per_split():
    tok = wordpiece()
    spec = TaskSpec(type="sequence", labels=["x", "y"], max_length=5)
    examples = [SequenceExample(text="a b c d e f g", label="x"), SequenceExample(text="new york", label="y")]
    long, short = encode_examples(tok, examples, spec)
    assert long.input_ids == [2, 12, 13, 14, 3] and long.cut_tokens == 4  # d e f g never reach the model
    assert short.cut_tokens == 0
    summary = cut_summary([long, short])
    # 4 of the 4 + 5 + 4 tokens the two texts had with their special tokens
    assert summary == {"texts": 2, "texts_cut": 1, "tokens_cut": 4, "share_of_tokens_cut": round(4 / 13, 4)}
    line = cut_warning(summary, "training", 5)
    assert line is not None and line.startswith("1 of 2 training texts are longer than --max-length 5")
    assert cut_warning(cut_summary([short]), "training", 5) is None


def test_cut_tokens_of_a_pair_count_both_sides():
    tok = wordpiece()
    spec = TaskSpec(type="sequence", labels=["x"], max_length=9, pair_field="b")
    [enc] = encode_examples(tok, [SequenceExample(text="a b c d e f", label="x", text_pair="paris city new york")], spec)
    assert len(enc.input_ids) == 9
    assert enc.cut_tokens == 6 + 4 - (9 - 3)
