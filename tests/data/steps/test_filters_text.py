"""Tokens, words, CJK segmentation and language profiles shared by the quality filters."""

from gristmill.data.steps import text as tx


def test_tokens_follow_spacy_shape():
    toks = tx.tokens("Don't use GTK-based tools (see CVE-2025 at https://x.org/a_b). e.g. v3.11...")
    assert toks == ["Don", "'t", "use", "GTK", "-", "based", "tools", "(", "see", "CVE-2025", "at",
                    "https://x.org/a_b", ")", ".", "e.g", ".", "v3.11", "..."]
    # punctuation tokens are not words; contractions are
    assert tx.words("Don't stop -- ever!") == ["Don", "'t", "stop", "ever"]


def test_code_stays_in_one_token_like_spacy():
    assert tx.tokens("sigemptyset(sigset_t *set);") == ["sigemptyset(sigset_t", "*", "set", ")", ";"]
    assert tx.tokens("18:04:02 +0100 a@b.org") == ["18:04:02", "+", "0100", "a@b.org"]


def test_chinese_is_segmented_into_words():
    words = tx.words("系统管理员需要了解系统的启动过程。")
    assert len(words) >= 6 and "系统" in words and all(len(w) <= 5 for w in words)
    # mixed Chinese and Latin
    assert tx.words("使用 apt-get 命令安装软件包")[:2] == ["使用", "apt"]


def test_japanese_uses_script_runs():
    assert tx.words("日本語のテキストです。", "ja") == ["日本語", "の", "テキスト", "です"]
    # kana present: Japanese scheme chosen automatically
    assert tx.words("東京タワーに行きました") == ["東京", "タワー", "に", "行", "きました"]


def test_sentences_and_terminal_punctuation():
    assert tx.count_sentences("One. Two! Three? four") == 3
    assert tx.count_sentences("no punctuation here") == 1
    assert tx.count_sentences("中文句子。第二句！") == 2
    assert tx.ends_with_terminal_punct("done.") and tx.ends_with_terminal_punct("完成。")
    assert not tx.ends_with_terminal_punct("heading")


def test_language_profiles():
    assert tx.profile("en").stop_words[:2] == ("the", "be")
    assert tx.profile("zh-cn").max_avg_word_length == 5
    assert tx.base_language("pt_BR") == "pt"
    unknown = tx.profile("xx")
    assert unknown.stop_words == () and "no profile" in unknown.source


def test_token_cache_returns_same_result():
    text = "The same text, tokenized twice."
    assert tx.tokens(text) is tx.tokens(text)
    assert tx.tokens(text) == tx.TOKEN_RE.findall(text)
