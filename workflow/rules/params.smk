# The parameter-ratio gate: every train job waits on it; an off-ratio table stops the study.


rule verify_params:
    input:
        dataset=DATASET,
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
        CPU_ENV
    params:
        table=TABLE_FLAG,
        allow="--allow-off-ratio" if STUDY.params.allow_off_ratio else "",
        archs=",".join(GRID["archs"]),
        parameterisation=STUDY.train.parameterisation,
    message:
        "gate: count every arch x scale and check the parameter ratios"
    shell:
        "python -m fmscale params {params.table} --dataset {input.dataset:q} --archs {params.archs} "
        "--parameterisation {params.parameterisation} "
        "--out-csv {output.csv:q} --out-md {output.md:q} {params.allow} 2>&1 | tee {log:q}"
