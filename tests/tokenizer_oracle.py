#!/usr/bin/env python3
"""tokenizer_oracle.py — the independent reference that tests/test_tokenizer.c compares moec's tokenizer against.

The oracle is the Hugging Face `tokenizers` library (pip install tokenizers), which knows nothing of moec's C code:
it loads the tokenizer.json that moec wrote and encodes the same text. Commands:

  encode TOKENIZER_JSON IN_TEXT OUT_IDS   encode IN_TEXT (UTF-8) and write the ids as little-endian int32
  encode-raw TOKENIZER_JSON IN OUT        the same without the post-processor's tokens (add_special_tokens=False)
  decode TOKENIZER_JSON IN_IDS OUT_TEXT   decode little-endian int32 ids (keeping special tokens) to UTF-8
  sp-build CORPUS OUT_DIR                 train SentencePiece-style BPE tokenizers (byte fallback, Llama 2 layout)
                                          with the library itself and write OUT_DIR/sp_{prepend,meta_first,
                                          meta_split}.json (see build_sp for how the three differ)
  regex-build CORPUS OUT_DIR              train byte-level BPE tokenizers whose pre-tokenizer is Sequence[Split(Regex
                                          (PAT), Isolated), ByteLevel(use_regex=false)] with the Llama 3 and Qwen2
                                          patterns, and write OUT_DIR/{llama3,qwen2}.json (see build_regex)
  unicode-table                           print src/io/tokenizer_unicode.c (the codepoint class table that moec's
                                          pre-tokenizer uses), generated from Python's unicodedata

Exit status 77 means the oracle is unavailable (tokenizers not installed), so the C test can say so plainly.
"""
import struct
import sys
import unicodedata


def cmd_encode(tok_path, in_path, out_path):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("tokenizer_oracle: the Python package 'tokenizers' is not installed", file=sys.stderr)
        return 77
    tok = Tokenizer.from_file(tok_path)
    with open(in_path, "rb") as f:
        text = f.read().decode("utf-8")
    ids = tok.encode(text).ids
    with open(out_path, "wb") as f:
        f.write(struct.pack("<%di" % len(ids), *ids))
    return 0


