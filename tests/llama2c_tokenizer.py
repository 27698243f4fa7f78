#!/usr/bin/env python3
"""llama2c_tokenizer.py — turn a llama2.c tokenizer (tok512.bin) into a Hugging Face SentencePiece-BPE
tokenizer.json, and check the conversion against llama2.c's own encoding algorithm.

llama2.c's tokenizer file: int32 max_token_length, then for each id in order: float32 score, int32 byte length,
the piece's bytes (little endian). Ids 0, 1, 2 are <unk>, <s>, </s> (llama2.c spells the last two "\\n<s>\\n" and
"\\n</s>\\n" so that its decoder prints newlines); ids 3..258 are the byte pieces "<0x00>".."<0xFF>"; then the
learned pieces, spaces written as ' ' (SentencePiece writes them as U+2581 "▁"), with scores that decrease with
the id.

llama2.c's encoder (run.c, encode(); re-implemented below as `llama2c_encode`, the oracle): prepend the piece " "
(a "dummy prefix") when the text is not empty; map each UTF-8 character to its piece, or when it is not a piece,
each of its bytes b to id b + 3; then, while some adjacent pair concatenates to a piece, merge the pair whose
concatenation has the highest score (the leftmost such pair on ties).

The Hugging Face file written here is Llama 2's layout:
  normalizer     Sequence[Prepend("▁"), Replace(" " -> "▁")]   (the dummy prefix, and spaces as "▁")
  pre_tokenizer  null                                           (the whole text is one word, as in llama2.c)
  model          BPE, byte_fallback, fuse_unk, unk "<unk>"; merges = every (a, b) with a, b and a+b all learned
                 pieces, ranked by the score of a+b (best first; ties by the ids of a+b, a, b), which is how the
                 SentencePiece-to-Hugging-Face converters derive merges from a SentencePiece BPE vocabulary
  decoder        Sequence[Replace("▁" -> " "), ByteFallback, Fuse, Strip(" ", 1, 0)]
  post_processor TemplateProcessing adding <s> (id 1) first
With those, ranking merges by score reproduces llama2.c's "best-scored pair first" loop.

Commands:
  convert TOK.bin OUT.json                        write the tokenizer.json
  verify TOK.bin TOKENIZER.json TEXT [N]          first N (200) non-empty lines of TEXT: Hugging Face `tokenizers`
                                                  ids (with and without the <s> template) == llama2c_encode's
  encode-lines TOK.bin TEXT N OUT.bin             llama2c_encode of the first N non-empty lines: for each line,
                                                  int32 count then the int32 ids (no BOS)
  encode-file TOK.bin TEXT OUT.bin                llama2c_encode of the whole file as one text, int32 ids
Exit status 77 when `tokenizers` is needed and missing.
"""
import json
import struct
import sys

SPACE = "\u2581"


def read_llama2c(path):
    """[(piece bytes, score)] in id order, as stored in the file (validated)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError("%s: too short for a llama2.c tokenizer" % path)
    (max_len,) = struct.unpack_from("<i", data, 0)
    off, pieces = 4, []
    while off < len(data):
        if off + 8 > len(data):
            raise ValueError("%s: truncated entry %d" % (path, len(pieces)))
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        if n <= 0 or n > max_len or off + n > len(data):
            raise ValueError("%s: entry %d has length %d (max %d)" % (path, len(pieces), n, max_len))
        pieces.append((data[off:off + n], score))
        off += n
    if len(pieces) < 259:
        raise ValueError("%s: %d pieces, fewer than 3 specials + 256 bytes" % (path, len(pieces)))
    for b in range(256):
        if pieces[3 + b][0] != b"<0x%02X>" % b:
            raise ValueError("%s: id %d is %r, not the byte piece <0x%02X>" % (path, 3 + b, pieces[3 + b][0], b))
    return pieces


def llama2c_encode(pieces, text):
    """llama2.c's encoder (no BOS/EOS): dummy prefix, characters or byte fallback, best-score merges."""
    lookup = {p: i for i, (p, _) in enumerate(pieces)}
    data = text.encode("utf-8")
    ids = []
    if data:
        ids.append(lookup[b" "])
    i = 0
    while i < len(data):  # one UTF-8 character at a time (continuation bytes are 10xxxxxx)
        j = i + 1
        while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        ch = data[i:j]
        if ch in lookup:
            ids.append(lookup[ch])
        else:
            ids.extend(b + 3 for b in ch)
        i = j
    while True:
        best, best_score = -1, None
        for k in range(len(ids) - 1):
            merged = lookup.get(pieces[ids[k]][0] + pieces[ids[k + 1]][0])
            if merged is not None and (best_score is None or pieces[merged][1] > best_score):
                best, best_score, best_id = k, pieces[merged][1], merged
        if best < 0:
            return ids
        ids[best:best + 2] = [best_id]


