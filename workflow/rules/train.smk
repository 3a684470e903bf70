# One train job per cell. Checkpoints live in <cell>/ckpt/, outside the declared outputs, so
# a rerun (--rerun-incomplete, a retry, a requeue) resumes from the last one.


rule train:
    input:
        # ancient: a gate rerun (same verdicts) retrains nothing; a changed row does (params.row)
        gate=ancient(f"{PARAMS}/params.csv"),
        table=ancient(f"{PARAMS}/table.yaml"),
        dataset=POOL,
    output:
        model=f"{CELL}/model.safetensors",
        cell=f"{CELL}/cell.json",
        log=f"{CELL}/train_log.csv",
    log:
        f"{RESULTS}/logs/train/{CELL_LOG_NAME}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{CELL_LOG_NAME}.tsv"
    retries: RES.retries
    conda:
        JOB_ENV
    threads: RES.train_threads
    resources:
        mem_mb=lambda wildcards, attempt: RES.mem_mb * attempt,
        runtime=runtime_min,
        gpu=1 if RES.gpu else 0,
    params:
        settings=settings(STUDY, "data", "train"),
        row=table_row,
        out=lambda wildcards, output: os.path.dirname(output.model),
    message:
        "train {wildcards.dataset}: {wildcards.arch}/{wildcards.scale} n_train={wildcards.n_train} seed={wildcards.seed}"
    shell:
        "python -m fmscale train --arch {wildcards.arch} --scale {wildcards.scale} "
        "--n-train {wildcards.n_train} --seed {wildcards.seed} --table {input.table:q} "
        "--dataset {input.dataset:q} --settings {params.settings:q} --threads {threads} "
        "--out {params.out:q} --no-progress > {log:q} 2>&1"
