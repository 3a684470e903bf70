# fmscale: arch x scale x n_train x seed ablation of flow-matching velocity networks.
# Usage: snakemake --cores all    (see README.md)
import os

from snakemake.utils import min_version, validate

from fmscale.configfiles import read_yaml

min_version("8.0")

# An empty, non-mapping or invalid config.yaml: an error naming the file (Snakemake's own
# message for a bad --configfile does not name it, and comes before this file runs).
if os.path.exists("config.yaml"):
    read_yaml("config.yaml")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/params.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/refine.smk"
include: "workflow/rules/summarize.smk"
include: "workflow/rules/analyze.smk"


# Every cell's metrics are targets in their own right, not only inputs of the summary: without
# Snakemake's metadata (a copied results folder, --rerun-triggers mtime) a grown grid would
# otherwise find the summary present and train nothing (snakemake/snakemake#2011).
rule all:
    default_target: True
    input:
        rules.summarize.output,
        rules.analyze.output,
        rules.summarize.input.metrics,
        rules.summarize.input.refined_metrics,
