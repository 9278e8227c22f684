"""Regenerate megascience_datasets/sample/: a small dataset repository folder with every configuration.

The rows below were written by hand by the project team in the released schema; they are not taken from
the real datasets. With `--from-build DIR` the TextbookReasoning family (`textbook` and every `textbook_*`
configuration) takes its rows from a built dataset repository folder instead, e.g. the `./megascience/`
that `make demo` writes (real pipeline output of SmolLM2-135M on the embedded corpus):

    python -m megascience_datasets.make_sample [--from-build megascience]
"""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from . import derive
from .catalogue import load_catalogue
from .repo_folder import write_repo_folder

NOTE = ("This folder is a SAMPLE shipped inside the megascience-datasets package: a few hand-written rows per "
        "configuration in the released schema, not real MegaScience data. It exists so that examples and "
        "`make demo` run offline; the build pipeline regenerates it from real pipeline output. It is loaded "
        "only when asked for by name (`sample=True` or `revision=\"sample\"`).")

TEXTBOOK = [
    ("A 2.0 kg block slides down a frictionless incline of height 1.5 m, starting from rest. What is its speed "
     "at the bottom? Take g = 9.8 m/s^2.",
     "Energy is conserved because the incline is frictionless, so the potential energy lost becomes kinetic "
     "energy: m g h = (1/2) m v^2. The mass cancels, giving v = sqrt(2 g h) = sqrt(2 * 9.8 * 1.5) = sqrt(29.4) "
     "= 5.42 m/s. The speed at the bottom is about 5.4 m/s, independent of the block's mass.",
     "physics", "about 5.4 m/s"),
    ("Find the derivative of f(x) = x^3 ln(x) for x > 0.",
     "Use the product rule with u = x^3 and v = ln(x): u' = 3x^2 and v' = 1/x. Then f'(x) = u'v + uv' = "
     "3x^2 ln(x) + x^3 (1/x) = 3x^2 ln(x) + x^2 = x^2 (3 ln(x) + 1).",
     "math", "x^2 (3 ln x + 1)"),
    ("How many moles of water are produced when 4.0 g of hydrogen gas burns completely in excess oxygen?",
     "The reaction is 2 H2 + O2 -> 2 H2O, so one mole of H2 gives one mole of H2O. The molar mass of H2 is "
     "2.0 g/mol, so 4.0 g is 2.0 mol of H2, which produces 2.0 mol of water.",
     "chemistry", "2.0 mol"),
    ("Which organelle carries out oxidative phosphorylation in eukaryotic cells, and where exactly does the "
     "electron transport chain sit?",
     "Oxidative phosphorylation happens in the mitochondrion. The electron transport chain complexes are "
     "embedded in the inner mitochondrial membrane; they pump protons into the intermembrane space, and ATP "
     "synthase uses the resulting gradient to make ATP as protons flow back into the matrix.",
     "biology", "the mitochondrion; the inner mitochondrial membrane"),
    ("A patient's arterial blood has pH 7.30 and PaCO2 of 60 mmHg. What primary acid-base disorder is this?",
     "A pH below 7.35 means acidaemia. The PaCO2 is above the normal 35-45 mmHg, so the acidaemia is "
     "explained by retained carbon dioxide: this is a primary respiratory acidosis, as seen with "
     "hypoventilation.",
     "medicine", "respiratory acidosis"),
    ("What is the worst-case time complexity of binary search on a sorted array of n elements, and why?",
     "Each comparison halves the part of the array that can still contain the target. After k comparisons at "
     "most n / 2^k elements remain, and the search ends when this drops to one, i.e. after about log2(n) "
     "steps. The worst case is therefore O(log n).",
     "computer science", "O(log n)"),
    ("If the price elasticity of demand for a good is -0.5, what happens to total revenue when its price "
     "rises by 10 percent?",
     "An elasticity of -0.5 means quantity falls by about 0.5 * 10 = 5 percent. Revenue is price times "
     "quantity, so it changes by roughly 1.10 * 0.95 = 1.045, a rise of about 4.5 percent: demand is "
     "inelastic, so raising the price increases revenue.",
     "economics", "it rises by about 4.5 percent"),
    ("Solve the equation 2^(x+1) = 32.",
     "Write 32 as a power of two: 32 = 2^5. Equal bases give equal exponents, so x + 1 = 5 and x = 4.",
     "math", "x = 4"),
]

