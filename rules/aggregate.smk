# Per-metric tables, then one merged dataset, then phases and figures (DESIGN.md data flow).
# Per-metric aggregation means a change to one metric rebuilds only its table and the merge.

localrules:
    aggregate,
    merge,
    classify,
    plots,


rule aggregate:
    input:
        outputs=metric_outputs,
        code=sources("dataset"),
    output:
        f"{RESULTS}/aggregate/{{metric}}.nc",
    params:
        config=metric_config,
        results=lambda wildcards, output: Path(output[0]).parent.parent,
    wildcard_constraints:
        metric="|".join(METRICS),
    threads: 1
    log:
        f"{RESULTS}/logs/aggregate/{{metric}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate/{{metric}}.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax aggregate-metric {wildcards.metric} --results-dir {params.results:q}"
        " --config-json {params.config:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule merge:
    input:
        tables=expand(f"{RESULTS}/aggregate/{{metric}}.nc", metric=METRICS),
        code=sources("dataset"),
    output:
        f"{RESULTS}/dataset.nc",
    params:
        # The resolved config stored in the dataset: everything that shaped its numbers.
        config=canonical_json({k: v for k, v in CONFIG.items() if k not in ("classify", "plots", "landscape")}),
    threads: 1
    log:
        f"{RESULTS}/logs/merge.log",
    benchmark:
        f"{RESULTS}/benchmarks/merge.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax merge --inputs {input.tables:q} --config-json {params.config:q} --out {output:q} --threads {threads} > {log:q} 2>&1"


rule classify:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        code=sources("phases"),
    output:
        f"{RESULTS}/phases.nc",
    params:
        settings=section("classify"),
    threads: 1
    log:
        f"{RESULTS}/logs/classify.log",
    benchmark:
        f"{RESULTS}/benchmarks/classify.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax classify {input.dataset:q} {output:q} --settings {params.settings:q} --threads {threads} > {log:q} 2>&1"


rule plots:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        phases=f"{RESULTS}/phases.nc",
        code=sources("plots"),
    output:
        **{
            name: report(FIGURE.format(name=name), caption=f"../report/{name}.rst", category="Phase diagrams")
            for name in ("panels", "phases", "lines", "curves")
        },
    params:
        settings=section("plots"),
        out_dir=lambda wildcards, output: Path(output.panels).parent,
    threads: 1
    log:
        f"{RESULTS}/logs/plots.log",
    benchmark:
        f"{RESULTS}/benchmarks/plots.tsv"
    conda:
        "../envs/lltax.yaml"
    shell:
        "lltax plot --dataset {input.dataset:q} --phases {input.phases:q} --settings {params.settings:q}"
        " --out-dir {params.out_dir:q} --threads {threads} > {log:q} 2>&1"
