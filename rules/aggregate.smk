# Per-metric tables, then one merged dataset, then phases and figures (DESIGN.md data flow).
# Per-metric aggregation means a change to one metric rebuilds only its table and the merge.

localrules:
    aggregate,
    merge,
    classify,
    plots,


PER_SEED_FILE = {"train": "train.json", "evaluate": "evaluate.json", "hessian": "hessian.json"}
PER_CELL_FILE = {"cka": "cka.json", "distance": "distance.json"}
METRICS = [*PER_SEED_FILE, *PER_CELL_FILE] + (["curves"] if CURVE_PAIRS else [])
METRIC_SOURCE = {"train": "train.py", "evaluate": "metrics/evaluate.py", "hessian": "metrics/hessian.py",
                 "cka": "metrics/cka.py", "distance": "metrics/distance.py", "curves": "metrics/curves.py"}


def metric_outputs(wildcards):
    metric = wildcards.metric
    if metric in PER_SEED_FILE:
        return [f"{RESULTS}/{cell}/seed={seed}/{PER_SEED_FILE[metric]}" for cell in CELLS for seed in SEEDS]
    if metric in PER_CELL_FILE:
        return [f"{RESULTS}/{cell}/{PER_CELL_FILE[metric]}" for cell in CELLS]
    return [f"{RESULTS}/{cell}/pair={a}-{b}/curve_eval.json" for cell in CELLS for a, b in CURVE_PAIRS]


def metric_config(wildcards):
    """The part of the config a metric's table is shaped by: grid, seeds (and curve points)."""
    shape = {"grid": CONFIG["grid"], "seeds": SEEDS}
    if wildcards.metric == "curves":
        shape["curves"] = {"points": CONFIG["curves"]["points"], "pairs": CONFIG["curves"]["pairs"]}
    return canonical_json(shape)


rule aggregate:
    input:
        outputs=metric_outputs,
        code=SRC / "dataset.py",
    output:
        f"{RESULTS}/aggregate/{{metric}}.nc",
    params:
        config=metric_config,
        results=RESULTS,
    wildcard_constraints:
        metric="|".join(METRICS),
    log:
        f"{RESULTS}/logs/aggregate/{{metric}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate/{{metric}}.tsv"
    shell:
        "lltax aggregate-metric {wildcards.metric} --results-dir {params.results:q}"
        " --config-json {params.config:q} --out {output:q} > {log} 2>&1"


rule merge:
    input:
        tables=expand(f"{RESULTS}/aggregate/{{metric}}.nc", metric=METRICS),
        code=SRC / "dataset.py",
    output:
        f"{RESULTS}/dataset.nc",
    params:
        # The resolved config stored in the dataset: everything that shaped its numbers.
        config=canonical_json({k: v for k, v in CONFIG.items() if k not in ("classify", "plots", "landscape")}),
    log:
        f"{RESULTS}/logs/merge.log",
    shell:
        "lltax merge --inputs {input.tables:q} --config-json {params.config:q} --out {output:q} > {log} 2>&1"


rule classify:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        code=SRC / "phases.py",
    output:
        f"{RESULTS}/phases.nc",
    params:
        settings=section("classify"),
    log:
        f"{RESULTS}/logs/classify.log",
    shell:
        "lltax classify {input.dataset:q} {output:q} --settings {params.settings:q} > {log} 2>&1"


FIGURE = f"{RESULTS}/figures/{{name}}.{CONFIG['plots']['format']}"


rule plots:
    input:
        dataset=f"{RESULTS}/dataset.nc",
        phases=f"{RESULTS}/phases.nc",
        code=SRC / "plots.py",
    output:
        **{
            name: report(FIGURE.format(name=name), caption=f"../report/{name}.rst", category="Phase diagrams")
            for name in ("panels", "phases", "lines", "curves")
        },
    params:
        settings=section("plots"),
        out_dir=f"{RESULTS}/figures",
    log:
        f"{RESULTS}/logs/plots.log",
    shell:
        "lltax plot --dataset {input.dataset:q} --phases {input.phases:q} --settings {params.settings:q}"
        " --out-dir {params.out_dir:q} > {log} 2>&1"
