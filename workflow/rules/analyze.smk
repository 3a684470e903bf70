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
        vector=expand(
            f"{RESULTS}/analysis/{{name}}.{{fmt}}",
            name=ANALYSIS_FIGURES,
            fmt=[fmt for fmt in FIGURE_FORMATS if fmt != "png"],
        ),
        tables=expand(f"{RESULTS}/analysis/{{name}}.tex", name=ANALYSIS_TABLES),
    log:
        f"{RESULTS}/logs/analyze.log",
    conda:
        CPU_ENV
    params:
        results=lambda wildcards, output: os.path.dirname(output.json),
        levels=" ".join(map(str, STUDY.analysis.levels)),
        resamples=STUDY.analysis.resamples,
        seed=STUDY.analysis.seed,
        data_name=DATA,
    message:
        f"analyze {DATA}: fits with bootstrap CIs, memorisation crossover, result checks"
    shell:
        "python -m fmscale analyze {params.results:q} --levels {params.levels} "
        "--resamples {params.resamples} --seed {params.seed} "
        "--data-name {params.data_name:q} > {log:q} 2>&1"
