# Landscape pictures per cell (Li et al. 2018): around the first seed, towards the second,
# through the third; each drawn by a job of its own; then atlas.png, one representative cell
# per phase on one scale.


localrules:
    landscape_figure,
    comparison_figure,


rule landscape:
    input:
        checkpoints=lambda wildcards: [f"{RESULTS}/{wildcards.cell}/seed={seed}/{CHECKPOINT}" for seed in LANDSCAPE_SEEDS],
        curve=LANDSCAPE_CURVE,
        code=sources("landscape"),
    output:
        data=f"{RESULTS}/{{cell}}/landscape.nc",
    log:
        cell_log("landscape"),
    benchmark:
        cell_benchmark("landscape")
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("landscape"),
    params:
        **TORCH_JOB,
        settings=LANDSCAPE_SETTINGS,
        memory_budget_gb=CONFIG["memory_budget_gb"],
    shell:
        "lltax landscape --checkpoints {input.checkpoints:q}"
        + (" --curves {input.curve:q}" if LANDSCAPE_CURVE else "")
        + " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device:q}"
        " --memory-budget-gb {params.memory_budget_gb:q} --out {output.data:q}"
        " --threads {threads:q} > {log:q} 2>&1"


rule landscape_comparison:
    input:
        checkpoints=lambda wildcards: [
            f"{RESULTS}/{cell}/seed={SEEDS[0]}/{CHECKPOINT}"
            for cell in (wildcards.cell, COMPARISONS[f"{wildcards.cell}/vs_{wildcards.other}"])
        ],
        code=sources("landscape"),
    output:
        data=f"{RESULTS}/{{cell}}/vs_{{other}}/comparison.nc",
    log:
        f"{RESULTS}/logs/landscape_comparison/{{cell}}/vs_{{other}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/landscape_comparison/{{cell}}/vs_{{other}}.tsv"
    wildcard_constraints:
        other="[^/]+",
    conda:
        "../envs/lltax.yaml"
    threads: THREADS
    resources:
        **torch_resources("landscape"),
    params:
        **TORCH_JOB,
        settings=COMPARISON_SETTINGS,
        memory_budget_gb=CONFIG["memory_budget_gb"],
    shell:
        "lltax landscape --checkpoints {input.checkpoints:q} --across-cells"
        " --settings {params.settings:q} --data-dir {params.data_dir:q} --device {params.device:q}"
        " --memory-budget-gb {params.memory_budget_gb:q} --out {output.data:q}"
        " --threads {threads:q} > {log:q} 2>&1"


# Drawing is a job of its own, as for the phase figures: landscape.levels / color_limits or an
# edit of the figure code redraw the picture without recomputing the landscape, and a deleted
# picture is drawn again by a plain rerun (LANDSCAPE_FIGURES and COMPARISON_FIGURES are targets).
rule landscape_figure:
    input:
        data=f"{RESULTS}/{{cell}}/landscape.nc",
        code=sources("landscape-figure"),
    output:
        report(
            f"{RESULTS}/{{cell}}/landscape.png",
            caption="../report/landscape.rst",
            category="Landscapes",
            labels=lambda wildcards: {"cell": wildcards.cell},
        ),
    log:
        cell_log("landscape_figure"),
    benchmark:
        cell_benchmark("landscape_figure")
    conda:
        "../envs/lltax.yaml"
    threads: 1
    params:
        settings=LANDSCAPE_FIGURE_SETTINGS,
    shell:
        "lltax landscape-figure --landscapes {input.data:q} --settings {params.settings:q} --out {output:q}"
        " --threads {threads:q} > {log:q} 2>&1"


rule comparison_figure:
    input:
        data=f"{RESULTS}/{{cell}}/vs_{{other}}/comparison.nc",
        code=sources("landscape-figure"),
    output:
        report(
            f"{RESULTS}/{{cell}}/vs_{{other}}/comparison.png",
            caption="../report/comparison.rst",
            category="Landscapes",
            labels=lambda wildcards: {"cell": wildcards.cell, "versus": wildcards.other},
        ),
    log:
        f"{RESULTS}/logs/comparison_figure/{{cell}}/vs_{{other}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/comparison_figure/{{cell}}/vs_{{other}}.tsv"
    wildcard_constraints:
        other="[^/]+",
    conda:
        "../envs/lltax.yaml"
    threads: 1
    params:
        settings=LANDSCAPE_FIGURE_SETTINGS,
    shell:
        "lltax landscape-figure --landscapes {input.data:q} --settings {params.settings:q} --out {output:q}"
        " --threads {threads:q} > {log:q} 2>&1"


rule atlas:
    input:
        landscapes=LANDSCAPE_OUTPUTS,
        phases=f"{RESULTS}/phases.nc",
        code=sources("atlas"),
    output:
        report(ATLAS[0] if ATLAS else f"{RESULTS}/figures/atlas.png", caption="../report/atlas.rst", category="Landscapes"),
    log:
        f"{RESULTS}/logs/atlas.log",
    benchmark:
        f"{RESULTS}/benchmarks/atlas.tsv"
    conda:
        "../envs/lltax.yaml"
    threads: 1
    params:
        settings=LANDSCAPE_FIGURE_SETTINGS,
    shell:
        "lltax atlas --landscapes {input.landscapes:q} --phases {input.phases:q} --settings {params.settings:q}"
        " --out {output:q} --threads {threads:q} > {log:q} 2>&1"