MIXTURE = {
    "natural_reasoning": [
        ("Why does a satellite in a circular orbit not need fuel to keep moving?",
         "In a circular orbit gravity supplies exactly the centripetal force m v^2 / r. No force acts along the "
         "direction of motion, so no work is done and the speed stays constant; without air drag nothing "
         "removes energy, so no thrust is needed. \\boxed{Gravity provides the centripetal force and does no work.}",
         "physics", "gravity provides the centripetal force; no work is done"),
        ("Is the sum of two odd integers always even? Prove it.",
         "Write the integers as 2a + 1 and 2b + 1. Their sum is 2a + 2b + 2 = 2(a + b + 1), a multiple of two, "
         "so it is even. \\boxed{Yes}",
         "math", "yes"),
        ("What limits the resolution of an optical microscope?",
         "Diffraction: two points closer than about 0.61 lambda / NA blur into one (the Rayleigh criterion), "
         "so visible light limits resolution to roughly 200 nm. \\boxed{Diffraction of light, about 200 nm}",
         "physics", "diffraction, about 200 nm"),
    ],
    "nemotron_science": [
        ("Which of the following is a strong acid in water? A) HF B) CH3COOH C) HCl D) H2CO3",
         "A strong acid dissociates completely in water. Of the options only hydrochloric acid does; HF, acetic "
         "acid and carbonic acid are weak. \\boxed{C}",
         "chemistry", "C"),
        ("A gene has two alleles, A dominant over a. What fraction of offspring of an Aa x Aa cross show the "
         "recessive phenotype?",
         "The Punnett square gives AA, Aa, Aa and aa in equal proportions; only aa shows the recessive trait, "
         "so the fraction is 1/4. \\boxed{1/4}",
         "biology", "1/4"),
        ("What is the de Broglie wavelength of an electron moving at 1.0 x 10^6 m/s?",
         "lambda = h / (m v) = 6.63e-34 / (9.11e-31 * 1.0e6) = 7.3e-10 m, about 0.73 nm. \\boxed{7.3 \\times 10^{-10} m}",
         "physics", "7.3e-10 m"),
    ],
    "scp116k": [
        ("Show that the function f(x) = e^x - x - 1 is non-negative for all real x.",
         "f'(x) = e^x - 1 is negative for x < 0 and positive for x > 0, so f has its minimum at x = 0, where "
         "f(0) = 0. Hence f(x) >= 0 everywhere. \\boxed{f(x) \\ge 0}",
         "math", "f(x) >= 0 with equality only at x = 0"),
        ("What is the oxidation state of manganese in KMnO4?",
         "Potassium is +1 and each oxygen -2, so Mn + 1 - 8 = 0 gives Mn = +7. \\boxed{+7}",
         "chemistry", "+7"),
    ],
}


def _id(*parts: str) -> str:
    import hashlib
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:32]


def _textbook_table() -> pa.Table:
    cols = list(zip(*TEXTBOOK))
    return pa.table({"question": cols[0], "answer": cols[1], "subject": cols[2], "reference_answer": cols[3]})


def _built(rows, name: str, source: str | None, note: str) -> pa.Table:
    cols = list(zip(*rows))
    data = {"id": [_id(name, q) for q in cols[0]], "question": list(cols[0]), "answer": list(cols[1]),
            "subject": list(cols[2]), "reference_answer": list(cols[3])}
    if source is not None:
        data["source"] = [source] * len(rows)
    data["provenance"] = [json.dumps({"origin": {"kind": "sample", "note": note}, "steps": [], "signals": {}})
                          for _ in rows]
    return pa.table(data)


