"""Synthetic science questions for the dedup tests and benchmark, all generated deterministically from a seed.

* `QuestionGenerator`: question-like texts: an opener ("Calculate", "What is", ...), words drawn from a Zipf
  distribution over a vocabulary (real function and science words first, then a long tail of made-up words),
  numbers, punctuation attached to words, lengths from a log-normal distribution (mean about 64 words).
* `benchmark_corpus`: n questions of which a fraction are edited copies of earlier ones (word swaps,
  deletions, substitutions, number changes) and a fraction are exact copies with surface changes (case,
  spacing, punctuation) that normalise to the same words.
* `labelled_pairs`: pairs of questions labelled duplicate when the exact Jaccard similarity of their word
  3-gram sets (the shingles of `megascience_build.near_duplicates.minhash.tokenize`) is at least the threshold: edited copies
  with edit rates from none to heavy, pairs sharing a long stem with different endings, and pairs of distinct
  questions on the same topic.
* `ours_predict` / `datasketch_predict` / `precision_recall`: the comparison with datasketch's MinHashLSH.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from megascience_build.near_duplicates import minhash

FUNCTION_WORDS = (
    "the of a to and in is that for be what with as by on this are an which if from at its it how when "
    "where why does do can will would should must not all each both between through into under over than "
    "then there these those their they we you your one two three first second given following using find "
    "show determine calculate explain describe compute derive estimate evaluate prove assume suppose "
    "consider"
).split()
SCIENCE_WORDS = (
    "energy force mass velocity acceleration momentum charge current voltage resistance field electric "
    "magnetic wave frequency wavelength photon electron proton neutron nucleus atom molecule bond reaction "
    "equilibrium constant rate temperature pressure volume gas ideal entropy enthalpy heat work system "
    "solution concentration acid base ph buffer oxidation reduction catalyst enzyme protein cell membrane "
    "gene dna rna mutation species population selection evolution organism tissue organ blood heart lung "
    "kidney liver neuron hormone receptor drug dose patient diagnosis treatment disease infection virus "
    "bacteria immune antibody function derivative integral limit matrix vector eigenvalue equation "
    "polynomial root series sequence probability distribution variance mean random variable graph tree "
    "algorithm complexity sorting array memory program input output network protocol market price demand "
    "supply elasticity cost revenue profit equilibrium inflation interest capital labor output growth "
    "theorem lemma proof set group ring space metric norm angle triangle circle radius area length "
    "coefficient parameter model data sample test hypothesis error value ratio percent total"
).split()
OPENERS = ("Calculate", "What is", "Explain why", "Show that", "Determine", "Find", "Prove that", "Describe",
           "Estimate", "Derive", "How does", "Why does")
SYLLABLES = ("ka ne ro ti mu sa lo pe vi du ra mi to be ga fu ze ha jo ki la ma na pa qu re si tu wa xi ya "
             "zo ce di fe gi ho ju ku ly mo nu po ri so ty ve wo za").split()


class QuestionGenerator:
    def __init__(self, seed: int = 0, tail_words: int = 40000, numbers: int = 3000):
        rng = np.random.default_rng(seed)
        real = list(dict.fromkeys(FUNCTION_WORDS + SCIENCE_WORDS))
        syllables = np.array(SYLLABLES + [""], dtype=object)      # "" shortens a word to 2 or 3 syllables
        picks = rng.integers(0, len(SYLLABLES), size=(2 * tail_words, 4))
        picks[:, 2:] = np.where(rng.random((2 * tail_words, 2)) < 0.4, len(SYLLABLES), picks[:, 2:])
        candidates = syllables[picks].sum(axis=1)
        made_up = [w for w in dict.fromkeys(candidates.tolist()) if w not in set(real)][:tail_words]
        words = real + made_up
        self.n_words = len(words)
        nums = [str(int(x)) for x in rng.integers(0, 1000, size=numbers // 2)]
        nums += [f"{x:.2f}" for x in rng.random(numbers - numbers // 2) * 100]
        self.vocab = np.array(words + nums, dtype=object)
        self.n_numbers = len(nums)
        ranks = np.arange(1, self.n_words + 1, dtype=np.float64)
        self.cdf = np.cumsum(1.0 / ranks ** 1.05)
        self.cdf /= self.cdf[-1]

    def token_ids(self, rng: np.random.Generator, n: int, topic: np.ndarray | None = None) -> np.ndarray:
        """n token ids: Zipf words (from `topic`'s word ids if given) with about 4% numbers."""
        if topic is None:
            ids = np.searchsorted(self.cdf, rng.random(n))
        else:
            ids = topic[np.minimum(rng.zipf(1.3, size=n) - 1, len(topic) - 1)]
        numbers = rng.random(n) < 0.04
        ids[numbers] = self.n_words + rng.integers(0, self.n_numbers, size=int(numbers.sum()))
        return ids

    def lengths(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Log-normal question lengths in words, mean about 64, at least 4."""
        return np.maximum(4, np.round(rng.lognormal(np.log(55.0), 0.55, size=n))).astype(np.int64)

    def render(self, rng: np.random.Generator, ids: np.ndarray, opener: int) -> str:
        words = self.vocab[ids].tolist()
        for i in np.flatnonzero(rng.random(len(words)) < 0.06):
            words[i] += ","
        return f"{OPENERS[opener]} {' '.join(words)}?"

    def questions(self, rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], np.ndarray]:
        lengths = self.lengths(rng, n)
        flat = self.token_ids(rng, int(lengths.sum()))
        return np.split(flat, np.cumsum(lengths)[:-1]), rng.integers(0, len(OPENERS), size=n)

    def edit(self, rng: np.random.Generator, ids: np.ndarray, rate: float) -> np.ndarray:
        """At least one edit, about `rate` edits per word: adjacent swap, deletion, substitution (a
        "synonym": another word of similar frequency) or number change, chosen at random."""
        ids = ids.copy()
        n_edits = max(1, int(rng.binomial(len(ids), rate)))
        for _ in range(n_edits):
            if len(ids) < 3:
                break
            i = int(rng.integers(0, len(ids) - 1))
            op = rng.random()
            if op < 0.25:
                ids[i], ids[i + 1] = ids[i + 1], ids[i]
            elif op < 0.5:
                ids = np.delete(ids, i)
            elif op < 0.85:
                rank = ids[i] if ids[i] < self.n_words else int(rng.integers(0, self.n_words))
                ids[i] = int(np.clip(rank + rng.integers(-50, 51), 0, self.n_words - 1))
            else:
                ids[i] = self.n_words + int(rng.integers(0, self.n_numbers))
        return ids


def surface_variant(rng: np.random.Generator, text: str) -> str:
    """The same words, written differently: case, spacing, punctuation."""
    choice = int(rng.integers(0, 4))
    if choice == 0:
        return text.upper()
    if choice == 1:
        return "  " + text.replace(" ", "   ") + "\n"
    if choice == 2:
        return text.rstrip("?") + " ."
    return text.lower().replace(",", " ;")


def benchmark_corpus(n: int, seed: int = 0, near_fraction: float = 0.12,
                     exact_fraction: float = 0.07) -> list[str]:
    """n questions; near_fraction are edited copies (1-4% of words edited) and exact_fraction surface
    variants of earlier questions, at random positions."""
    gen = QuestionGenerator(seed)
    rng = np.random.default_rng(seed + 1)
    kind = rng.random(n)
    near = kind < near_fraction
    exact = (kind >= near_fraction) & (kind < near_fraction + exact_fraction)
    ids, openers = gen.questions(rng, n)
    texts: list[str] = [""] * n
    for i in range(n):
        if i > 0 and (near[i] or exact[i]):
            base = int(rng.integers(0, i))
            if exact[i]:
                texts[i] = surface_variant(rng, texts[base])
                continue
            ids[i], openers[i] = gen.edit(rng, ids[base], float(rng.uniform(0.01, 0.04))), openers[base]
        texts[i] = gen.render(rng, ids[i], int(openers[i]))
    return texts


# ---------------------------------------------------------------------------------------------------------
# Labelled pairs
# ---------------------------------------------------------------------------------------------------------
def shingle_sets(texts: list[str], ngram: int = 3) -> list[set[tuple[str, ...]]]:
    """The exact word n-gram sets (strings, no hashing) of the paper-mode normalisation."""
    return [set(minhash.ngrams(words, ngram)) for words in minhash.tokenize(texts)]


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if (a or b) else 1.0


@dataclass
class LabelledPairs:
    first: list[str]
    second: list[str]
    similarity: np.ndarray      # exact Jaccard of the word 3-gram sets
    duplicate: np.ndarray       # label: similarity >= threshold
    kind: np.ndarray            # "edit", "stem", "topic"


def labelled_pairs(n_edit: int = 3000, n_stem: int = 1000, n_topic: int = 1000, threshold: float = 0.6,
                   seed: int = 0) -> LabelledPairs:
    gen = QuestionGenerator(seed)
    rng = np.random.default_rng(seed + 7)
    first, second, kinds = [], [], []
    # edited copies: edit rates from light to heavy so that similarities spread over [0.2, 1]
    ids, openers = gen.questions(rng, n_edit)
    for tokens, opener in zip(ids, openers):
        edited = gen.edit(rng, tokens, float(rng.uniform(0.0, 0.12)))
        first.append(gen.render(rng, tokens, int(opener)))
        second.append(gen.render(rng, edited, int(opener)))
        kinds.append("edit")
    # a shared stem (the set-up of a problem) with different questions at the end
    stems, openers = gen.questions(rng, n_stem)
    for stem, opener in zip(stems, openers):
        tails = [gen.token_ids(rng, int(rng.integers(3, 40))) for _ in range(2)]
        first.append(gen.render(rng, np.concatenate([stem, tails[0]]), int(opener)))
        second.append(gen.render(rng, np.concatenate([stem, tails[1]]), int(opener)))
        kinds.append("stem")
    # distinct questions on one topic: both drawn from the same 120 words
    for _ in range(n_topic):
        topic = rng.choice(gen.n_words, size=120, replace=False)
        pair = [gen.token_ids(rng, int(n), topic) for n in gen.lengths(rng, 2)]
        opener = int(rng.integers(0, len(OPENERS)))
        first.append(gen.render(rng, pair[0], opener))
        second.append(gen.render(rng, pair[1], opener))
        kinds.append("topic")
    sets_a, sets_b = shingle_sets(first), shingle_sets(second)
    similarity = np.array([jaccard(a, b) for a, b in zip(sets_a, sets_b)])
    return LabelledPairs(first, second, similarity, similarity >= threshold, np.array(kinds))


def _unique_index(pairs: LabelledPairs) -> tuple[list[str], np.ndarray, np.ndarray]:
    index: dict[str, int] = {}
    for text in pairs.first + pairs.second:
        index.setdefault(text, len(index))
    return (list(index), np.array([index[t] for t in pairs.first]), np.array([index[t] for t in pairs.second]))


def ours_predict(pairs: LabelledPairs, config: minhash.DedupConfig) -> np.ndarray:
    """A pair is predicted duplicate when both questions end up in the same cluster."""
    texts, a, b = _unique_index(pairs)
    result = minhash.deduplicate(texts, config, ids=[f"{i:08d}" for i in range(len(texts))], threads=1)
    rep = result.representative
    return (rep[a] >= 0) & (rep[a] == rep[b])


def datasketch_predict(pairs: LabelledPairs, num_perm: int, bands: int, rows: int, threshold: float,
                       seed: int = 1) -> np.ndarray:
    """datasketch MinHash (update_batch over the same 3-gram shingles, UTF-8) in a MinHashLSH with the given
    banding; a pair is predicted duplicate when the second question is among the first's query results."""
    from datasketch import MinHash, MinHashLSH

    texts, a, b = _unique_index(pairs)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=(bands, rows))
    shingles = ([" ".join(s).encode("utf-8") for s in sets] for sets in shingle_sets(texts))
    sketches = MinHash.bulk(shingles, num_perm=num_perm, seed=seed)      # update_batch per question
    for i, m in enumerate(sketches):
        lsh.insert(i, m)
    return np.array([int(j) in set(lsh.query(sketches[i])) for i, j in zip(a, b)])


def precision_recall(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    true_pos = int(np.count_nonzero(predicted & truth))
    precision = true_pos / max(1, int(np.count_nonzero(predicted)))
    recall = true_pos / max(1, int(np.count_nonzero(truth)))
    return precision, recall
