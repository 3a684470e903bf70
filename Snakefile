# fmscale: arch x scale x n_train x seed ablation of flow-matching velocity networks.
# Usage: snakemake --cores all    (see README.md)
from snakemake.utils import min_version, validate

min_version("8.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/params.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/summarize.smk"


rule all:
    default_target: True
    input:
        rules.summarize.output,
