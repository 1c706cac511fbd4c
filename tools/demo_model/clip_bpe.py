"""CLIP's byte-level BPE for the plain lower-case ASCII captions the demo
model is trained on (the C++ tokenizer handles the general case)."""
import json
import os
import re


class ClipBpe:
    def __init__(self, folder):
        self.vocab = json.load(open(os.path.join(folder, "vocab.json"), encoding="utf-8"))
        lines = open(os.path.join(folder, "merges.txt"), encoding="utf-8").read().split("\n")[1:]
        self.ranks = {tuple(l.split()): i for i, l in enumerate(lines) if l.strip()}
        self.bos, self.eos = self.vocab["<|startoftext|>"], self.vocab["<|endoftext|>"]

    def bpe(self, word):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(self.ranks.get((parts[i], parts[i + 1]), 1 << 30), i) for i in range(len(parts) - 1)]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return [self.vocab[p] for p in parts]

    def encode_padded(self, text, length=77):
        ids = [self.bos]
        for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower()):
            ids += self.bpe(w)
        ids = ids[: length - 1] + [self.eos]
        return ids + [self.eos] * (length - len(ids))