def cmd_encode_raw(tok_path, in_path, out_path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    with open(in_path, "rb") as f:
        text = f.read().decode("utf-8")
    ids = tok.encode(text, add_special_tokens=False).ids
    with open(out_path, "wb") as f:
        f.write(struct.pack("<%di" % len(ids), *ids))
    return 0


def cmd_decode(tok_path, in_path, out_path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(tok_path)
    with open(in_path, "rb") as f:
        raw = f.read()
    ids = list(struct.unpack("<%di" % (len(raw) // 4), raw))
    with open(out_path, "wb") as f:
        f.write(tok.decode(ids, skip_special_tokens=False).encode("utf-8"))
    return 0


def build_sp(corpus, variant):
    """A Llama 2-style tokenizer.json: ids 0-2 <unk> <s> </s>, 3-258 the byte tokens <0x00>..<0xFF>, then the
    learned pieces. The alphabet is limited so that rare characters (Greek, CJK, emoji) are not in the vocab and
    must go through byte fallback. Variants: "prepend" = normalizer Sequence[Prepend, Replace] and decoder
    Sequence[Replace, ByteFallback, Fuse, Strip] (current Llama 2 / Mistral files); "meta_first" = Metaspace
    pre-tokenizer (prepend_scheme first, split false) with decoder Sequence[ByteFallback, Fuse, Metaspace];
    "meta_split" = Metaspace (always, split true) with the Metaspace decoder alone (byte tokens decode literally)."""
    import json
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if variant == "prepend":
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
        tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    elif variant == "meta_first":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Metaspace(replacement="\u2581", prepend_scheme="first")])
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    with open(corpus, "rb") as f:
        text = f.read()[:60000].decode("utf-8", "ignore")
    lines = [l for l in text.split("\n") if l.strip()]
    lines += ["Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber sch\u00f6n"] * 5
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=60,
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    d = json.loads(tok.to_str())
    old = d["model"]["vocab"]
    specials = ["<unk>", "<s>", "</s>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(old.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    d["model"]["vocab"] = vocab
    for a in d["added_tokens"]:
        a["id"] = vocab[a["content"]]
    d["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab["<s>"]], "tokens": ["<s>"]}},
    }
    return json.dumps(d, ensure_ascii=False, indent=1)


def cmd_sp_build(corpus, out_dir):
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        print("tokenizer_oracle: the Python package 'tokenizers' is not installed", file=sys.stderr)
        return 77
    from tokenizers import Tokenizer
    for variant in ("prepend", "meta_first", "meta_split"):
        path = "%s/sp_%s.json" % (out_dir, variant)
        with open(path, "w", encoding="utf-8") as f:
            f.write(build_sp(corpus, variant))
        Tokenizer.from_file(path)  # the library must accept what we wrote
    return 0


# The Split patterns of Llama 3 and Qwen2 (as in transformers' convert_slow_tokenizer.py).
REGEX_PATTERNS = {
    "llama3": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    "qwen2": r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}


def build_regex(corpus, variant):
    """A Llama 3 / Qwen2-layout byte-level BPE tokenizer.json (vocab ~1000, special token <|endoftext|>), trained
    by the library on the first 300 KB of corpus with the ByteLevel alphabet, so every byte is a token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(REGEX_PATTERNS[variant]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    with open(corpus, "rb") as f:
        text = f.read()[:300000].decode("utf-8", "ignore")
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.split("\n\n"), trainer)
    return tok.to_str()


def cmd_regex_build(corpus, out_dir):
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        print("tokenizer_oracle: the Python package 'tokenizers' is not installed", file=sys.stderr)
        return 77
    from tokenizers import Tokenizer
    for variant in REGEX_PATTERNS:
        path = "%s/%s.json" % (out_dir, variant)
        with open(path, "w", encoding="utf-8") as f:
            f.write(build_regex(corpus, variant))
        Tokenizer.from_file(path)  # the library must accept what we wrote
    return 0


def class_ranges():
    """Maximal codepoint ranges of Unicode letters (L*) and numbers (N*), as (first, last, class)."""
    out = []
    cur = None
    for cp in range(0x110000):
        cat = unicodedata.category(chr(cp))[0]
        c = 1 if cat == "L" else 2 if cat == "N" else 0
        if cur and cur[2] == c and cur[1] == cp - 1:
            cur[1] = cp
            continue
        if cur and cur[2]:
            out.append(tuple(cur))
        cur = [cp, cp, c]
    if cur and cur[2]:
        out.append(tuple(cur))
    return out


def cmd_unicode_table():
    r = class_ranges()
    print("/* tokenizer_unicode.c — GENERATED by `python3 tests/tokenizer_oracle.py unicode-table` from Python's")
    print(" * unicodedata (Unicode %s); do not edit by hand. Maximal codepoint ranges of letters (\\p{L}, class 1)"
          % unicodedata.unidata_version)
    print(" * and numbers (\\p{N}, class 2), sorted, for the GPT-2 pre-tokenizer's binary search. */")
    print('#include "io/tokenizer_internal.h"')
    print()
    print("/* {first, last, class} */")
    print("const uint32_t moec_tok_class_ranges[][3] = {")
    line = "   "
    for a, b, c in r:
        item = " {0x%X,0x%X,%d}," % (a, b, c)
        if len(line) + len(item) > 116:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")
    print("const size_t moec_tok_n_class_ranges = sizeof moec_tok_class_ranges / sizeof moec_tok_class_ranges[0];")
    return 0


def main(argv):
    if len(argv) == 5 and argv[1] == "encode":
        return cmd_encode(argv[2], argv[3], argv[4])
    if len(argv) == 5 and argv[1] == "encode-raw":
        return cmd_encode_raw(argv[2], argv[3], argv[4])
    if len(argv) == 5 and argv[1] == "decode":
        return cmd_decode(argv[2], argv[3], argv[4])
    if len(argv) == 4 and argv[1] == "sp-build":
        return cmd_sp_build(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "regex-build":
        return cmd_regex_build(argv[2], argv[3])
    if len(argv) == 2 and argv[1] == "unicode-table":
        return cmd_unicode_table()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
