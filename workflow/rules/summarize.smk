# Tables and plots from finished cells. Regenerating them retrains nothing; under --keep-going
# the onerror hook still writes them, listing the failed cells.


rule summarize:
    input:
        metrics=cell_files("metrics.json"),
        references=expand(
            f"{RESULTS}/{REFERENCE_PATTERN}", dataset=DATA, n_train=GRID["n_train"]
        ),
        params=expand(f"{PARAMS}/params.csv", dataset=DATA),
        # the cells and n_train of the refinement rounds (refine.smk; none when it is off)
        refined_metrics=refined_files("metrics.json"),
        refined_references=refined_references,
    output:
        csv=report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary.rst",
            category="Summary",
        ),
        trajectories=f"{RESULTS}/trajectories.csv",
        md=report(
            f"{RESULTS}/summary.md",
            caption="../report/summary.rst",
            category="Summary",
        ),
        plots=report(
            expand(f"{RESULTS}/plots/{{name}}.png", name=plot_names(SYNTHETIC)),
            caption="../report/plots.rst",
            category="Plots",
        ),
    log:
        f"{RESULTS}/logs/summarize.log",
    conda:
        CPU_ENV
    params:
        settings=settings(STUDY, "grid", "data"),
        results=lambda wildcards, output: os.path.dirname(output.csv),
    message:
        "summarize every cell: summary.csv, summary.md, plots"
    shell:
        "python -m fmscale summarize {params.results:q} --settings {params.settings:q} > {log:q} 2>&1"


GRID_SETTINGS = settings(STUDY, "grid", "data")
ONERROR_LOG = f"{RESULTS}/logs/summarize_onerror.log"


onerror:
    shell(
        "python -m fmscale summarize {RESULTS:q} --settings {GRID_SETTINGS:q} "
        "> {ONERROR_LOG:q} 2>&1 || true"
    )
