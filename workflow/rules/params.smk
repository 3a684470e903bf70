# The parameter-ratio gate: every train job waits on it; an off-ratio table stops the study.


rule verify_params:
    output:
        csv=f"{RESULTS}/params.csv",
        md=report(
            f"{RESULTS}/params.md",
            caption="../report/params.rst",
            category="Parameters",
        ),
    log:
        f"{RESULTS}/logs/verify_params.log",
    conda:
        "../../envs/fmscale.yaml"
    params:
        table=TABLE_FLAG,
        allow="--allow-off-ratio" if STUDY.params.allow_off_ratio else "",
    shell:
        "fmscale params {params.table} --out-csv {output.csv} --out-md {output.md} "
        "{params.allow} 2>&1 | tee {log}"