BUILT_NOTE = ("This folder is a SAMPLE shipped inside the megascience-datasets package, not real MegaScience data. "
              "The TextbookReasoning configurations (`textbook`, `textbook_*`) hold rows produced by `make demo`: "
              "the project's pipeline run on its embedded corpus with SmolLM2-135M-Instruct, so they show the "
              "schema and provenance, not training quality. The other configurations hold hand-written rows in "
              "the released schema. It is loaded only when asked for by name (`sample=True` or "
              "`revision=\"sample\"`).")


def built_textbook_rows(folder: str | Path, limit: int = 8) -> pa.Table:
    """The first `limit` rows of a built `textbook` configuration (released columns + id + provenance)."""
    import pyarrow.parquet as pq
    shards = sorted((Path(folder) / "data" / "textbook").glob("*.parquet"))
    if not shards:
        raise FileNotFoundError(f"{folder}: no data/textbook/*.parquet (run `make demo` first)")
    table = pa.concat_tables([pq.read_table(s) for s in shards]).slice(0, limit)
    if table.num_rows == 0:
        raise ValueError(f"{folder}: the built textbook configuration has no rows")
    return table.select(["id", "question", "answer", "subject", "reference_answer", "provenance"])


def sample_parameters(entry, parent: pa.Table) -> dict:
    """A random selection in the sample keeps the paper's fraction of its parent (297,600 of 651,840)."""
    n = entry.derived.parameters.get("n")
    if entry.derived.rule == "select_random" and isinstance(n, int):
        return {"n": max(1, round(parent.num_rows * n / PAPER_PARENT_ROWS.get(entry.derived.parent, n)))}
    return {}


PAPER_PARENT_ROWS = {"textbook": 651840, "megascience": 1253230}


def sample_tables(built: pa.Table | None = None, records: dict | None = None) -> dict[str, pa.Table]:
    """Every configuration's sample rows; `records` (if given) receives each derived one's derivation record."""
    cat = load_catalogue()
    out: dict[str, pa.Table] = {"textbook": _textbook_table()}
    if built is not None:
        out["textbook"] = built.select(["question", "answer", "subject", "reference_answer"])
        for e in cat:                  # the pipeline variants are whole rebuilds: the built rows stand for them
            if e.name.startswith("textbook_") and e.group == "pipeline" and e.derived.rule not in derive.SIGNAL_RULES:
                out[e.name] = built
    mixture = [r + ("textbook",) for r in TEXTBOOK[:4]]
    mixture += [r + ("natural_reasoning",) for r in MIXTURE["natural_reasoning"][:2]]
    mixture += [r + ("nemotron_science",) for r in MIXTURE["nemotron_science"][:2]]
    cols = list(zip(*mixture))
    out["megascience"] = pa.table({"question": cols[0], "answer": cols[1], "subject": cols[2],
                                   "reference_answer": cols[3], "source": cols[4]})
    for e in cat:                      # derived configurations: the rule applied to the sample's parent
        if derive.derivable(e):
            out[e.name], plan = derive.derive_table(e, out[e.derived.parent],
                                                    sample_parameters(e, out[e.derived.parent]))
            if records is not None:
                records[e.name] = {"derivation": plan.record()}
    for e in cat:                      # signals (hand-set sample values) and the subsets their rules give
        d = e.derived
        if d is None or e.name in out or d.rule not in ("signals",) + derive.SIGNAL_RULES:
            continue
        pool = _pool(out, d.parent, cat)
        sig = out.setdefault(derive.signals_config(d.parent), sample_signals(pool))
        if d.rule != "signals":
            positions = derive.signal_positions(d.rule, sig, d.parameters, d.seed, f"sample {e.name}")
            out[e.name] = _with_ids(pool.take(pa.array(positions, pa.int64())), e, sig.take(pa.array(positions, pa.int64())))
            if records is not None:
                records[e.name] = {"derivation": {"parent": d.parent, "rule": d.rule, "parameters": dict(d.parameters),
                                                  "seed": d.seed, "rows": len(positions), "signals": "sample",
                                                  "ids_sha256": derive.ids_digest(out[e.name].column("id").to_pylist())}}
    for e in cat:
        if e.name in out:
            continue
        family = next((k for k in ("natural_reasoning", "nemotron_science", "scp116k") if e.name.startswith(k)), None)
        note = f"hand-written sample row for {e.name}"
        if family is None:               # textbook-derived: a subset (selections) or all rows (pipeline variants)
            rows = TEXTBOOK[::2] if e.group == "selection" else TEXTBOOK
            out[e.name] = _built(rows, e.name, None, note)
        else:
            rows = MIXTURE[family]
            rows = rows[:2] if e.name != family and e.group == "selection" and e.name.count("_") > 2 else rows
            out[e.name] = _built(rows, e.name, family, note)
    return out


