import pytest

from bactrian.languages import all_languages, eval_groups, get_language, non_english_codes, parse_languages
from bactrian.prompter import Prompter, template_names

PAPER_CODES = "af ar az bn cs de en es et fa fi fr gl gu he hi hr id it ja ka kk km ko lt lv mk ml mn mr my ne nl pl ps pt ro ru si sl sv sw ta te th tl tr uk ur vi xh zh".split()


def test_52_languages_with_mbart_codes_and_groups():
    langs = all_languages()
    assert list(langs) == PAPER_CODES
    assert len(non_english_codes()) == 51
    assert get_language("zh").mbart == "zh_CN" and get_language("en").mbart == "en_XX"
    assert get_language("af_ZA").code == "af"
    assert all(len(x.mbart) == 5 and x.native and x.script for x in langs.values())
    assert eval_groups() == {"G1": ("es", "fr", "pt"), "G2": ("ar", "id", "zh"), "G3": ("de", "it", "ru"), "G4": ("ja", "ko", "tr")}
    assert get_language("ru").group == "G3" and get_language("sw").group is None
    assert parse_languages("G1,zh,zh") == ["es", "fr", "pt", "zh"]
    with pytest.raises(KeyError, match="unknown language"):
        get_language("xx")


def test_bactrian_template_is_the_papers():
    p = Prompter.load("bactrian-x")
    assert p.build("Say hi", "to Bob") == "### Input:\nSay hi\n\nto Bob\n\n### Output:\n"
    assert p.build("Say hi") == "### Input:\nSay hi\n\n### Output:\n"
    assert p.extract(p.build("Say hi") + " Hello!\n### Input:\nmore") == "Hello!"
    assert {"bactrian-x", "alpaca", "chat"} <= set(template_names())
    alpaca = Prompter.load("alpaca")
    assert alpaca.build("X").endswith("### Instruction:\nX\n\n### Response:\n")
    assert alpaca.extract(alpaca.build("X") + "Y") == "Y"
    with pytest.raises(ValueError, match="unknown prompt template"):
        Prompter.load("nope")


def test_chat_messages_and_chat_template(tiny_base):
    from transformers import AutoTokenizer

    p = Prompter.load("bactrian-x")
    prompt = p.build_chat([{"role": "user", "content": "A"}, {"role": "assistant", "content": "B"}, {"role": "user", "content": "C"}])
    assert prompt.endswith("### Input:\nC\n\n### Output:\n") and "B" in prompt
    with pytest.raises(ValueError, match="last message"):
        p.build_chat([{"role": "assistant", "content": "x"}])
    tok = AutoTokenizer.from_pretrained(tiny_base)
    with pytest.raises(ValueError, match="chat template"):
        Prompter.load("chat", tok)
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"
    assert Prompter.for_tokenizer(tok).build("hi") == "<user>hi<assistant>"
