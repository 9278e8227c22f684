"""Near-duplicate detection of questions: MinHash LSH on word n-grams (used by stages/dedup_questions.py).

minhash.py      `deduplicate` (the whole run) and the public names; the algorithm in its docstring
lsh_params.py   DedupConfig, the paper and authors settings, bands x rows from the threshold
shingles.py     normalisation, word and shingle hashes per text
signatures.py   MinHash signatures
candidates.py   LSH bands, candidate verification and union-find clusters
"""