def hf_spelling(i, piece):
    if i == 0:
        return "<unk>"
    if i == 1:
        return "<s>"
    if i == 2:
        return "</s>"
    if 3 <= i < 259:
        return piece.decode("ascii")
    s = piece.decode("utf-8")
    if SPACE in s:
        raise ValueError("piece %d %r already contains U+2581" % (i, s))
    return s.replace(" ", SPACE)


def build_json(pieces):
    vocab = {}
    for i, (p, _) in enumerate(pieces):
        s = hf_spelling(i, p)
        if s in vocab:
            raise ValueError("piece %r appears twice (ids %d and %d)" % (s, vocab[s], i))
        vocab[s] = i
    learned = {hf_spelling(i, p): i for i, (p, _) in enumerate(pieces) if i >= 259}
    merges = []
    for piece, pid in learned.items():
        for cut in range(1, len(piece)):
            a, b = piece[:cut], piece[cut:]
            if a in learned and b in learned:
                merges.append((-pieces[pid][1], pid, learned[a], learned[b], a, b))
    merges.sort()
    specials = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True} for i, s in enumerate(["<unk>", "<s>", "</s>"])]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": specials,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[m[4], m[5]] for m in merges]},
    }


# Added to the verified lines: characters outside the 512-token vocabulary (byte fallback), repeated and
# leading/trailing spaces, a tab.
EXTRA_LINES = ["Zo\u00eb said \u4f60\u597d \U0001F600 to the caf\u00e9\u2026", "  two  spaces,\ta tab  ",
               "\u00a0no-break\u200aspace", "x"]


def first_lines(path, n):
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    return lines[:n]


def cmd_convert(tok_bin, out_json):
    d = build_json(read_llama2c(tok_bin))
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False, indent=1)
    print("%s: %d tokens, %d merges" % (out_json, len(d["model"]["vocab"]), len(d["model"]["merges"])))
    return 0


def cmd_verify(tok_bin, tok_json, text_path, n):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("llama2c_tokenizer: the Python package 'tokenizers' is not installed", file=sys.stderr)
        return 77
    pieces = read_llama2c(tok_bin)
    hf = Tokenizer.from_file(tok_json)
    lines = first_lines(text_path, n) + EXTRA_LINES
    bad = 0
    n_ids = n_bytes = 0
    for line in lines:
        want = llama2c_encode(pieces, line)
        got = hf.encode(line, add_special_tokens=False).ids
        got_bos = hf.encode(line).ids
        n_ids += len(want)
        n_bytes += sum(1 for i in want if 3 <= i < 259)
        if got != want or got_bos != [1] + want or hf.decode(want, skip_special_tokens=False) != line:
            bad += 1
            if bad <= 3:
                print("mismatch on %r:\n  llama2.c %s\n  HF       %s" % (line[:80], want[:40], got[:40]))
    print("%d lines, %d ids (%d byte-fallback): %d mismatches between Hugging Face and llama2.c's encoder"
          % (len(lines), n_ids, n_bytes, bad))
    return 1 if bad or not lines else 0


def cmd_encode_lines(tok_bin, text_path, n, out):
    pieces = read_llama2c(tok_bin)
    with open(out, "wb") as f:
        for line in first_lines(text_path, n):
            ids = llama2c_encode(pieces, line)
            f.write(struct.pack("<i%di" % len(ids), len(ids), *ids))
    return 0


def cmd_encode_file(tok_bin, text_path, out):
    pieces = read_llama2c(tok_bin)
    with open(text_path, encoding="utf-8") as f:
        ids = llama2c_encode(pieces, f.read())
    with open(out, "wb") as f:
        f.write(struct.pack("<%di" % len(ids), *ids))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "convert":
        return cmd_convert(argv[2], argv[3])
    if len(argv) in (5, 6) and argv[1] == "verify":
        return cmd_verify(argv[2], argv[3], argv[4], int(argv[5]) if len(argv) == 6 else 200)
    if len(argv) == 6 and argv[1] == "encode-lines":
        return cmd_encode_lines(argv[2], argv[3], int(argv[4]), argv[5])
    if len(argv) == 5 and argv[1] == "encode-file":
        return cmd_encode_file(argv[2], argv[3], argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
