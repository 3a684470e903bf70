# Scaling-law fits, memorisation onset, paired comparisons and result checks, from the summary
# alone (fmscale.analysis). Checks are reported in analysis.md, never fatal.


rule analyze:
    input:
        csv=rules.summarize.output.csv,
        trajectories=rules.summarize.output.trajectories,
    output:
        md=report(
            f"{RESULTS}/analysis.md",
            caption="../report/analysis.rst",
            category="Analysis",
        ),
        json=f"{RESULTS}/analysis.json",
        figures=report(
            expand(f"{RESULTS}/analysis/{{name}}.png", name=ANALYSIS_FIGURES),
            caption="../report/analysis_figures.rst",
            category="Analysis",
        ),
    log:
        f"{RESULTS}/logs/analyze.log",
    conda:
        CPU_ENV
    params:
        results=lambda wildcards, output: os.path.dirname(output.json),
        # Samples behind each memorised_fraction (evaluate draws this many, capped by n_test).
        n_samples=min(STUDY.evaluate.n_samples, STUDY.data.n_test),
        data_name=DATA,
    message:
        f"analyze {DATA}: fits with bootstrap CIs, memorisation onset, result checks"
    shell:
        "python -m fmscale analyze {params.results:q} --n-samples {params.n_samples} "
        "--data-name {params.data_name:q} > {log:q} 2>&1"
