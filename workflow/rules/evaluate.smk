# Sample and score each cell; score the reference rows once per n_train.


rule evaluate:
    input:
        model=rules.train.output.model,
        cell=rules.train.output.cell,
        dataset=POOL,
    output:
        f"{CELL}/metrics.json",
    log:
        f"{RESULTS}/logs/evaluate/{CELL_LOG_NAME}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{CELL_LOG_NAME}.tsv"
    retries: RES.retries
    conda:
        JOB_ENV
    threads: RES.train_threads
    resources:
        mem_mb=RES.mem_mb,
        runtime=runtime_min,
        gpu=1 if RES.gpu else 0,
    params:
        settings=settings(STUDY, "data", "evaluate"),
        run=lambda wildcards, input: os.path.dirname(input.model),
        device=STUDY.train.device,
    message:
        "evaluate {wildcards.dataset}: {wildcards.arch}/{wildcards.scale} n_train={wildcards.n_train} seed={wildcards.seed}"
    shell:
        "python -m fmscale evaluate {params.run:q} --dataset {input.dataset:q} "
        "--settings {params.settings:q} --device {params.device} --threads {threads} "
        "--out {output:q} > {log:q} 2>&1"


rule reference:
    input:
        dataset=POOL,
    output:
        f"{RESULTS}/{REFERENCE_PATTERN}",
    log:
        f"{RESULTS}/logs/reference/{{dataset}}/n{{n_train}}.log",
    conda:
        CPU_ENV
    threads: RES.train_threads
    resources:
        mem_mb=RES.mem_mb,
    params:
        settings=settings(STUDY, "data", "evaluate"),
    message:
        "reference rows of {wildcards.dataset} for n_train={wildcards.n_train}"
    shell:
        "python -m fmscale reference --n-train {wildcards.n_train} --dataset {input.dataset:q} "
        "--settings {params.settings:q} --threads {threads} --out {output:q} > {log:q} 2>&1"
