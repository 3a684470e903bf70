# One prepared dataset (splits + standardisation) shared by every cell of the study.


rule prepare_data:
    input:
        [STUDY.data.file] if STUDY.data.file else [],
    output:
        POOL,
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    conda:
        CPU_ENV
    resources:
        mem_mb=RES.mem_mb,
    params:
        settings=settings(STUDY, "data"),
        max_n_train=max(GRID["n_train"]),
    message:
        "prepare dataset {wildcards.dataset}: splits and standardisation"
    shell:
        "python -m fmscale prepare-data --settings {params.settings:q} "
        "--max-n-train {params.max_n_train} --out {output:q} > {log:q} 2>&1"