SIGNAL_NOTE = "hand-set sample signal values, not model output"


def _pool(out: dict, name: str, cat) -> pa.Table:
    """The sample rows of a pool (made first if it is a hand-written one)."""
    if name not in out:
        family = next(k for k in ("natural_reasoning", "nemotron_science", "scp116k") if name.startswith(k))
        out[name] = _built(MIXTURE[family], name, family, f"hand-written sample row for {name}")
    return out[name]


def sample_signals(pool: pa.Table) -> pa.Table:
    """Signals for the sample rows of a pool: hand-set values that exercise every rule (some grades outside
    1..9, one length excluded), and the seeded random number the build would store."""
    ids = pool.column("id").to_pylist() if "id" in pool.column_names else derive.table_ids(pool)
    grades = [0.5, 3.0, 8.5, 9.5, 5.0, 2.0, 7.0, 4.0]
    return pa.table({"id": ids, "response_length": pa.array([120 + (37 * k) % 400 for k in range(len(ids))], pa.int64()),
                     "length_excluded": pa.array([k % 5 == 4 for k in range(len(ids))]),
                     "difficulty": pa.array([grades[k % len(grades)] for k in range(len(ids))], pa.float64()),
                     "random_u01": pa.array(derive.uniform_u01(0, ids))})


def _with_ids(rows: pa.Table, entry, signals: pa.Table) -> pa.Table:
    """Rows of a signal-selected sample subset in the entry's features (id and provenance added if missing)."""
    if "id" not in rows.column_names:
        rows = rows.append_column("id", signals.column("id"))
    if "provenance" not in rows.column_names:
        d = entry.derived
        provs = [json.dumps({"origin": {"kind": "sample", "config": d.parent}, "signals": sig, "note": SIGNAL_NOTE,
                             "steps": [{"stage": d.rule, "config": entry.name, "parameters": dict(d.parameters)}]},
                            sort_keys=True) for sig in signals.select(list(derive.SIGNAL_COLUMNS[1:])).to_pylist()]
        rows = rows.append_column("provenance", pa.array(provs, pa.string()))
    return rows.select(list(entry.features))


# the built rows the sample's TextbookReasoning family was last regenerated from (kept so the sample can be
# rewritten byte for byte without re-running the pipeline)
BUILT_ROWS = Path(__file__).parent / "sample_source" / "textbook_demo.parquet"


def main(dest: str | Path | None = None, from_build: str | Path | None = None) -> dict:
    import pyarrow.parquet as pq
    dest = Path(dest) if dest else Path(__file__).parent / "sample"
    if from_build:
        built = built_textbook_rows(from_build)
        BUILT_ROWS.parent.mkdir(exist_ok=True)
        pq.write_table(built, BUILT_ROWS, compression="zstd")
    else:
        built = pq.read_table(BUILT_ROWS) if BUILT_ROWS.is_file() else None
    records: dict = {}
    tables = sample_tables(built, records)
    return write_repo_folder(dest, {n: [t] for n, t in tables.items()}, extra=records,
                             revision={"tag": "sample", "sha": None, "url": "megascience_datasets/sample"},
                             sample_note=BUILT_NOTE if built is not None else NOTE, overwrite=True)


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(prog="python -m megascience_datasets.make_sample", description=__doc__)
    parser.add_argument("--from-build", help="a built dataset repository folder (e.g. ./megascience from make demo)")
    parser.add_argument("--dest", help="where to write (default: the package's sample folder)")
    args = parser.parse_args()
    m = main(args.dest, args.from_build)
    print(f"wrote {len(m['configs'])} configurations: " + ", ".join(f"{n} ({c['rows']})" for n, c in m["configs"].items()))
