"""Near-duplicate detection of questions: MinHash LSH on word n-grams (used by stages/dedup_questions.py)."""
