# The parameter-ratio gate, per dataset (D is the data's): checked while the DAG is built
# (common.smk) and recorded here; every train job waits on it and trains its table.


rule verify_params:
    input:
        dataset=POOL,
    output:
        csv=f"{PARAMS}/params.csv",
        md=report(
            f"{PARAMS}/params.md",
            caption="../report/params.rst",
            category="Parameters",
        ),
        table=f"{PARAMS}/table.yaml",
    log:
        f"{RESULTS}/logs/verify_params/{{dataset}}.log",
    conda:
        CPU_ENV
    params:
        table=TABLE_FLAG,
        fit="--fit" if FIT_TABLE else "",
        allow="--allow-off-ratio" if STUDY.params.allow_off_ratio else "",
        archs=",".join(GRID["archs"]),
        parameterisation=STUDY.train.parameterisation,
    message:
        "gate: count every arch x scale at the data's D and check the parameter ratios"
    shell:
        "python -m fmscale params {params.table} --dataset {input.dataset:q} --archs {params.archs} "
        "--parameterisation {params.parameterisation} {params.fit} "
        "--out-csv {output.csv:q} --out-md {output.md:q} --out-table {output.table:q} "
        "{params.allow} 2>&1 | tee {log:q}"
