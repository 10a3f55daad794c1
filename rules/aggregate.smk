# Per-metric tables, then one merged dataset, then phases and figures (DESIGN.md data flow).
# Per-metric aggregation means a change to one metric rebuilds only its table and the merge.


localrules:
    aggregate,
    merge,
    classify,
    plots,
    atlas,


rule aggregate:
    input:
        outputs=metric_outputs,
        # Every record is checked against the checkpoints it names (their metadata only).
        checkpoints=[f"{RESULTS}/{cell}/seed={seed}/{CHECKPOINT}" for cell in CELLS for seed in SEEDS],
        code=sources("aggregate-metric"),
    output:
        f"{RESULTS}/aggregate/{{metric}}.nc",
    log:
        f"{RESULTS}/logs/aggregate/{{metric}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate/{{metric}}.tsv"
    wildcard_constraints:
        metric="|".join(METRICS),
    conda:
        "../envs/lltax.yaml"
    threads: 1
    params:
        config=metric_config,
        results=lambda wildcards, output: Path(output[0]).parent.parent,
    shell:
        "lltax aggregate-metric --metric {wildcards.metric:q} --results-dir {params.results:q}"
        " --config-json {params.config:q} --out {output:q} --threads {threads:q} > {log:q} 2>&1"


rule merge:
    input:
        tables=expand(f"{RESULTS}/aggregate/{{metric}}.nc", metric=METRICS),
        code=sources("merge"),
    output:
        f"{RESULTS}/dataset.nc",
    log:
        f"{RESULTS}/logs/merge.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge.tsv"
    conda:
        "../envs/lltax.yaml"
    threads: 1
    params:
        # A function: the config may hold braces (checkpoints.path) that a string param would expand.
        config=lambda wildcards: DATASET_CONFIG,
    shell:
        "lltax merge --tables {input.tables:q} --config-json {params.config:q} --out {output:q} --threads {threads:q} > {log:q} 2>&1"


rule classify:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        code=sources("classify"),
    output:
        f"{RESULTS}/phases.nc",
    log:
        f"{RESULTS}/logs/classify.log",
    benchmark:
        f"{RESULTS}/benchmarks/classify.tsv"
    conda:
        "../envs/lltax.yaml"
    threads: 1
    params:
        settings=section("classify"),
    shell:
        "lltax classify --dataset {input.dataset:q} --out {output:q} --settings {params.settings:q} --threads {threads:q} > {log:q} 2>&1"


rule plots:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        phases=f"{RESULTS}/phases.nc",
        code=sources("plot"),
    output:
        **{name: report(FIGURE.format(name=name), caption=f"../report/{name}.rst", category="Phase diagrams") for name in FIGURE_NAMES},
    log:
        f"{RESULTS}/logs/plots.log",
    benchmark:
        f"{RESULTS}/benchmarks/plots.tsv"
    conda:
        "../envs/lltax.yaml"
    threads: 1
    params:
        settings=section("plots"),
        out_dir=lambda wildcards, output: Path(output.panels).parent,
    shell:
        "lltax plot --dataset {input.dataset:q} --phases {input.phases:q} --settings {params.settings:q}"
        " --out-dir {params.out_dir:q} --threads {threads:q} > {log:q} 2>&1"
