# Adaptive refinement of n_train around the memorisation crossover (grid.refine, docs/refine.md).
# Round r reads the evaluated cells of the grid and of the rounds before it and writes the
# cells it adds to refine/<dataset>/round<r>.json (a checkpoint); train, evaluate and
# reference then run them as grid cells and summarize lists them. rounds: 0 runs nothing here.
from fmscale.refine import read_round
from fmscale.layout import REFINE_PATTERN

REFINE = STUDY.grid.refine


def round_cells(rounds):
    """The cells rounds 1 .. ``rounds`` added (Snakemake runs each round's checkpoint first)."""
    found = []
    for round_ in range(1, rounds + 1):
        found += read_round(
            checkpoints.refine.get(dataset=DATA, round=round_).output[0]
        )
    return found


def refined_files(name, rounds=REFINE.rounds):
    """An input function: the file ``name`` of every cell refinement rounds 1 .. ``rounds``
    added (none when refinement is off)."""

    def files(wildcards):
        return [
            f"{RESULTS}/{CELL_PATTERN.format(**c)}/{name}" for c in round_cells(rounds)
        ]

    return files


def refined_references(wildcards):
    """The reference rows of every n_train the refinement rounds added."""
    sizes = {c["n_train"] for c in round_cells(REFINE.rounds)} - set(GRID["n_train"])
    return [
        f"{RESULTS}/{REFERENCE_PATTERN.format(dataset=DATA, n_train=n)}"
        for n in sorted(sizes)
    ]


def round_results(wildcards, output):
    """The results folder a round's file is in (REFINE_PATTERN's folders up)."""
    return os.path.dirname(output[0]).rsplit(os.sep, REFINE_PATTERN.count("/"))[0]


checkpoint refine:
    input:
        metrics=cell_files("metrics.json"),
        refined_metrics=lambda wildcards: refined_files(
            "metrics.json", int(wildcards.round) - 1
        )(wildcards),
    output:
        f"{RESULTS}/{REFINE_PATTERN}",
    log:
        f"{RESULTS}/logs/refine/{{dataset}}/round{{round}}.log",
    wildcard_constraints:
        round=r"[1-9][0-9]*",
    conda:
        CPU_ENV
    params:
        results=round_results,
        settings=settings(STUDY, "grid", "data"),
        levels=" ".join(map(str, STUDY.analysis.levels)),
        points=REFINE.points,
        min_n=REFINE.min_n,
    message:
        "refine {wildcards.dataset} round {wildcards.round}: n_train values where memorised_fraction crosses {params.levels}"
    shell:
        "python -m fmscale refine {params.results:q} --settings {params.settings:q} "
        "--round {wildcards.round} --levels {params.levels} --points {params.points} "
        "--min-n {params.min_n} "
        "-o {output:q} > {log:q} 2>&1"
